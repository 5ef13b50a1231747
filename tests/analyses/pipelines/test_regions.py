"""The region job's measuring loop (``analyses/pipelines/regions.py``) on a tiny model: each table
row is the perplexity of the model with its region changed, measured independently here; the
weights are bit-identical afterwards; a stored run resumes per region and language."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from analyses.interventions.regions import How, apply_region, restore
from analyses.pipelines.regions import Region, perturbation_table, removal_table, structure_table
from analyses.stats.regions import dimension_counts, select
from probes.backend.store import ResultsStore, provenance
from probes.perplexity import language_perplexity
from tests.conftest import CORPUS, tiny_backend

HELDOUT = {"en": CORPUS[:1] * 2, "fr": CORPUS[1:2] * 2}


def _snapshot(backend) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in backend.named_parameters().items()}


def _same_weights(backend, snapshot) -> bool:
    return all(torch.equal(p, snapshot[name]) for name, p in backend.named_parameters().items())


def _masks(backend, fraction: float, seed: int):
    scores = {n: p.detach().abs() for n, p in backend.named_parameters().items() if n.startswith("model.layers.")}
    return select(scores, fraction, "random", seed=seed)


def _regions(backend) -> list[Region]:
    return [
        Region(f"r{i}", "core", "random", "en", lambda fraction=fraction, i=i: _masks(backend, fraction, i))
        for i, fraction in enumerate((0.05, 0.3))
    ]


def _by_hand(backend, masks, how: How = "zero", seed: int = 0) -> dict[str, float]:
    """Perplexity per language with the region changed, by the intervention and the perplexity
    primitive directly (not through the job's loop)."""
    params, masks = backend.named_parameters(), masks or {}
    saved = apply_region(params, masks, how, seed=seed)
    out = {lang: language_perplexity(backend, texts, max_tokens=48)["perplexity"] for lang, texts in HELDOUT.items()}
    restore(params, masks, saved)
    return out


def test_removal_rows_are_the_perplexities_of_the_changed_models_and_the_weights_come_back():
    backend = tiny_backend("llama")
    before = _snapshot(backend)
    table = removal_table(backend, _regions(backend), HELDOUT, fraction=0.1, progress=False)
    assert _same_weights(backend, before)
    assert list(table["region"]) == ["none", "none", "r0", "r0", "r1", "r1"]
    assert list(table["lang"]) == ["en", "fr"] * 3
    for label, masks in [("none", None), *((r.label, r.load()) for r in _regions(backend))]:
        rows = table[table["region"] == label].set_index("lang")
        expected = _by_hand(backend, masks)
        assert rows["perplexity"].to_dict() == pytest.approx(expected, rel=1e-6)
        assert set(rows["n_removed"]) == {sum(int(m.sum()) for m in masks.values()) if masks else 0}
    base = table[table["region"] == "none"]["perplexity"].to_numpy()
    assert (table[table["region"] == "r1"]["perplexity"].to_numpy() != base).all()


def test_a_stored_run_resumes_per_region_and_language(tmp_path, monkeypatch):
    backend = tiny_backend("llama")
    store = ResultsStore(tmp_path)

    def run():
        return store.run(provenance("region-removal", {"test": 1}, backend.describe()))

    first = removal_table(backend, _regions(backend)[:1], HELDOUT, fraction=0.1, run=run(), progress=False)
    measured = []
    monkeypatch.setattr("analyses.pipelines.regions.run_perplexity", _counting(measured))
    both = removal_table(backend, _regions(backend), HELDOUT, fraction=0.1, run=run(), progress=False)
    assert measured == [["en", "fr"]]  # only the new region was measured, once for both languages
    pd.testing.assert_frame_equal(both[both["region"] != "r1"].reset_index(drop=True), first)
    assert list(both["region"]) == ["none", "none", "r0", "r0", "r1", "r1"]


def _counting(measured: list[list[str]]):
    from probes.perplexity import run_perplexity

    def counted(backend, texts, **options):
        measured.append(list(texts))
        return run_perplexity(backend, texts, **options)

    return counted


def test_perturbation_and_structured_removal_measure_the_changed_model_and_restore_it():
    backend = tiny_backend("llama")
    before = _snapshot(backend)
    core = _masks(backend, 0.2, seed=0)
    dims = dimension_counts(core, backend.d_model)
    perturbed = perturbation_table(backend, dims, core, HELDOUT, n_top=1, n_random=1, seed=3, progress=False)
    structured = structure_table(backend, core, HELDOUT, n_values=(2,), which=("top",), progress=False)
    assert _same_weights(backend, before)
    assert perturbed["region"].nunique() == 2 and set(perturbed["selection"]) == {"top", "random"}
    from analyses.stats.regions import dimension_region, structured_region

    top = perturbed[perturbed["selection"] == "top"].set_index("lang")
    masks = dimension_region(core, [int(top["dim"].iloc[0])], backend.d_model)
    assert top["perplexity"].to_dict() == pytest.approx(_by_hand(backend, masks, "perturb", seed=3), rel=1e-6)
    masks = structured_region(core, 2, "top", backend.d_model)
    rows = structured.set_index("lang")
    assert list(structured["region"].unique()) == ["dims-top-2"] and set(structured["n_dims"]) == {2}
    assert rows["perplexity"].to_dict() == pytest.approx(_by_hand(backend, masks), rel=1e-6)
    assert _same_weights(backend, before)
