"""Results store: tidy tables as Parquet with provenance, written atomically, resumable.

A run is identified by the probe, its parameters, the model weights and the data files. Its
rows arrive in parts (one Parquet file per finished batch, each written to a temporary file
and renamed), so an interrupted run keeps every finished batch and a re-run computes only
the missing items. ``finish`` concatenates the parts into ``result.parquet``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PROVENANCE_KEY = b"pivotlens.provenance"


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def code_version() -> dict[str, str | None]:
    """pivotlens' version and git commit (when run from a checkout), and key library versions."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "pivotlens": _version("pivotlens"),
        "git_commit": commit,
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "transformer_lens": _version("transformer-lens"),
        "nnsight": _version("nnsight"),
        "python": platform.python_version(),
    }


def provenance(
    probe: str,
    params: dict[str, object],
    model: dict[str, object] | None = None,
    data_files: Iterable[str | os.PathLike[str]] = (),
    seed: int | None = None,
) -> dict[str, object]:
    """The provenance dict stored with every result (inseq-style)."""
    return {
        "probe": probe,
        "params": params,
        "model": model or {},
        "data": {str(Path(f)): file_sha256(f) for f in data_files},
        "seed": seed,
        "code": code_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run_key(prov: dict[str, object]) -> str:
    """Hash of what determines a result: probe, parameters, weights, data, seed (not time or code)."""
    model = prov.get("model") or {}
    ident = {
        "probe": prov["probe"],
        "params": prov["params"],
        "weights": model.get("weights_hash") if isinstance(model, dict) else None,
        "model": model.get("model") if isinstance(model, dict) else None,
        "data": prov["data"],
        "seed": prov["seed"],
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _temp_beside(path: Path) -> str:
    """A temporary file next to ``path`` with the permissions a plain ``open`` would give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def write_parquet_atomic(df: pd.DataFrame, path: Path, prov: dict[str, object]) -> None:
    """Write ``df`` with ``prov`` in the Parquet schema metadata; readers never see a partial file."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(prov, default=str).encode()
    table = table.replace_schema_metadata(meta)
    tmp = _temp_beside(path)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(text: str, path: Path) -> None:
    tmp = _temp_beside(path)
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def read_result(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a result table; its provenance dict is in ``df.attrs["provenance"]``."""
    table = pq.read_table(path)
    df = table.to_pandas()
    raw = (table.schema.metadata or {}).get(PROVENANCE_KEY)
    df.attrs["provenance"] = json.loads(raw) if raw else {}
    return df


class Run:
    """One resumable run of a probe, stored under ``root/probe/<model>-<key>/``."""

    def __init__(self, root: Path, prov: dict[str, object]) -> None:
        self.prov = prov
        model = prov.get("model") or {}
        label = str(model.get("model", "model")).replace("/", "_") if isinstance(model, dict) else "model"
        self.folder = Path(root) / str(prov["probe"]) / f"{label}-{run_key(prov)}"
        self.parts = self.folder / "parts"
        self.result_path = self.folder / "result.parquet"

    @property
    def finished(self) -> bool:
        return self.result_path.is_file()

    def done_items(self, column: str = "item") -> set[str]:
        """Item keys already stored (in finished batches)."""
        if not self.parts.is_dir():
            return set()
        keys: set[str] = set()
        for part in sorted(self.parts.glob("part-*.parquet")):
            keys.update(pq.read_table(part, columns=[column]).column(column).to_pylist())
        return {str(k) for k in keys}

    def append(self, df: pd.DataFrame) -> None:
        """Store one finished batch of rows."""
        if df.empty:
            return
        self.parts.mkdir(parents=True, exist_ok=True)
        index = len(list(self.parts.glob("part-*.parquet")))
        write_parquet_atomic(df, self.parts / f"part-{index:06d}.parquet", self.prov)

    def finish(self) -> pd.DataFrame:
        """Concatenate the parts into ``result.parquet`` (atomically) and return the table."""
        parts = sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []
        df = pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True) if parts else pd.DataFrame()
        write_parquet_atomic(df, self.result_path, self.prov)
        write_text_atomic(json.dumps(self.prov, indent=2, default=str), self.folder / "provenance.json")
        df.attrs["provenance"] = self.prov
        return df

    def load(self) -> pd.DataFrame:
        return read_result(self.result_path)


class ResultsStore:
    """Folder of runs. Default location: ``$PIVOTLENS_RESULTS`` or ``<pivotlens cache>/results``
    (``~/.cache/pivotlens/results``), so every command and notebook reuses finished work."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        from probes.backend.models import cache_dir

        self.root = Path(root or os.environ.get("PIVOTLENS_RESULTS") or cache_dir() / "results")

    def run(self, prov: dict[str, object]) -> Run:
        return Run(self.root, prov)
