"""Gradient-cosine interference: identities, agreement with a manual torch computation, the
pivoted read-out, options, and resuming through the results store."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from probes.backend.store import ResultsStore, provenance
from probes.inputs.instruction_data import load_instructions
from probes.interference import (
    INTERFERENCE_COLUMNS,
    Readout,
    instruction_pairs,
    run_interference,
    select_params,
)
from tests import FIXTURES
from tests.conftest import EMBEDDED_MODELS, embedded, tiny_backend, tiny_hf_model

FIXTURE = FIXTURES / "parallel_instructions.csv"


def _pairs(backend, lang_a="en", lang_b="fr", k=2, pairing="independent", batch_size=3):
    return instruction_pairs(
        backend, load_instructions(FIXTURE), lang_a, lang_b, k=k, batch_size=batch_size, pairing=pairing
    )


def _manual_grads(model, batch, layer=None, alpha=0.0) -> dict[str, torch.Tensor]:
    """Plain transformers: the loss at the output (or after block ``layer`` through the final
    norm and head, with label smoothing) and its gradients."""
    model.zero_grad(set_to_none=True)
    if layer is None:
        loss = model(**batch.enc.model_inputs(), labels=batch.labels).loss
    else:
        hidden = model(**batch.enc.model_inputs(), output_hidden_states=True).hidden_states[layer + 1]
        logits = model.lm_head(model.model.norm(hidden))
        loss = F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]),
            batch.labels[:, 1:].reshape(-1),
            ignore_index=-100,
            label_smoothing=alpha,
        )
    loss.backward()
    return {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in model.named_parameters()}


def _cos(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return float(F.cosine_similarity(torch.cat([x.flatten() for x in a]), torch.cat([x.flatten() for x in b]), dim=0))


def test_cosine_of_a_batch_with_itself_is_one():
    backend = tiny_backend("llama")
    table = run_interference(backend, _pairs(backend, "en", "en", k=1, pairing="parallel"), progress=False)
    assert set(table["scope"]) == {"tensor", "module", "layer", "model"}
    assert (table["cosine"] - 1).abs().max() < 1e-5
    assert list(table.columns) == list(INTERFERENCE_COLUMNS)


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_per_layer_cosines_match_a_manual_torch_computation(kind):
    backend = tiny_backend(kind)
    reference = tiny_hf_model(kind)  # same seed: the same weights as the backend's model
    pairs = _pairs(backend)
    table = run_interference(backend, pairs, progress=False)
    mean_table = run_interference(backend, pairs[:1], aggregation="mean", progress=False)
    for pair in pairs:
        grads_a, grads_b = _manual_grads(reference, pair.a), _manual_grads(reference, pair.b)
        rows = table[table["batch"] == pair.index]
        for layer in range(3):
            names = [n for n in grads_a if n.startswith(f"model.layers.{layer}.")]
            got = rows[(rows["layer"] == layer) & (rows["module"] == "all")]["cosine"].item()
            assert got == pytest.approx(_cos([grads_a[n] for n in names], [grads_b[n] for n in names]), abs=1e-5)
            q = f"model.layers.{layer}.self_attn.q_proj.weight"
            got_q = rows[(rows["layer"] == layer) & (rows["module"] == "q") & (rows["scope"] == "module")][
                "cosine"
            ].item()
            assert got_q == pytest.approx(_cos([grads_a[q]], [grads_b[q]]), abs=1e-5)
            if pair.index == 0:
                per_tensor = [_cos([grads_a[n]], [grads_b[n]]) for n in names]
                got_mean = mean_table[(mean_table["layer"] == layer) & (mean_table["module"] == "all")]["cosine"].item()
                assert got_mean == pytest.approx(sum(per_tensor) / len(per_tensor), abs=1e-5)
        whole = rows[rows["module"] == "model"]["cosine"].item()
        assert whole == pytest.approx(_cos(list(grads_a.values()), list(grads_b.values())), abs=1e-5)
        with torch.no_grad():
            loss_a = reference(**pair.a.enc.model_inputs(), labels=pair.a.labels).loss.item()
        assert rows["loss_a"].iloc[0] == pytest.approx(loss_a, rel=1e-5)


def test_pivoted_readout_matches_manual_and_upper_layers_get_no_gradient():
    backend, reference = tiny_backend("llama"), tiny_hf_model("llama")
    pair = _pairs(backend, k=1)[0]
    table = run_interference(backend, [pair], objective="pivoted", readout_a=Readout(1, 0.1, 0.1), progress=False)
    grads_a, grads_b = _manual_grads(reference, pair.a, layer=1, alpha=0.1), _manual_grads(reference, pair.b)
    layers = table[table["module"] == "all"].set_index("layer")
    for layer in (0, 1):
        names = [n for n in grads_a if n.startswith(f"model.layers.{layer}.")]
        assert layers.at[layer, "cosine"] == pytest.approx(
            _cos([grads_a[n] for n in names], [grads_b[n] for n in names]), abs=1e-5
        )
        norm = torch.cat([grads_a[n].flatten() for n in names]).norm()
        assert layers.at[layer, "norm_a"] == pytest.approx(0.1 * float(norm), rel=1e-4)  # lambda scales the gradient
    assert layers.at[2, "norm_a"] == 0 and layers.at[2, "cosine"] == 0 and layers.at[2, "norm_b"] > 0
    assert table["objective"].unique().tolist() == ["pivoted"]


def test_weights_scale_dots_but_not_cosines_and_reductions_differ():
    backend = tiny_backend("llama")
    pairs = _pairs(backend, k=1)
    base = run_interference(backend, pairs, progress=False)
    scaled = run_interference(backend, pairs, readout_a=Readout(weight=3.0), progress=False)
    assert torch.allclose(torch.tensor(base["cosine"].to_numpy()), torch.tensor(scaled["cosine"].to_numpy()), atol=1e-6)
    assert torch.allclose(torch.tensor(3 * base["dot"].to_numpy()), torch.tensor(scaled["dot"].to_numpy()), rtol=1e-5)
    per_sequence = run_interference(backend, pairs, reduction="sequence_mean", progress=False)
    assert (per_sequence["cosine"] - base["cosine"]).abs().max() > 1e-4


def test_backends_agree():
    tables = [
        run_interference(b, _pairs(b, k=1), progress=False)
        for b in (tiny_backend("gemma3"), tiny_backend("gemma3", backend="nnsight"))
    ]
    assert (tables[0]["cosine"] - tables[1]["cosine"]).abs().max() < 1e-6


def test_parameter_subsets_and_layers():
    backend = tiny_backend("llama")
    pairs = _pairs(backend, k=1)
    matrices = run_interference(backend, pairs, params="matrices", layers=[2], progress=False)
    assert set(matrices["layer"].dropna()) == {2}
    assert "norms" not in set(matrices["module"]) and "embed" not in set(matrices["module"])
    # one block alone: its cosine is the same as in the full run
    full = run_interference(backend, pairs, params="blocks", progress=False)

    def pick(t):
        return t[(t["layer"] == 2) & (t["module"] == "q") & (t["scope"] == "module")]["cosine"].item()

    assert pick(matrices) == pytest.approx(pick(full), abs=1e-6)
    with pytest.raises(ValueError, match="all, blocks, matrices"):
        select_params(backend, "heads")
    with pytest.raises(KeyError, match="Hugging Face names"):
        select_params(backend, ["model.layers.0.nope"])


def test_finished_pairs_are_stored_and_skipped_on_a_rerun(tmp_path, monkeypatch):
    backend = tiny_backend("llama")
    pairs = _pairs(backend, k=2)
    run = ResultsStore(tmp_path).run(provenance("interference", {"k": 2}, backend.describe()))
    run_interference(backend, pairs[:1], run=run, progress=False)  # "interrupted" after one pair
    calls = []
    original = type(backend).grad_stream
    monkeypatch.setattr(
        type(backend), "grad_stream", lambda self, *a, **kw: calls.append(1) or original(self, *a, **kw)
    )
    table = run_interference(backend, pairs, run=run, progress=False)
    assert len(calls) == 2  # one pair (two batches) computed, the stored one skipped
    assert sorted(table["batch"].unique()) == [0, 1]
    assert table.attrs["provenance"]["probe"] == "interference"


@pytest.mark.slow
@pytest.mark.parametrize("name", EMBEDDED_MODELS)
def test_embedded_last_layers(name):
    """Real models, cheap: the last two blocks only, one pair of two examples."""
    backend = embedded(name)
    table = load_instructions()
    last = [backend.n_layers - 2, backend.n_layers - 1]
    self_pair = instruction_pairs(backend, table, "en", "en", k=1, batch_size=2, pairing="parallel", max_length=64)
    same = run_interference(backend, self_pair, params="blocks", layers=last, progress=False)
    assert (same["cosine"] - 1).abs().max() < 1e-4
    cross = run_interference(
        backend,
        instruction_pairs(backend, table, "en", "sw", k=1, batch_size=2, max_length=64),
        params="blocks",
        layers=last,
        progress=False,
    )
    layer_rows = cross[cross["module"] == "all"]
    assert len(layer_rows) == 2 and layer_rows["cosine"].between(-1, 1).all() and (layer_rows["cosine"] < 0.99).all()
