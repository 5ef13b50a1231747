"""Results store: atomic Parquet with provenance, resume without recomputing."""

from __future__ import annotations

import pandas as pd

from probes.backend.store import ResultsStore, provenance, read_result, run_key


def test_parts_resume_and_finish_with_provenance(tmp_path):
    data = tmp_path / "words.csv"
    data.write_text("concept,en\ncloud,cloud\n")
    prov = provenance("lens", {"task": "translation"}, {"model": "m", "weights_hash": "h"}, [data], seed=1)
    run = ResultsStore(tmp_path / "results").run(prov)
    assert run.done_items() == set()
    run.append(pd.DataFrame({"item": ["a", "a"], "layer": [0, 1], "p": [0.1, 0.2]}))
    # a second process after an interruption sees the finished batch
    again = ResultsStore(tmp_path / "results").run(
        provenance("lens", {"task": "translation"}, {"model": "m", "weights_hash": "h"}, [data], seed=1)
    )
    assert again.folder == run.folder and again.done_items() == {"a"}
    again.append(pd.DataFrame({"item": ["b"], "layer": [0], "p": [0.3]}))
    df = again.finish()
    assert list(df["item"]) == ["a", "a", "b"]
    stored = read_result(again.result_path)
    assert stored.attrs["provenance"]["data"][str(data)] == prov["data"][str(data)]
    assert stored.attrs["provenance"]["code"]["torch"]
    assert not list(run.parts.glob("*.tmp"))


def test_run_key_changes_with_what_determines_a_result(tmp_path):
    base = provenance("lens", {"k": 1}, {"model": "m", "weights_hash": "h"})
    assert run_key(base) == run_key(provenance("lens", {"k": 1}, {"model": "m", "weights_hash": "h"}))
    assert run_key(base) != run_key(provenance("lens", {"k": 2}, {"model": "m", "weights_hash": "h"}))
    assert run_key(base) != run_key(provenance("lens", {"k": 1}, {"model": "m", "weights_hash": "other"}))
