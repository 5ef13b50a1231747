"""A per-language text corpus as language-model batches (Zhang et al. 2024, spec 4.1 and 4.3).

Format (``data/sentences.csv``, and any corpus a user brings): ``id,lang,text``, one sentence
per row; rows sharing an ``id`` are translations of each other. The corpus is split **by id**
into an accumulation part (importance, fine-tuning) and a held-out part (perplexity): an id is
held out when ``sha256(id) mod 5 == 0`` (about 20 %). Splitting by id keeps every translation
of a held-out sentence out of the accumulation part, and hashing keeps the split of an id
fixed when sentences are added.

Batches are left-padded by the backend; next-token labels are ``-100`` on padding and on each
row's first real token, which has no context to be predicted from.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from probes.backend import Backend, Encoded
from probes.backend.errors import DataFormatError
from probes.backend.languages import get_language
from probes.inputs import DATA_DIR

SENTENCES = DATA_DIR / "sentences.csv"
HEADER = ["id", "lang", "text"]
HELDOUT_MODULUS = 5  # an id is held out when sha256(id) % 5 == 0
Part = Literal["accumulation", "heldout", "all"]


def is_heldout(sentence_id: str) -> bool:
    """The documented split: held out when ``sha256(id) mod 5 == 0``."""
    return int(hashlib.sha256(sentence_id.encode()).hexdigest(), 16) % HELDOUT_MODULUS == 0


@dataclass(frozen=True)
class Corpus:
    """Sentences per language, each a list of ``(id, text)`` in file order."""

    path: Path
    sentences: Mapping[str, list[tuple[str, str]]]

    @property
    def langs(self) -> list[str]:
        return list(self.sentences)

    def texts(self, lang: str, part: Part = "all") -> list[str]:
        """The sentences of ``lang`` in the accumulation part, the held-out part, or all."""
        if lang not in self.sentences:
            raise DataFormatError(f"{self.path}: no sentences in {lang!r}; the file has {', '.join(self.langs)}")
        if part not in ("accumulation", "heldout", "all"):
            raise ValueError(f"part must be 'accumulation', 'heldout' or 'all', not {part!r}")
        return [text for sid, text in self.sentences[lang] if part == "all" or is_heldout(sid) == (part == "heldout")]


def load_corpus(path: str | Path = SENTENCES) -> Corpus:
    """Read and validate ``id,lang,text``; errors name the file, line and column at fault."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file; pass a CSV with the columns {','.join(HEADER)}")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or rows[0] != HEADER:
        raise DataFormatError(
            f"{path}:1: header must be {','.join(HEADER)} (found {','.join(rows[0]) if rows else 'nothing'})"
        )
    sentences: dict[str, list[tuple[str, str]]] = {}
    seen: dict[tuple[str, str], int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 3:
            raise DataFormatError(
                f"{path}:{line}: {len(row)} fields, expected 3 ({','.join(HEADER)}); quote texts with commas"
            )
        sid, lang, text = (cell.strip() for cell in row)
        if not sid or not text:
            raise DataFormatError(f"{path}:{line}, column {1 if not sid else 3}: empty cell")
        try:
            get_language(lang)
        except KeyError as exc:
            raise DataFormatError(f"{path}:{line}, column 2: {exc}") from None
        if (sid, lang) in seen:
            raise DataFormatError(f"{path}:{line}: id {sid!r} in {lang!r} already on line {seen[(sid, lang)]}")
        seen[(sid, lang)] = line
        sentences.setdefault(lang, []).append((sid, text))
    return Corpus(path, sentences)


def next_token_labels(enc: Encoded) -> torch.Tensor:
    """``input_ids`` with ``-100`` on padding and on each row's first real token."""
    labels = enc.input_ids.clone()
    labels[enc.attention_mask == 0] = -100
    first = enc.attention_mask.argmax(dim=1)  # left padding: index of the first real token
    labels[torch.arange(labels.shape[0]), first] = -100
    return labels


@dataclass(frozen=True)
class LMBatch:
    enc: Encoded
    labels: torch.Tensor
    n_sentences: int

    @property
    def n_tokens(self) -> int:
        """Predicted tokens (labels other than -100)."""
        return int((self.labels != -100).sum())


def lm_batches(backend: Backend, texts: Sequence[str], *, batch_size: int, max_tokens: int) -> Iterator[LMBatch]:
    """Tokenize (truncating to ``max_tokens``), sort by length (little padding) and batch."""
    if batch_size < 1 or max_tokens < 2:
        raise ValueError(f"batch_size must be >= 1 and max_tokens >= 2 (got {batch_size}, {max_tokens})")
    rows = sorted((backend.tokenize(t)[:max_tokens] for t in texts), key=len)
    rows = [r for r in rows if len(r) >= 2]  # a single token predicts nothing
    for start in range(0, len(rows), batch_size):
        enc = backend.encode(rows[start : start + batch_size])
        yield LMBatch(enc, next_token_labels(enc), enc.batch_size)
