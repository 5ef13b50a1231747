"""Row checks for the authored multilingual data (``data/tasks``, ``data/cloze.csv``,
``data/confusion``, ``data/instructions.csv``, ``data/sentences.csv``): every text cell of a
language is written in its script, no English is left in a translation, and the labels of a
classification file are balanced per language. Each problem names the file, the line of the
record and the column, so a translator can go straight to it.

* **script**: in a language not written in Latin letters, at least ``MIN_SCRIPT_SHARE`` of the
  letters of each cell of at least ``MIN_LETTERS`` letters belong to the language's script
  (short cells such as "K2", "NaCl" or the English words an English-grammar item asks about
  may stay Latin);
* **no English**: no cell of a non-English row holds one of ``ENGLISH_MARKERS``, function
  words that are English and not words of the other 24 data languages (loan phrases in
  ``LOAN_PHRASES``, such as "fish and chips", are allowed);
* **balance**: per language, the counts of the labels differ by at most one.

Cross-lingual confusion prompts are English by design (an English request asking for the
language), so only their ``language`` naming is checked there: the prompt names the language.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from probes.backend.languages import SCRIPT_PREFIXES, get_language

MIN_SCRIPT_SHARE = 0.7
MIN_LETTERS = 12
LOAN_PHRASES = ("fish and chips",)
ENGLISH_MARKERS = frozenset("the and with which what this that from have were would because their there about".split())
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class DataFile:
    """How to check one authored file: its language column, its text columns, its label
    column (balanced per language; empty when none) and whether its text is in the row's
    language (False for the English cross-lingual prompts)."""

    path: Path
    lang_column: str
    text_columns: tuple[str, ...]
    label_column: str = ""
    in_language: bool = True


def script_share(text: str, script: str) -> float:
    """Share of the letters of ``text`` that belong to ``script`` (1 when it has no letters)."""
    letters = [c for c in text if unicodedata.category(c).startswith("L")]
    if not letters:
        return 1.0
    prefixes = SCRIPT_PREFIXES[script]
    inside = sum(unicodedata.name(c, "").startswith(prefixes) or (c == "ー" and script == "Japanese") for c in letters)
    return inside / len(letters)


def english_markers(text: str) -> list[str]:
    """The English function words in ``text`` (whole words, any case), loan phrases aside."""
    for phrase in LOAN_PHRASES:
        text = re.sub(re.escape(phrase), " ", text, flags=re.IGNORECASE)
    return [w for w in _WORD.findall(text) if w.lower() in ENGLISH_MARKERS]


def read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """``(line, row)`` of every record (line = where the record starts)."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows, start = [], 2
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
    return rows


def check_rows(data: DataFile, lang: str) -> list[str]:
    """Every problem of ``lang``'s rows in ``data``, each as ``file:line, column N (name): what``."""
    rows = [(line, row) for line, row in read_rows(data.path) if row[data.lang_column] == lang]
    if not rows:
        return []
    header = list(rows[0][1])
    language = get_language(lang)
    problems = []
    for line, row in rows:
        for column in data.text_columns:
            cell, where = row[column], f"{data.path}:{line}, column {header.index(column) + 1} ({column})"
            if not cell.strip():
                problems.append(f"{where}: empty cell")
            elif not data.in_language:
                if language.english.lower() not in cell.lower():
                    problems.append(f"{where}: the prompt never names {language.english}")
            elif (
                language.script != "Latin"
                and sum(unicodedata.category(c).startswith("L") for c in cell) >= MIN_LETTERS
                and script_share(cell, language.script) < MIN_SCRIPT_SHARE
            ):
                share = script_share(cell, language.script)
                problems.append(f"{where}: only {share:.0%} of the letters are {language.script} ({cell[:60]!r})")
            elif lang != "en" and (found := english_markers(cell)):
                problems.append(f"{where}: English left in the text ({', '.join(found)})")
    if data.label_column:
        counts = Counter(row[data.label_column] for _, row in rows)
        if max(counts.values()) - min(counts.values()) > 1:
            column = header.index(data.label_column) + 1
            problems.append(
                f"{data.path}, column {column} ({data.label_column}): labels of {lang} are unbalanced "
                f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"
            )
    return problems


def languages_of(data: DataFile) -> set[str]:
    return {row[data.lang_column] for _, row in read_rows(data.path)}


def authored_files(root: Path) -> dict[str, DataFile]:
    """The authored data of every report section, by name."""
    data = root / "data"
    return {
        "sentiment": DataFile(data / "tasks" / "sentiment.csv", "lang", ("text",), "label"),
        "topic": DataFile(data / "tasks" / "topic.csv", "lang", ("text",), "label"),
        "mcqa": DataFile(data / "tasks" / "mcqa.csv", "lang", ("question", "A", "B", "C", "D"), "answer"),
        "cloze": DataFile(data / "cloze.csv", "lang", ("sentence",)),
        "confusion-monolingual": DataFile(data / "confusion" / "monolingual.csv", "language", ("prompt",)),
        "confusion-crosslingual": DataFile(
            data / "confusion" / "crosslingual.csv", "language", ("prompt",), in_language=False
        ),
        "instructions": DataFile(data / "instructions.csv", "lang", ("instruction", "response")),
        "sentences": DataFile(data / "sentences.csv", "lang", ("text",)),
    }
