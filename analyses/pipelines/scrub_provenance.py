"""Rewrite machine paths out of provenance already written under a folder (``results/`` by
default): ``provenance.json`` files, other JSON records and the provenance in Parquet metadata.

A path inside this checkout becomes relative to it (``data/concepts.csv``), a path inside the
pivotlens cache becomes ``<cache>/...``, any other absolute path keeps only its last two parts.
Table contents are not touched. New provenance holds no machine paths to begin with
(``probes.backend.store.data_label``); this is for files written before.

``pivotlens scrub-provenance [FOLDER]`` runs it and lists each file it rewrote.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq

from probes.backend.models import cache_dir
from probes.backend.store import PROVENANCE_KEY

ROOT = Path(__file__).resolve().parents[2]
_ABSOLUTE = re.compile(r"(?<![\w.~<])/(?:root|home|Users|work|tmp|mnt|opt|var|srv|data)(?:/[^\s\"'|,;:]+)+")


def scrub_text(text: str, root: Path = ROOT, cache: Path | None = None) -> str:
    """``text`` with every absolute path replaced by a portable label."""
    cache = cache or cache_dir()

    for base, prefix in ((cache, "<cache>/"), (root, "")):
        text = re.sub(re.escape(base.as_posix().rstrip("/") + "/") + r"(?=[^\s\"'|,;:])", prefix, text)

    def label(match: re.Match[str]) -> str:
        return "/".join(Path(match.group(0)).parts[-2:])

    return _ABSOLUTE.sub(label, text)


def scrub_parquet(path: Path) -> bool:
    table = pq.read_table(path)
    meta = dict(table.schema.metadata or {})
    raw = meta.get(PROVENANCE_KEY)
    if raw is None or (clean := scrub_text(raw.decode())) == raw.decode():
        return False
    meta[PROVENANCE_KEY] = clean.encode()
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
