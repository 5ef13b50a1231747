"""Prompts of the Language Confusion Benchmark (Marchisio et al. 2024, Sec. 3; docs/methods/language-confusion.md).

Two layouts, the benchmark's own, read by one loader:

* monolingual: ``prompt,source,language`` (the user writes in ``language`` and expects it back);
* cross-lingual: ``prompt,location,phrasing,language,source`` (an English request asking for
  an answer in ``language``; ``location`` in Start/Middle/End; ``phrasing`` the instruction
  template). The real files write the placeholder ``{language_requested}``, the authored ones
  ``{language}``; both are accepted and normalised to ``{language}``.

Sources: the authored prompts in ``data/confusion/`` (see its CONFUSION.md) and the real
benchmark, read from a user's download of for-ai/language-confusion (:func:`locate_lcb`: the
repository folder, or a folder with ``test_sets.zip`` or ``test_sets/`` plus ``words``; or
``$PIVOTLENS_LCB``): ``test_sets/{monolingual,crosslingual}/<dataset>/<lang>.csv``, read from
the folder or straight from the zip (:func:`load_lcb`). pivotlens never
ships a copy. Few-shot prompting follows the benchmark's code: the demonstrations for a target
language are in *other* languages, each answered in its own language (monolingual), or English
requests asking for another language, answered in it (cross-lingual); turns are rendered as
``Q: ...\\nA: ...`` by :func:`turns_to_prompt`.
"""

from __future__ import annotations

import csv
import io
import os
import random
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from probes.backend.errors import DataFormatError, UnknownLanguageError
from probes.backend.languages import get_language
from probes.inputs import DATA_DIR

CONFUSION_DIR = DATA_DIR / "confusion"
MONOLINGUAL = CONFUSION_DIR / "monolingual.csv"
CROSSLINGUAL = CONFUSION_DIR / "crosslingual.csv"
FEW_SHOT = CONFUSION_DIR / "few_shot.csv"

Task = Literal["monolingual", "crosslingual"]
TASKS: tuple[Task, ...] = ("monolingual", "crosslingual")
COLUMNS: dict[Task, tuple[str, ...]] = {
    "monolingual": ("prompt", "source", "language"),
    "crosslingual": ("prompt", "location", "phrasing", "language", "source"),
}
LOCATIONS = ("Start", "Middle", "End")
# the benchmark's datasets per task (Marchisio et al. 2024, Table 1)
LCB_DATASETS: dict[Task, tuple[str, ...]] = {
    "monolingual": ("aya", "dolly", "okapi", "native"),
    "crosslingual": ("okapi", "sharegpt", "complex_prompts"),
}
LCB_ENV = "PIVOTLENS_LCB"
LCB_URL = "https://github.com/for-ai/language-confusion"
Source = Path | zipfile.Path
FEW_SHOT_COLUMNS = ("language", "question", "question_en", "answer")
# instructions of the cross-lingual demonstrations, used in turn
DEMO_INSTRUCTIONS = (
    "Reply in {language}.",
    "Please answer in {language}.",
    "Write your answer in {language}.",
    "Respond in {language}.",
    "Use {language} for your answer.",
)


@dataclass(frozen=True)
class ConfusionPrompt:
    """One benchmark prompt; ``row`` is its 0-based index among the rows of the same
    ``(task, source, language)`` in its file, the ``id`` of the benchmark's output format."""

    task: Task
    source: str
    language: str
    prompt: str
    row: int
    location: str = ""
    phrasing: str = ""

    @property
    def item(self) -> str:
        """Key of the prompt in a results-store run."""
        return f"{self.task}|{self.source}|{self.language}|{self.row}"


