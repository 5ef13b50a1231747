"""Word lists for the latent-language experiments: the wide concept CSV and cloze sentences.

Format (``data/concepts.csv``, and any list a user brings): a ``concept`` column, then one
column per ISO 639-1 code, one row per concept. Cloze sentences (``data/cloze.csv``):
``concept,lang,sentence`` where the sentence holds the word as ``"___"``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from probes.backend.errors import DataFormatError
from probes.backend.languages import get_language
from probes.inputs import DATA_DIR

CONCEPTS = DATA_DIR / "concepts.csv"
CLOZE = DATA_DIR / "cloze.csv"
PLACEHOLDER = '"___"'


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file; pass a CSV with a 'concept' column and one column per language")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise DataFormatError(f"{path}: the file is empty; it needs a header row")
    return rows[0], rows[1:]


def load_concepts(path: str | Path = CONCEPTS) -> pd.DataFrame:
    """Read and validate a wide word list; errors name the file, line and column at fault."""
    path = Path(path)
    header, rows = _rows(path)
    if not header or header[0] != "concept":
        raise DataFormatError(f"{path}:1: the first column must be 'concept' (found {header[:1]})")
    for column, code in enumerate(header[1:], start=2):
        try:
            get_language(code)
        except KeyError as exc:
            raise DataFormatError(f"{path}:1, column {column}: {exc}") from None
    if len(set(header)) != len(header):
        raise DataFormatError(f"{path}:1: duplicate column names in {header}")
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataFormatError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        for column, cell in enumerate(row, start=1):
            if not cell.strip():
                raise DataFormatError(f"{path}:{line}, column {column} ({header[column - 1]}): empty cell")
        if row[0] in seen:
            raise DataFormatError(f"{path}:{line}: concept {row[0]!r} already on line {seen[row[0]]}")
        seen[row[0]] = line
    return pd.DataFrame(rows, columns=header).apply(lambda col: col.str.strip())


def load_cloze(path: str | Path = CLOZE) -> pd.DataFrame:
    """Read and validate cloze sentences (``concept, lang, sentence`` with one ``"___"``)."""
    path = Path(path)
    header, rows = _rows(path)
    if header != ["concept", "lang", "sentence"]:
        raise DataFormatError(f"{path}:1: header must be concept,lang,sentence (found {','.join(header)})")
    for line, row in enumerate(rows, start=2):
        if len(row) != 3:
            raise DataFormatError(f"{path}:{line}: {len(row)} fields, expected 3")
        get_language(row[1])
        if row[2].count(PLACEHOLDER) != 1:
            raise DataFormatError(f"{path}:{line}, column 3: the sentence must contain {PLACEHOLDER} exactly once")
    return pd.DataFrame(rows, columns=header)
