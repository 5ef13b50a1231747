"""Results store: atomic Parquet with provenance, resume without recomputing."""

from __future__ import annotations

import json
import multiprocessing
import os
import warnings
from pathlib import Path

import pandas as pd
import pytest

from probes.backend.store import DATA_ROOT, ResultsStore, provenance, read_result, run_key

MODEL = {"model": "m", "weights_hash": "h", "backend": "transformer-lens", "dtype": "float32", "device": "cpu"}


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
    assert stored.attrs["provenance"]["data"] == {"user:words.csv": prov["data"]["user:words.csv"]}
    assert stored.attrs["provenance"]["code"]["torch"]
    assert not list(run.parts.glob("*.tmp"))


def test_run_key_changes_with_what_determines_a_result(tmp_path):
    base = provenance("lens", {"k": 1}, {"model": "m", "weights_hash": "h"})
    assert run_key(base) == run_key(provenance("lens", {"k": 1}, {"model": "m", "weights_hash": "h"}))
    assert run_key(base) != run_key(provenance("lens", {"k": 2}, {"model": "m", "weights_hash": "h"}))
    assert run_key(base) != run_key(provenance("lens", {"k": 1}, {"model": "m", "weights_hash": "other"}))


@pytest.mark.parametrize(
    "change",
    [
        {"model": {**MODEL, "dtype": "bfloat16"}},
        {"model": {**MODEL, "backend": "nnsight"}},
        {"model": {**MODEL, "device": "cuda:0"}},
        {"model": {**MODEL, "model": "other"}},
        {"lens": "tuned"},
        {"version": 2},
        {"seed": 7},
        {"params": {"k": 2}},
    ],
)
def test_run_key_holds_dtype_backend_device_lens_version_and_seed(change):
    base = {"probe": "lens", "params": {"k": 1}, "model": MODEL, "seed": 1, "version": 1, "lens": "logit"}
    assert run_key(provenance(**base)) != run_key(provenance(**{**base, **change}))


def test_device_index_and_path_spelling_do_not_change_the_key(tmp_path, monkeypatch):
    data = DATA_ROOT / "concepts.csv" if (DATA_ROOT / "concepts.csv").is_file() else next(DATA_ROOT.rglob("*.csv"))
    monkeypatch.chdir(DATA_ROOT)
    relative = provenance("lens", {}, {**MODEL, "device": "cuda:0"}, [data.relative_to(DATA_ROOT)])
    absolute = provenance("lens", {}, {**MODEL, "device": "cuda:1"}, [data])
    assert run_key(relative) == run_key(absolute)
    assert list(absolute["data"]) == [data.relative_to(DATA_ROOT).as_posix()]


def test_registered_version_is_in_the_provenance():
    from probes.lens import run_lens  # noqa: F401 (registers the probe)
    from probes.registry import PROBES

    assert provenance("lens", {})["version"] == PROBES.get("lens").version >= 1


def test_provenance_holds_no_machine_path(tmp_path):
    data = tmp_path / "words.csv"
    data.write_text("concept,en\ncloud,cloud\n")
    text = json.dumps(provenance("lens", {"k": 1}, MODEL, [data], seed=1))
    assert str(tmp_path) not in text and str(Path.home()) not in text


def _writer(root: str, items: list[str], barrier) -> None:
    from probes.lens import run_lens  # noqa: F401 (registers the probe)

    run = ResultsStore(root).run(provenance("lens", {"k": 1}, MODEL, seed=1))
    barrier.wait()
    for item in items:
        if item not in run.done_items():
            run.append(pd.DataFrame({"item": [item, item], "layer": [0, 1], "p": [0.1, 0.2]}))
    run.finish()


def test_two_writers_at_once_store_each_item_once(tmp_path):
    items = [f"i{n}" for n in range(30)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), order, barrier)) for order in (items, items[::-1])]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    run = ResultsStore(tmp_path).run(provenance("lens", {"k": 1}, MODEL, seed=1))
    table = run.load()
    assert sorted(table["item"].unique()) == sorted(items)
    assert table.groupby("item").size().eq(2).all()  # two layers per item, never more


def test_finish_keeps_the_first_copy_of_an_item_written_twice(tmp_path):
    run = ResultsStore(tmp_path).run(provenance("lens", {"k": 1}, MODEL, seed=1))
    run.append(pd.DataFrame({"item": ["a"], "p": [0.1]}))
    run.key = "none"  # a writer that did not filter (an older pivotlens) stores "a" again
    run.append(pd.DataFrame({"item": ["a", "b"], "p": [0.9, 0.2]}))
    run.key = "item"
    table = run.finish()
    assert list(table["item"]) == ["a", "b"] and list(table["p"]) == [0.1, 0.2]
    assert run.duplicates_dropped == 1


@pytest.mark.parametrize("damage", ["truncate", "zero", "flip"])
def test_damaged_part_and_result_are_quarantined_and_recomputed(tmp_path, damage):
    run = ResultsStore(tmp_path).run(provenance("lens", {"k": 1}, MODEL, seed=1))
    for item in "ab":
        run.append(pd.DataFrame({"item": [item] * 50, "p": [float(i) for i in range(50)]}))
    run.finish()
    part = min(run.parts.glob("part-*.parquet"))
    for path in (part, run.result_path):
        damage_file(path, damage)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not run.finished
        assert run.done_items() == {"b"}
    assert len(list((run.folder / "quarantine").iterdir())) == 2
    assert any("quarantine" in str(w.message) for w in caught)
    run.append(pd.DataFrame({"item": ["a"] * 50, "p": [float(i) for i in range(50)]}))
    assert sorted(run.finish()["item"].unique()) == ["a", "b"]


def damage_file(path: Path, how: str) -> None:
    """Truncate a file to half, zero it (same size), or flip bytes in its middle (same size)."""
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    elif how == "zero":
        data = bytearray(len(data))
    else:
        middle = len(data) // 3
        for i in range(middle, middle + 16):
            data[i] ^= 0xFF
    with open(path, "wb") as handle:
        handle.write(data)
        os.fsync(handle.fileno())