def read_records(
    path: Source, what: str = "a CSV with the benchmark's columns"
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line, row)`` records of a UTF-8 CSV (a BOM is allowed), from a file or a
    member of a zip file (:class:`zipfile.Path`); ``line`` is the physical line where each record
    starts, so multi-line cells do not shift later numbers. Non-UTF-8 bytes, an empty file and
    malformed or oversized fields are errors naming the line."""
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file; pass {what}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(
            f"{path}:{line}: byte 0x{raw[exc.start]:02x} is not UTF-8; save the file as UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise DataFormatError(f"{path}: the file is empty; it needs a header row")
        records, start = [], reader.line_num + 1
        for row in reader:
            if row:
                records.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataFormatError(
            f"{path}:{reader.line_num}: {exc} (at most {csv.field_size_limit()} characters per field); "
            "check the quoting or shorten the field"
        ) from None
    return [h.strip() for h in header], records


def _task_of(header: list[str], path: Source, task: Task | None) -> Task:
    matches: list[Task] = [t for t in TASKS if set(COLUMNS[t]) <= set(header)]
    if task is not None and task not in matches:
        raise DataFormatError(
            f"{path}:1: a {task} file needs the columns {','.join(COLUMNS[task])} (found {','.join(header)})"
        )
    if task is None:
        if not matches:
            raise DataFormatError(
                f"{path}:1: the header must hold the monolingual columns {','.join(COLUMNS['monolingual'])} "
                f"or the cross-lingual ones {','.join(COLUMNS['crosslingual'])} (found {','.join(header)})"
            )
        task = matches[-1]  # a cross-lingual header also holds the monolingual columns
    return task


def load_prompts(path: str | Source, task: Task | None = None) -> list[ConfusionPrompt]:
    """Read one file of either layout (detected from the header unless ``task`` is given).

    Raises :class:`DataFormatError` naming the file, line and column of the first problem.
    """
    path = Path(path) if isinstance(path, str) else path
    header, records = read_records(path)
    task = _task_of(header, path, task)
    index = {name: header.index(name) for name in COLUMNS[task]}
    prompts: list[ConfusionPrompt] = []
    counts: dict[tuple[str, str], int] = {}
    for line, row in records:
        if len(row) != len(header):
            raise DataFormatError(
                f"{path}:{line}: {len(row)} fields, the header has {len(header)} ({','.join(header)})"
            )
        cells = {name: row[i].strip() for name, i in index.items()}
        where = {column: f"{path}:{line}, column {i + 1} ({column})" for column, i in index.items()}
        for name, cell in cells.items():
            if not cell:
                raise DataFormatError(f"{where[name]}: empty cell")
        try:
            get_language(cells["language"])
        except UnknownLanguageError as exc:
            raise DataFormatError(f"{where['language']}: {exc}") from None
        phrasing = cells.get("phrasing", "").replace("{language_requested}", "{language}")
        if task == "crosslingual":
            if cells["location"] not in LOCATIONS:
                raise DataFormatError(
                    f"{where['location']}: {cells['location']!r} is not one of {', '.join(LOCATIONS)}"
                )
            if "{language}" not in phrasing:
                raise DataFormatError(
                    f"{where['phrasing']}: {phrasing!r} has no {{language}} (or {{language_requested}}) placeholder"
                )
        key = (cells["source"], cells["language"])
        counts[key] = counts.get(key, -1) + 1
        prompts.append(
            ConfusionPrompt(
                task,
                cells["source"],
                cells["language"],
                row[index["prompt"]],
                counts[key],
                cells.get("location", ""),
                phrasing,
            )
        )
    return prompts


def load_authored(task: Task) -> list[ConfusionPrompt]:
    """The prompts authored for pivotlens (``data/confusion/<task>.csv``)."""
    return load_prompts(MONOLINGUAL if task == "monolingual" else CROSSLINGUAL, task)


@dataclass(frozen=True)
class LcbDownload:
    """Where a user's copy of the Language Confusion Benchmark keeps its two parts:
    ``test_sets`` (a folder, or the ``test_sets/`` tree inside ``test_sets.zip``) and ``words``
    (the English word list of its word-level check)."""

    test_sets: Source
    words: Path
    archive: Path | None = None  # test_sets.zip, when the test sets are read from it

    @property
    def files(self) -> list[str]:
        """The files the prompts and the word list come from (for provenance)."""
        return [str(self.archive or self.test_sets), str(self.words)]

    def dataset_files(self, task: Task) -> dict[str, list[Source]]:
        """``{dataset: [<lang>.csv, ...]}`` of one task, datasets and files sorted by name."""
        folder = self.test_sets / task
        datasets = sorted((d for d in folder.iterdir() if d.is_dir()), key=lambda d: d.name) if folder.is_dir() else []
        return {
            d.name: sorted((f for f in d.iterdir() if f.name.endswith(".csv")), key=lambda f: f.name) for d in datasets
        }


def locate_lcb(path: str | Path | None = None) -> LcbDownload:
    """The benchmark download at ``path`` (default ``$PIVOTLENS_LCB``): the repository folder
    of for-ai/language-confusion, or any folder holding ``test_sets/`` or ``test_sets.zip``
    beside ``words``. One :class:`DataFormatError` names whatever is missing."""
    if path is None:
        path = os.environ.get(LCB_ENV)
        if not path:
            raise DataFormatError(
                f"--benchmark lcb needs the benchmark's files: pass --lcb PATH or set ${LCB_ENV} to a download of "
                f"{LCB_URL} (the folder with test_sets.zip and words)"
            )
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataFormatError(f"{root}: no such folder; download the Language Confusion Benchmark from {LCB_URL}")
    folder, archive = root / "test_sets", root / "test_sets.zip"
    missing = []
    if folder.is_dir():
        test_sets: Source | None = folder
    elif archive.is_file():
        test_sets = zipfile.Path(archive, "test_sets/")
    else:
        test_sets = None
        missing.append("test_sets/ or test_sets.zip (the prompts)")
    if not (root / "words").is_file():
        missing.append("words (the English word list of the word-level check)")
    if missing:
        raise DataFormatError(
            f"{root}: missing {' and '.join(missing)}; download both from {LCB_URL} (its repository folder has them)"
        )
    assert test_sets is not None
    return LcbDownload(test_sets, root / "words", None if folder.is_dir() else archive)


def _subsample(prompts: list[ConfusionPrompt], n: int, seed: int) -> list[ConfusionPrompt]:
    """``n`` prompts of one ``(task, dataset, language)`` file drawn with a seed of their own
    (so adding a language or a dataset leaves the others' draws alone), in file order."""
    if n >= len(prompts):
        return prompts
    key = f"{seed}|{prompts[0].task}|{prompts[0].source}|{prompts[0].language}"
    chosen = set(random.Random(key).sample(range(len(prompts)), n))
    return [p for i, p in enumerate(prompts) if i in chosen]


def load_lcb(
    download: LcbDownload,
    task: Task,
    *,
    datasets: Sequence[str] | None = None,
    langs: Sequence[str] | None = None,
    per_language: int | None = None,
    seed: int = 0,
) -> list[ConfusionPrompt]:
    """The benchmark's prompts of one task, keeping its structure: ``source`` is the dataset
    (aya, dolly, okapi, native; okapi, sharegpt, complex_prompts) and ``row`` the prompt's row in
    its ``<dataset>/<lang>.csv``. ``per_language`` draws that many prompts per dataset and
    language, deterministically from ``seed``. A dataset the benchmark does not have is refused
    with the list of those it has."""
    files = download.dataset_files(task)
    if not files:
        raise DataFormatError(
            f"{download.archive or download.test_sets}: no {task}/<dataset>/<lang>.csv test sets; "
            f"download the benchmark from {LCB_URL}"
        )
    chosen = list(files) if datasets is None else list(datasets)
    unknown = [d for d in chosen if d not in files]
    if unknown:
        raise DataFormatError(
            f"the benchmark has no {task} dataset {', '.join(map(repr, unknown))}; it has {', '.join(files)}"
        )
    prompts = []
    for dataset in chosen:
        for file in files[dataset]:
            if langs is not None and file.name.removesuffix(".csv") not in langs:
                continue
            loaded = [replace(p, source=dataset) for p in load_prompts(file, task)]  # e.g. aya_human_annotated -> aya
            prompts += loaded if per_language is None else _subsample(loaded, per_language, seed)
    return prompts


def select(
    prompts: Iterable[ConfusionPrompt], langs: Sequence[str] | None = None, n: int | None = None
) -> list[ConfusionPrompt]:
    """The first ``n`` prompts (file order) of each ``(task, source, language)`` in ``langs``.
    The authored sets are parallel, so the first ``n`` are the same requests in every language."""
    chosen = [p for p in prompts if langs is None or p.language in langs]
    if langs is not None:
        missing = sorted(set(langs) - {p.language for p in chosen})
        if missing:
            raise DataFormatError(f"no prompts in {missing}; the data has {sorted({p.language for p in prompts})}")
    return [p for p in chosen if n is None or p.row < n]


# ---- few-shot prompting (Marchisio et al. 2024) ------------------------------------------------------------


@dataclass(frozen=True)
class Demo:
    language: str
    question: str
    question_en: str
    answer: str


def load_demos(path: str | Path = FEW_SHOT) -> list[Demo]:
    """The few-shot demonstrations, in file order (``language,question,question_en,answer``)."""
    path = Path(path)
    header, records = read_records(path)
    if header != list(FEW_SHOT_COLUMNS):
        raise DataFormatError(f"{path}:1: the header must be {','.join(FEW_SHOT_COLUMNS)} (found {','.join(header)})")
    demos = []
    for line, row in records:
        if len(row) != len(header) or not all(cell.strip() for cell in row):
            raise DataFormatError(
                f"{path}:{line}: every record needs the {len(header)} non-empty fields {','.join(header)}"
            )
        demos.append(Demo(*(cell.strip() for cell in row)))
    return demos


def turns_to_prompt(turns: Sequence[tuple[str, str]]) -> str:
    """The benchmark's ``turns_to_prompt``: user turns as ``Q: {msg}\\n``, chatbot turns as ``A: {msg}\\n\\n``, ending
    with ``A:``, surrounding newlines stripped. ``turns`` holds ``(role, message)`` pairs with
    role ``"User"`` or ``"Chatbot"``."""
    rendered = []
    for role, message in turns:
        if role not in ("User", "Chatbot"):
            raise ValueError(f"unknown role {role!r}; use 'User' or 'Chatbot'")
        rendered.append(f"Q: {message}\n" if role == "User" else f"A: {message}\n\n")
    return ("".join(rendered) + "A:").strip("\n")


def few_shot_turns(prompt: ConfusionPrompt, shots: int, demos: Sequence[Demo] | None = None) -> list[tuple[str, str]]:
    """``shots`` demonstrations in languages other than the prompt's target, then the prompt.

    Monolingual: a question in language L answered in L. Cross-lingual: the English question
    with an instruction to answer in L (start or end, in turn), answered in L.
    """
    pool = [d for d in (load_demos() if demos is None else demos) if d.language != prompt.language]
    if shots > len(pool):
        raise ValueError(
            f"{shots}-shot needs {shots} demonstrations outside {prompt.language!r}; there are {len(pool)}"
        )
    turns: list[tuple[str, str]] = []
    for i, demo in enumerate(pool[:shots]):
        if prompt.task == "monolingual":
            question = demo.question
        else:
            instruction = DEMO_INSTRUCTIONS[i % len(DEMO_INSTRUCTIONS)].format(
                language=get_language(demo.language).english
            )
            question = f"{instruction} {demo.question_en}" if i % 2 == 0 else f"{demo.question_en} {instruction}"
        turns += [("User", question), ("Chatbot", demo.answer)]
    return turns + [("User", prompt.prompt)]
