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
import time
import uuid
import warnings
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock

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


DATA_ROOT = Path(__file__).resolve().parents[2] / "data"
#: Version of each registered probe (``register_probe(..., version=N)`` fills it): part of the run key.
PROBE_VERSIONS: dict[str, int] = {}


def data_label(path: str | os.PathLike[str]) -> str:
    """A data file's name in provenance and run keys: its path relative to pivotlens's ``data/``
    folder, or ``user:<file name>`` for a file elsewhere. Never a machine path."""
    resolved = Path(path).resolve()
    if resolved.is_relative_to(DATA_ROOT):
        return resolved.relative_to(DATA_ROOT).as_posix()
    return f"user:{resolved.name}"


def device_class(device: object) -> str:
    """``cuda:1`` -> ``cuda``: results do not depend on which GPU ran them."""
    return str(device).split(":")[0] or "cpu"


def provenance(
    probe: str,
    params: dict[str, object],
    model: dict[str, object] | None = None,
    data_files: Iterable[str | os.PathLike[str]] = (),
    seed: int | None = None,
    *,
    lens: str = "logit",
    version: int | None = None,
) -> dict[str, object]:
    """The provenance dict stored with every result (inseq-style). ``version`` defaults to the
    probe's registered version; data files are named by ``data_label`` (no machine paths)."""
    return {
        "probe": probe,
        "version": PROBE_VERSIONS.get(probe) if version is None else version,
        "params": params,
        "model": model or {},
        "lens": lens,
        "data": {data_label(f): file_sha256(f) for f in data_files},
        "seed": seed,
        "code": code_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run_key(prov: dict[str, object]) -> str:
    """Hash of the whole identity of a result: probe and its version, parameters, model name and
    weights, backend, dtype, device class, lens, data (by relative name and content) and seed.
    Not the time, the code commit or the machine."""
    model = prov.get("model") or {}
    model = model if isinstance(model, dict) else {}
    ident = {
        "probe": prov["probe"],
        "version": prov.get("version"),
        "params": prov["params"],
        "weights": model.get("weights_hash"),
        "model": model.get("model"),
        "backend": model.get("backend"),
        "dtype": model.get("dtype"),
        "device": device_class(model["device"]) if model.get("device") else None,
        "lens": prov.get("lens", "logit"),
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
    """Write ``df`` with ``prov`` in the Parquet schema metadata; readers never see a partial file.
    The file is flushed to disk before the rename, so a crash leaves either no file or a whole one."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(prov, default=str).encode()
    table = table.replace_schema_metadata(meta)
    tmp = _temp_beside(path)
    try:
        pq.write_table(table, tmp, write_page_checksum=True)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
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
    table = pq.read_table(path, page_checksum_verification=True)
    df = table.to_pandas()
    raw = (table.schema.metadata or {}).get(PROVENANCE_KEY)
    df.attrs["provenance"] = json.loads(raw) if raw else {}
    return df


def quarantine(path: Path, reason: str) -> Path:
    """Move a damaged file aside to ``<run>/quarantine/`` (never deleted) and warn."""
    folder = path.parent if path.parent.name != "parts" else path.parent.parent
    target = folder / "quarantine" / f"{path.name}.{uuid.uuid4().hex[:8]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    warnings.warn(
        f"damaged result file {path.name} ({reason}) moved to {target.parent.name}/; it will be recomputed",
        stacklevel=3,
    )
    return target


def _expected_sha(path: Path) -> str | None:
    """The checksum a store file must have: in a part's name (``part-<time>-<pid>-<sha16>``), or
    in the ``.sha256`` file written beside ``result.parquet`` after it."""
    if path.name.startswith("part-"):
        return path.stem.rsplit("-", 1)[-1]
    sidecar = path.with_name(path.name + ".sha256")
    return sidecar.read_text().strip() if sidecar.is_file() else None


def _read_or_quarantine(path: Path, columns: list[str] | None = None) -> pa.Table | None:
    """The table of a store file whose checksum matches; a damaged file is quarantined (None)."""
    try:
        expected = _expected_sha(path)
        if expected is not None and not file_sha256(path).startswith(expected):
            quarantine(path, "checksum mismatch")
            return None
        return pq.read_table(path, columns=columns, page_checksum_verification=True)
    except FileNotFoundError:
        return None
    except (pa.ArrowException, OSError, ValueError) as exc:
        quarantine(path, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}")
        return None


class Run:
    """One resumable run of a probe, stored under ``root/probe/<model>-<key>/``.

    Safe under concurrency: every write and every read of the stored items takes the run's file
    lock, ``append`` re-reads the stored items under the lock and drops rows whose item another
    process stored meanwhile, parts have unique names, and ``finish`` keeps each item once. Damaged parts or results
    are moved to ``quarantine/`` and their items computed again.
    """

    def __init__(self, root: Path, prov: dict[str, object], key: str = "item") -> None:
        self.prov = prov
        self.key = key
        model = prov.get("model") or {}
        label = str(model.get("model", "model")).replace("/", "_") if isinstance(model, dict) else "model"
        self.folder = Path(root) / str(prov["probe"]) / f"{label}-{run_key(prov)}"
        self.parts = self.folder / "parts"
        self.result_path = self.folder / "result.parquet"
        self.duplicates_dropped = 0

    def lock(self) -> FileLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.folder / ".lock"))

    @property
    def finished(self) -> bool:
        """A readable ``result.parquet`` exists (a damaged one is quarantined: not finished)."""
        sidecar = self.result_path.with_name(self.result_path.name + ".sha256")
        return sidecar.is_file() and self.result_path.is_file() and _read_or_quarantine(self.result_path) is not None

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []

    def done_items(self, column: str | None = None) -> set[str]:
        """Item keys already stored (in finished batches), read under the run's lock; damaged
        parts are quarantined."""
        with self.lock():
            return self._stored_keys(column)

    def _stored_keys(self, column: str | None = None) -> set[str]:
        keys: set[str] = set()
        for part in self._part_files():
            table = _read_or_quarantine(part, [column or self.key])
            if table is not None:
                keys.update(table.column(0).to_pylist())
        return {str(k) for k in keys}

    def append(self, df: pd.DataFrame) -> None:
        """Store one finished batch of rows, minus items another writer stored meanwhile."""
        if df.empty:
            return
        with self.lock():
            if self.key in df.columns:
                done = self._stored_keys()
                fresh = ~df[self.key].astype(str).isin(done)
                self.duplicates_dropped += int((~fresh).sum())
                df = df[fresh]
            if df.empty:
                return
            self.parts.mkdir(parents=True, exist_ok=True)
            tmp = self.parts / f".part-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
            write_parquet_atomic(df, tmp, self.prov)
            os.replace(tmp, self.parts / f"part-{time.time_ns():020d}-{os.getpid()}-{file_sha256(tmp)[:16]}.parquet")

    def finish(self) -> pd.DataFrame:
        """Concatenate the parts into ``result.parquet`` (atomically, each item once) and return it."""
        with self.lock():
            self._remove_stale_temporaries()
            frames = [t.to_pandas() for t in map(_read_or_quarantine, self._part_files()) if t is not None]
            df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
            df = self._first_copy_of_each_item(frames, df)
            write_parquet_atomic(df, self.result_path, self.prov)
            write_text_atomic(
                file_sha256(self.result_path), self.result_path.with_name(self.result_path.name + ".sha256")
            )
            write_text_atomic(json.dumps(self.prov, indent=2, default=str), self.folder / "provenance.json")
        df.attrs["provenance"] = self.prov
        return df

    def _remove_stale_temporaries(self) -> None:
        """Temporary files left by a killed writer (under the lock no write is in flight)."""
        for tmp in [*self.folder.glob("*.tmp"), *self.parts.glob("*.tmp")]:
            tmp.unlink(missing_ok=True)

    def _first_copy_of_each_item(self, frames: list[pd.DataFrame], df: pd.DataFrame) -> pd.DataFrame:
        """Rows of each item from the earliest part holding it (a part holds whole items)."""
        if self.key not in df.columns:
            return df
        origin = pd.Series([i for i, f in enumerate(frames) for _ in range(len(f))], index=df.index)
        first = origin.groupby(df[self.key].astype(str)).transform("min")
        keep = origin == first
        self.duplicates_dropped += int((~keep).sum())
        return df[keep].reset_index(drop=True)

    def load(self) -> pd.DataFrame:
        return read_result(self.result_path)


class ResultsStore:
    """Folder of runs. Default location: ``$PIVOTLENS_RESULTS`` or ``<pivotlens cache>/results``
    (``~/.cache/pivotlens/results``), so every command and notebook reuses finished work."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        from probes.backend.models import cache_dir

        self.root = Path(root or os.environ.get("PIVOTLENS_RESULTS") or cache_dir() / "results")

    def run(self, prov: dict[str, object], key: str = "item") -> Run:
        """The run of ``prov``; ``key`` is the column naming an item (one resumable unit)."""
        return Run(self.root, prov, key)
