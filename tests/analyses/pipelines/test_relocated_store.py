"""A results store copied to another folder, used from a copy of the code in another folder,
serves every stored run: nothing is computed again (run keys hold no machine paths)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = """
import sys
import analyses.pipelines.lens as job
from probes.backend import load
from probes.backend.store import ResultsStore

model, store, compute = sys.argv[1], sys.argv[2], sys.argv[3] == "compute"
if not compute:
    def refuse(*args, **kwargs):
        raise SystemExit("computed a lens run that was stored")
    job.run_lens = refuse
table = job.run_languages(load(model), ["fr", "de"], limit=4, store=ResultsStore(store), progress=False)
print(len(table))
"""


def _run(code_root: Path, model: Path, store: Path, mode: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(  # noqa: PLW1510 (the return code is asserted with the stderr)
        [sys.executable, "-c", SCRIPT, str(model), str(store), mode],
        cwd=code_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_moved_store_and_clone_compute_nothing(tmp_path, tiny_model_folder):
    first = _run(ROOT, tiny_model_folder, tmp_path / "store", "compute")
    clone = tmp_path / "elsewhere" / "pivotlens"
    for package in ("probes", "analyses", "data"):
        shutil.copytree(ROOT / package, clone / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(tmp_path / "store", tmp_path / "moved-store")
    shutil.rmtree(tmp_path / "store")
    model = shutil.copytree(tiny_model_folder, tmp_path / "models" / tiny_model_folder.name)
    assert _run(clone, model, tmp_path / "moved-store", "reuse") == first
    for prov in (tmp_path / "moved-store").rglob("provenance.json"):
        text = prov.read_text()
        assert str(tmp_path) not in text and str(ROOT) not in text, json.loads(text)["data"]
