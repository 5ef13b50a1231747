"""Rewrite machine paths out of provenance already written under a folder (``results/`` by
default): ``provenance.json`` files, other JSON records and the provenance in Parquet metadata
(pivotlens's own record, and the copy pandas keeps of a table's ``attrs``).

A path inside this checkout becomes relative to it (``data/concepts.csv``), a path inside the
pivotlens cache becomes ``<cache>/...``, any other absolute path keeps only its last two parts.
Table contents are not touched. New provenance holds no machine paths to begin with
(``probes.backend.store.data_label``); this is for files written before.

Usage: python -m analyses.pipelines.scrub_provenance [FOLDER]   (prints each file it rewrote)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pyarrow.parquet as pq

from probes.backend.models import cache_dir
from probes.backend.store import PROVENANCE_KEY

ROOT = Path(__file__).resolve().parents[2]
PANDAS_KEYS = (b"pandas", b"PANDAS_ATTRS")  # pandas' schema record; pandas 3 keeps ``attrs`` in the second
_ABSOLUTE = re.compile(r"(?<![\w.~<])/(?:root|home|Users|work|tmp|mnt|opt|var|srv|data)(?:/[^\s\"'|,;:]+)+")


def scrub_text(text: str, root: Path = ROOT, cache: Path | None = None) -> str:
    """``text`` with every absolute path replaced by a portable label."""
    cache = cache or cache_dir()

    for base, prefix in ((cache, "<cache>/"), (root, "")):
        text = re.sub(re.escape(base.as_posix().rstrip("/") + "/") + r"(?=[^\s\"'|,;:])", prefix, text)

    def label(match: re.Match[str]) -> str:
        return "/".join(Path(match.group(0)).parts[-2:])

    return _ABSOLUTE.sub(label, text)


def parquet_records(path: Path) -> dict[bytes, str]:
    """The JSON records in a Parquet file's schema metadata: pivotlens's provenance, and pandas'
    own record, which holds a copy of the table's ``attrs`` (the provenance again)."""
    meta = pq.read_schema(path).metadata or {}
    return {key: value.decode() for key, value in meta.items() if key in (PROVENANCE_KEY, *PANDAS_KEYS)}


def scrub_parquet(path: Path) -> bool:
    records = parquet_records(path)
    clean = {key: scrub_text(text) for key, text in records.items()}
    if clean == records:
        return False
    for text in clean.values():
        json.loads(text)  # still valid JSON
    table = pq.read_table(path)
    meta = {**(table.schema.metadata or {}), **{key: text.encode() for key, text in clean.items()}}
    pq.write_table(table.replace_schema_metadata(meta), path)
    return True


def scrub_json(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    clean = scrub_text(text)
    if clean == text:
        return False
    json.loads(clean)  # still valid JSON
    path.write_text(clean, encoding="utf-8")
    return True


def scrub_folder(folder: Path) -> list[Path]:
    """Rewrite every JSON and Parquet file under ``folder`` that holds a machine path."""
    rewritten = [p for p in sorted(folder.rglob("*.json")) if scrub_json(p)]
    return rewritten + [p for p in sorted(folder.rglob("*.parquet")) if scrub_parquet(p)]


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "results")
    rewritten = scrub_folder(folder)
    for path in rewritten:
        print(f"rewrote {path}")
    print(f"{len(rewritten)} files rewritten under {folder}; no machine path left in their provenance")


if __name__ == "__main__":
    main()
