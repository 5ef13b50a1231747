"""Old provenance rewritten without machine paths; tables untouched."""

from __future__ import annotations

import json

import pandas as pd

from analyses.pipelines.scrub_provenance import ROOT, parquet_records, scrub_folder, scrub_text
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


def test_the_copy_pandas_keeps_of_a_tables_attrs_is_rewritten(tmp_path):
    table = pd.DataFrame({"x": [1.5, 2.5]})
    table.attrs["provenance"] = {"data": {f"{ROOT}/data/concepts.csv": "abc"}}
    table.to_parquet(tmp_path / "t.parquet", index=False)  # pandas keeps attrs in its own schema records
    assert any(str(ROOT) in text for text in parquet_records(tmp_path / "t.parquet").values())
    assert scrub_folder(tmp_path) == [tmp_path / "t.parquet"]
    assert not any(str(ROOT) in text for text in parquet_records(tmp_path / "t.parquet").values())
    assert pd.read_parquet(tmp_path / "t.parquet").attrs["provenance"] == {"data": {"data/concepts.csv": "abc"}}
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), table)


def test_committed_results_hold_no_machine_path():
    """Every provenance record under ``results/`` (JSON files, Parquet metadata) is already portable."""
    folder = ROOT / "results"
    records = [(path, path.read_text(encoding="utf-8")) for path in folder.rglob("*.json")]
    records += [(path, text) for path in folder.rglob("*.parquet") for text in parquet_records(path).values()]
    assert len(records) > 10
    left = sorted({str(path.relative_to(ROOT)) for path, text in records if scrub_text(text) != text})
    assert not left, f"machine paths in {left}; rewrite them with analyses.pipelines.scrub_provenance.scrub_folder"
