"""A probe's ``version`` (declared in ``register_probe``) is part of every stored run's key, so it
must change whenever the probe's numbers change. Each probe below runs on a fixed tiny model; the
sha256 of its rounded output table is kept in ``probe_golden.json`` with the version it was
computed under. A changed table under an unchanged version fails.

After a deliberate change: bump ``version=`` in the probe's ``register_probe`` and regenerate with
``PIVOTLENS_REGENERATE_GOLDEN=1 python -m pytest tests/probes/test_probe_versions.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from probes.importance import run_importance
from probes.inputs.instruction_data import load_instructions
from probes.inputs.prompts import build_prompts
from probes.interference import instruction_pairs, run_interference
from probes.lens import run_lens
from probes.perplexity import run_perplexity
from probes.registry import PROBES
from tests import FIXTURES
from tests.conftest import CORPUS, tiny_backend

GOLDEN = Path(__file__).with_name("probe_golden.json")
WORDS = pd.DataFrame(
    {
        "concept": ["cloud", "river", "white"],
        "en": ["cloud", "river", "white"],
        "fr": ["nuage", "rivière", "blanc"],
        "de": ["Wolke", "Fluss", "weiß"],
    }
)


def _lens():
    return run_lens(tiny_backend("llama"), build_prompts("translation", WORDS, "de", src="fr"), progress=False)


def _importance():
    return run_importance(tiny_backend("llama"), {"fr": CORPUS[1:10:5]}, progress=False)


def _perplexity():
    return run_perplexity(tiny_backend("llama"), {"fr": CORPUS[1:10:5], "de": CORPUS[2:10:5]}, progress=False)


def _interference():
    backend = tiny_backend("llama")
    pairs = instruction_pairs(
        backend, load_instructions(FIXTURES / "parallel_instructions.csv"), "en", "fr", k=1, batch_size=2
    )
    return run_interference(backend, pairs, progress=False)


RUNS = {"lens": _lens, "importance": _importance, "perplexity": _perplexity, "interference": _interference}


def table_digest(table: pd.DataFrame) -> str:
    """sha256 of the table with floats rounded to 4 significant digits, rows and columns sorted."""
    table = table[sorted(table.columns)].copy()
    for column in table.columns:
        if pd.api.types.is_float_dtype(table[column]):
            table[column] = table[column].map(lambda v: f"{v:.4g}")
        else:
            table[column] = table[column].astype(str)
    table = table.sort_values(list(table.columns)).reset_index(drop=True)
    return hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()


@pytest.mark.parametrize("probe", sorted(RUNS))
def test_numbers_change_only_with_the_version(probe):
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
    version, digest = PROBES.get(probe).version, table_digest(RUNS[probe]())
    if os.environ.get("PIVOTLENS_REGENERATE_GOLDEN"):
        golden[probe] = {"version": version, "sha256": digest}
        GOLDEN.write_text(json.dumps(dict(sorted(golden.items())), indent=2) + "\n")
        return
    stored = golden.get(probe)
    assert stored is not None, f"no golden table for {probe}; regenerate (see this file's docstring)"
    if stored["version"] == version:
        assert stored["sha256"] == digest, (
            f"{probe}'s numbers changed but its version is still {version}: bump version= in its register_probe "
            "and regenerate the golden tables (see this file's docstring)"
        )
    else:
        pytest.fail(f"{probe} is now version {version} (golden: {stored['version']}); regenerate the golden tables")
