"""Fault injection: kill -9 during a lens run, two writers at once, damaged Parquet and
safetensors files, a killed model conversion. The store and the model cache must heal, and a
resumed run must equal an uninterrupted one exactly.

The children are forked from the test process (the tiny model is already built, so a child
starts in milliseconds); the suite prints its counts at the end.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
import warnings
from collections import Counter

import pandas as pd
import pytest
import torch

from probes.backend import models
from probes.backend.store import ResultsStore, provenance
from probes.inputs.prompts import lens_prompts
from probes.lens import run_lens
from tests.conftest import tiny_backend
from tests.probes.backend.test_models import fake_embedded  # noqa: F401 (fixture)
from tests.probes.backend.test_store import damage_file

WORDS = pd.DataFrame(
    {
        "concept": [
            "cloud",
            "river",
            "white",
            "long",
            "sun",
            "moon",
            "tree",
            "water",
            "fire",
            "stone",
            "bird",
            "house",
        ],
        "en": ["cloud", "river", "white", "long", "sun", "moon", "tree", "water", "fire", "stone", "bird", "house"],
        "fr": [
            "nuage",
            "rivière",
            "blanc",
            "longue",
            "soleil",
            "lune",
            "arbre",
            "eau",
            "feu",
            "pierre",
            "oiseau",
            "maison",
        ],
        "de": ["Wolke", "Fluss", "weiß", "lang", "Sonne", "Mond", "Baum", "Wasser", "Feuer", "Stein", "Vogel", "Haus"],
    }
)
KILLS = 20
COUNTS: Counter[str] = Counter()
FORK = multiprocessing.get_context("fork")


@pytest.fixture(scope="module", autouse=True)
def print_counts(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = ", ".join(f"{k}: {COUNTS[k]}" for k in ("kills survived", "duplicates found", "files healed"))
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        reporter.write_line(f"\nfault injection: {line}")


@pytest.fixture(scope="module")
def backend():
    torch.set_num_threads(1)
    return tiny_backend("llama")


def _lens(backend, store_root, batch_size: int = 4) -> pd.DataFrame:
    prompts = lens_prompts("translation", WORDS, "de", src="fr")
    run = ResultsStore(store_root).run(provenance("lens", {"lang": "de"}, backend.describe(), seed=0))
    return run.load() if run.finished else run_lens(backend, prompts, batch_size=batch_size, run=run, progress=False)


def _in_child(fn, *args) -> multiprocessing.Process:
    def body():
        warnings.simplefilter("ignore")
        fn(*args)
        os._exit(0)

    process = FORK.Process(target=body)
    process.start()
    return process


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(["item", "layer"]).reset_index(drop=True)


def _assert_each_item_once(table: pd.DataFrame, n_layers: int) -> None:
    per_item = table.groupby("item").size()
    COUNTS["duplicates found"] += int((per_item - n_layers).clip(lower=0).sum())
    assert per_item.eq(n_layers).all()


def test_kill_9_at_random_points_then_resume_equals_an_uninterrupted_run(backend, tmp_path):
    started = time.perf_counter()
    reference = _lens(backend, tmp_path / "reference")
    full = time.perf_counter() - started
    rng = random.Random(21)
    store = tmp_path / "killed"
    for _ in range(KILLS):
        child = _in_child(_lens, backend, store)
        time.sleep(rng.uniform(0, full / KILLS))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL, "the run finished before the kill: give it more prompts"
        COUNTS["kills survived"] += 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = _lens(backend, store)
    COUNTS["files healed"] += sum("quarantine" in str(w.message) for w in caught)
    _assert_each_item_once(resumed, backend.n_layers)
    pd.testing.assert_frame_equal(_sorted(resumed), _sorted(reference), check_exact=True)


def test_two_lens_runs_at_once_store_each_item_once(backend, tmp_path):
    children = [_in_child(_lens, backend, tmp_path) for _ in range(2)]
    for child in children:
        child.join(120)
        assert child.exitcode == 0
    table = _lens(backend, tmp_path)
    _assert_each_item_once(table, backend.n_layers)
    pd.testing.assert_frame_equal(_sorted(table), _sorted(_lens(backend, tmp_path / "reference")), check_exact=True)


@pytest.mark.parametrize("damage", ["truncate", "zero", "flip"])
def test_damaged_parts_and_result_are_recomputed(backend, tmp_path, damage):
    reference = _lens(backend, tmp_path)
    run_folder = next((tmp_path / "lens").iterdir())
    damaged = [min((run_folder / "parts").glob("part-*.parquet")), run_folder / "result.parquet"]
    for path in damaged:
        damage_file(path, damage)
    with pytest.warns(UserWarning, match="quarantine") as caught:
        healed = _lens(backend, tmp_path)
    COUNTS["files healed"] += len(caught)
    assert len(list((run_folder / "quarantine").iterdir())) == len(damaged)
    pd.testing.assert_frame_equal(_sorted(healed), _sorted(reference), check_exact=True)


@pytest.mark.parametrize("damage", ["truncate", "zero", "flip"])
def test_damaged_safetensors_in_the_model_cache_is_rebuilt(fake_embedded, damage):  # noqa: F811
    folder = models.ensure_embedded("tiny-embedded")
    damage_file(folder / "model.safetensors", damage)
    with pytest.warns(UserWarning, match="rebuilding"):
        models.ensure_embedded("tiny-embedded")
    COUNTS["files healed"] += 1
    assert models.cache_problem(folder) is None and len(fake_embedded) == 2


def test_a_killed_conversion_leaves_nothing_after_the_next_load(fake_embedded, monkeypatch):  # noqa: F811
    target = models.embedded_cache_path("tiny-embedded")
    real_convert = models._convert_embedded

    def convert_and_hang(model, target):
        target.with_name(target.name + f".tmp-{os.getpid()}").mkdir(parents=True)
        time.sleep(60)

    monkeypatch.setattr(models, "_convert_embedded", convert_and_hang)
    child = _in_child(models.ensure_embedded, "tiny-embedded")
    deadline = time.time() + 30
    while not list(target.parent.glob("*.tmp-*")) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    COUNTS["kills survived"] += 1
    assert list(target.parent.glob("*.tmp-*"))
    monkeypatch.setattr(models, "_convert_embedded", real_convert)
    models.ensure_embedded("tiny-embedded")
    assert not list(target.parent.glob("*.tmp*")) and models.cache_problem(target) is None
