"""Prompts of the Language Confusion Benchmark (Marchisio et al. 2024, Sec. 3; docs/methods/language-confusion.md).

Two layouts, the benchmark's own, read by one loader:

* monolingual: ``prompt,source,language`` (the user writes in ``language`` and expects it back);
* cross-lingual: ``prompt,location,phrasing,language,source`` (an English request asking for
  an answer in ``language``; ``location`` in Start/Middle/End; ``phrasing`` the instruction
  template). The real files write the placeholder ``{language_requested}``, the authored ones
  ``{language}``; both are accepted and normalised to ``{language}``.

Sources: the authored prompts in ``data/confusion/`` (see its CONFUSION.md) and, for users who
have them, the real benchmark files ``test_sets/{monolingual,crosslingual}/<source>/<lang>.csv``
(:func:`load_benchmark`). Few-shot prompting follows the benchmark's code: the demonstrations for a target
language are in *other* languages, each answered in its own language (monolingual), or English
requests asking for another language, answered in it (cross-lingual); turns are rendered as
``Q: ...\\nA: ...`` by :func:`turns_to_prompt`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
    path: Path, what: str = "a CSV with the benchmark's columns"
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line, row)`` records of a UTF-8 CSV (a BOM is allowed); ``line`` is the
    physical line where each record starts, so multi-line cells do not shift later numbers.
    Non-UTF-8 bytes, an empty file and malformed or oversized fields are errors naming the line."""
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


def _task_of(header: list[str], path: Path, task: Task | None) -> Task:
    matches = [t for t in TASKS if set(COLUMNS[t]) <= set(header)]
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


def load_prompts(path: str | Path, task: Task | None = None) -> list[ConfusionPrompt]:
    """Read one file of either layout (detected from the header unless ``task`` is given).

    Raises :class:`DataFormatError` naming the file, line and column of the first problem.
    """
    path = Path(path)
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


def load_benchmark(root: str | Path, task: Task) -> list[ConfusionPrompt]:
    """The real benchmark's prompts of one task from its ``test_sets`` folder (unzipped
    ``test_sets.zip`` of for-ai/language-confusion): every ``<task>/<source>/<lang>.csv``."""
    folder = Path(root) / task
    files = sorted(folder.glob("*/*.csv"))
    if not files:
        raise DataFormatError(f"{folder}: no <source>/<lang>.csv files; point at the benchmark's test_sets folder")
    return [p for file in files for p in load_prompts(file, task)]


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
