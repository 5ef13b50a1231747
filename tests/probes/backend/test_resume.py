"""The shared resume protocol: an interrupted run computes only the missing items."""

from __future__ import annotations

import pandas as pd
import pytest

from probes.backend.resume import collect
from probes.backend.store import ResultsStore, provenance

COLUMNS = ["item", "square"]


def squares(calls: list[list[int]], fail_at: int | None = None):
    def compute(batch: list[int]) -> pd.DataFrame:
        if len(calls) == fail_at:
            raise KeyboardInterrupt
        calls.append(batch)
        return pd.DataFrame({"item": [str(i) for i in batch], "square": [i * i for i in batch]})

    return compute


def test_without_a_run_the_batches_are_concatenated_in_order():
    calls: list[list[int]] = []
    table = collect([3, 1, 2], squares(calls), key=str, columns=COLUMNS, batch_size=2, progress=False)
    assert calls == [[3, 1], [2]] and table["square"].tolist() == [9, 1, 4]
    empty = collect([], squares(calls), key=str, columns=COLUMNS, progress=False)
    assert empty.empty and list(empty.columns) == COLUMNS


def test_an_interrupted_run_computes_only_the_missing_items(tmp_path):
    store = ResultsStore(tmp_path)
    prov = provenance("squares", {"n": 5}, {"model": "none"})
    calls: list[list[int]] = []
    with pytest.raises(KeyboardInterrupt):
        collect(
            range(5),
            squares(calls, fail_at=1),
            key=str,
            columns=COLUMNS,
            run=store.run(prov),
            batch_size=2,
            progress=False,
        )
    assert calls == [[0, 1]]
    table = collect(
        range(5), squares(calls), key=str, columns=COLUMNS, run=store.run(prov), batch_size=2, progress=False
    )
    assert calls == [[0, 1], [2, 3], [4]]
    assert sorted(table["square"]) == [0, 1, 4, 9, 16] and store.run(prov).finished


def test_a_finished_run_is_loaded_and_new_items_extend_it(tmp_path):
    store = ResultsStore(tmp_path)
    prov = provenance("squares", {"n": 3}, {"model": "none"})
    calls: list[list[int]] = []
    collect([1, 2], squares(calls), key=str, columns=COLUMNS, run=store.run(prov), progress=False)
    written = store.run(prov).result_path.stat().st_mtime_ns
    again = collect([1, 2], squares(calls), key=str, columns=COLUMNS, run=store.run(prov), progress=False)
    assert len(calls) == 2 and store.run(prov).result_path.stat().st_mtime_ns == written and len(again) == 2
    extended = collect([1, 2, 3], squares(calls), key=str, columns=COLUMNS, run=store.run(prov), progress=False)
    assert calls[-1] == [3] and sorted(extended["square"]) == [1, 4, 9]
