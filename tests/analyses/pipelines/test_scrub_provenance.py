"""Old provenance rewritten without machine paths; tables untouched."""

from __future__ import annotations

import json

import pandas as pd

from analyses.pipelines.scrub_provenance import ROOT, scrub_folder, scrub_text
from probes.backend.store import read_result, write_parquet_atomic


def test_paths_become_portable_labels(tmp_path):
    cache = tmp_path / "cache"
    text = json.dumps(
        {
            "data": {f"{ROOT}/data/concepts.csv": "abc"},
            "source": f"{cache}/models/gemma-3-270m",
            "other": "/home/someone/project/words.csv",
            "id": "google/gemma-3-270m",
        }
    )
    clean = json.loads(scrub_text(text, cache=cache))
    assert clean == {
        "data": {"data/concepts.csv": "abc"},
        "source": "<cache>/models/gemma-3-270m",
        "other": "project/words.csv",
        "id": "google/gemma-3-270m",
    }


def test_folder_json_and_parquet_metadata_are_rewritten(tmp_path):
    prov = {"data": {f"{ROOT}/data/concepts.csv": "abc"}}
    (tmp_path / "provenance.json").write_text(json.dumps(prov))
    table = pd.DataFrame({"x": [1.5, 2.5]})
    write_parquet_atomic(table, tmp_path / "t.parquet", prov)
    assert len(scrub_folder(tmp_path)) == 2
    stored = read_result(tmp_path / "t.parquet")
    assert stored.attrs["provenance"] == {"data": {"data/concepts.csv": "abc"}}
    pd.testing.assert_frame_equal(stored, table)
    assert str(ROOT) not in (tmp_path / "provenance.json").read_text()
    assert scrub_folder(tmp_path) == []


def test_checkout_anywhere_is_made_relative(tmp_path):
    root = tmp_path.parent / "check" / "work" / "main"
    text = json.dumps({"data": {f"{root}/data/concepts.csv": "abc"}, "dir": f"{root}/results/x"})
    clean = json.loads(scrub_text(text, root=root, cache=tmp_path / "cache"))
    assert clean == {"data": {"data/concepts.csv": "abc"}, "dir": "results/x"}
