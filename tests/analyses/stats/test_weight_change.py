"""Weight-change maps on tiny models, against hand computations with numpy (Bandarkar et al., ICLR 2025)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, Phi3Config

from analyses.figures.weight_change import weight_change_figure
from analyses.stats.weight_change import MODULES, change_profile, weight_change
from probes.backend.checkpoint import CheckpointMismatchError
from probes.backend.errors import PivotlensError, UnsupportedArchitectureError
from tests.conftest import tiny_hf_model

HF_NAMES = {
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "o": "self_attn.o_proj",
    "gate": "mlp.gate_proj",
    "up": "mlp.up_proj",
    "down": "mlp.down_proj",
}


def _save(model, folder: Path) -> Path:
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path, dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]]:
    """A tiny Llama and a copy whose matrices moved by different, known amounts; the (W_base, ΔW)
    of every matrix as numpy arrays for the hand computation."""
    root = tmp_path_factory.mktemp("wc")
    base = tiny_hf_model("llama", n_layers=3, seed=0)
    _save(base, root / "base")
    generator = torch.Generator().manual_seed(7)
    matrices = {}
    with torch.no_grad():
        for layer in range(3):
            for i, module in enumerate(MODULES):
                weight = base.get_parameter(f"model.layers.{layer}.{HF_NAMES[module]}.weight")
                w0 = weight.detach().clone()
                scale = 0.0 if (layer, module) == (1, "k") else 0.01 * (1 + layer) * (1 + i) ** 1.5
                delta = scale * torch.randn(weight.shape, generator=generator)
                weight.add_(delta)
                matrices[(layer, module)] = (
                    w0.numpy().astype(np.float64),
                    (weight.detach() - w0).numpy().astype(np.float64),
                )
        base.model.norm.weight.add_(1.0)  # outside the seven modules: must not enter the maps
    _save(base, root / "tuned")
    return root / "base", root / "tuned", matrices


def _value(table: pd.DataFrame, layer: int, module: str, metric: str) -> float:
    row = table[(table["layer"] == layer) & (table["module"] == module) & (table["metric"] == metric)]
    assert len(row) == 1
    return float(row["value"].iloc[0])


def test_relative_metrics_equal_the_hand_computation(pair):
    base, tuned, matrices = pair
    table = weight_change(base, tuned, metrics=["rel_mean_abs", "rel_frobenius"], progress=False)
    assert list(table.columns[:4]) == ["layer", "module", "metric", "value"]
    assert len(table) == 3 * 7 * 2
    for (layer, module), (w0, delta) in matrices.items():
        assert _value(table, layer, module, "rel_mean_abs") == pytest.approx(
            np.abs(delta).mean() / np.abs(w0).mean(), rel=1e-5, abs=1e-9
        )
        assert _value(table, layer, module, "rel_frobenius") == pytest.approx(
            np.linalg.norm(delta) / np.linalg.norm(w0), rel=1e-5, abs=1e-9
        )
    assert _value(table, 1, "k", "rel_frobenius") == 0.0


@pytest.mark.parametrize("top_percent", [0.5, 1.0, 10.0, 100.0])
def test_top_fraction_equals_the_hand_computation(pair, top_percent):
    base, tuned, matrices = pair
    table = weight_change(base, tuned, metrics=["top_fraction"], top_percent=top_percent, progress=False)
    pooled = np.concatenate([np.abs(d).ravel() for _, d in matrices.values()])
    k = math.ceil(top_percent / 100 * pooled.size)
    tau = np.sort(pooled)[::-1][k - 1]
    for (layer, module), (_, delta) in matrices.items():
        a = np.abs(delta)
        expected = ((a >= tau) & (a > 0)).sum() / a.size
        assert _value(table, layer, module, "top_fraction") == pytest.approx(expected, abs=1e-12), (layer, module)
    shares = table.assign(mass=table["value"] * table["n_params"])
    if top_percent < 100:  # the selected entries are (up to ties) exactly top_percent% of all entries
        assert shares["mass"].sum() == pytest.approx(k, abs=2)


def test_top_fraction_is_exact_inside_one_bin(tmp_path):
    """Thousands of |ΔW| values share the float32 bin of the threshold: the second pass must
    rank them exactly (ΔW in [1, 1.2) with steps of 2^-20, bins 1/128 wide)."""
    base = tiny_hf_model("llama", n_layers=2, seed=0)
    deltas = {}
    with torch.no_grad():
        for layer in range(2):
            for i, module in enumerate(MODULES):
                weight = base.get_parameter(f"model.layers.{layer}.{HF_NAMES[module]}.weight")
                steps = torch.randperm(weight.numel(), generator=torch.Generator().manual_seed(layer * 7 + i)).float()
                deltas[(layer, module)] = (1.0 + (layer * 7 + i) * 2.0**-8 + steps * 2.0**-20).reshape(weight.shape)
                weight.zero_()
        _save(base, tmp_path / "base")
        for (layer, module), delta in deltas.items():
            base.get_parameter(f"model.layers.{layer}.{HF_NAMES[module]}.weight").copy_(delta)
    _save(base, tmp_path / "tuned")
    table = weight_change(
        tmp_path / "base", tmp_path / "tuned", metrics=["top_fraction"], top_percent=20, progress=False
    )
    pooled = torch.cat([d.ravel() for d in deltas.values()]).double().numpy()
    k = math.ceil(0.2 * pooled.size)
    tau = np.sort(pooled)[::-1][k - 1]
    in_bin = np.abs(pooled - tau) < 2.0**-7
    assert in_bin.sum() > 1000  # the threshold's bin is crowded
    for (layer, module), delta in deltas.items():
        expected = (delta.double().numpy() >= tau).mean()
        assert _value(table, layer, module, "top_fraction") == expected, (layer, module)
    assert (table["value"] * table["n_params"]).sum() == k  # no ties: exactly the top k entries


def test_gpt2_fused_attention_is_split(tmp_path):
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=50, n_positions=32)
    model = AutoModelForCausalLM.from_config(config)
    model.config.architectures = ["GPT2LMHeadModel"]
    _save(model, tmp_path / "base")
    with torch.no_grad():
        model.transformer.h[1].attn.c_attn.weight[:, 32:64] += 0.5  # the k third only
    _save(model, tmp_path / "tuned")
    table = weight_change(tmp_path / "base", tmp_path / "tuned", metrics=["rel_frobenius"], progress=False)
    assert set(table["module"]) == {"q", "k", "v", "o", "up", "down"}  # GPT-2 has no gate
    changed = table[table["value"] > 0]
    assert list(zip(changed["layer"], changed["module"])) == [(1, "k")]


def test_unsupported_and_mismatched_checkpoints(tmp_path):
    config = Phi3Config(
        num_hidden_layers=2,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=50,
        pad_token_id=0,
    )
    phi = AutoModelForCausalLM.from_config(config)
    phi.config.architectures = ["Phi3ForCausalLM"]
    _save(phi, tmp_path / "phi_a")
    _save(phi, tmp_path / "phi_b")
    with pytest.raises(UnsupportedArchitectureError) as err:
        weight_change(tmp_path / "phi_a", tmp_path / "phi_b", progress=False)
    assert "Phi3ForCausalLM" in str(err.value) and "\n" not in str(err.value)
    _save(tiny_hf_model("llama", n_layers=2), tmp_path / "two")
    _save(tiny_hf_model("llama", n_layers=3), tmp_path / "three")
    with pytest.raises(CheckpointMismatchError, match="different depths"):
        weight_change(tmp_path / "two", tmp_path / "three", progress=False)
    with pytest.raises(PivotlensError, match="unknown metric"):
        weight_change(tmp_path / "two", tmp_path / "three", metrics=["l1"], progress=False)


def test_figure_and_profile_come_from_the_table(pair):
    base, tuned, _ = pair
    table = weight_change(base, tuned, progress=False)
    other = table.assign(value=table["value"] / 2)
    fig = weight_change_figure({"task": table, "lang": other}, "rel_frobenius", difference=("task", "lang"))
    assert len(fig.data) == 3
    grid = np.array(fig.data[0].z)
    assert grid.shape == (3, 7) and list(fig.data[0].x) == list(MODULES) and list(fig.data[0].y) == [0, 1, 2]
    assert grid[2, 6] == pytest.approx(_value(table, 2, "down", "rel_frobenius"))
    np.testing.assert_allclose(np.array(fig.data[2].z), grid / 2)
    profile = change_profile(table, "rel_frobenius")
    rows = table[(table["metric"] == "rel_frobenius") & (table["layer"] == 0)]
    assert profile.loc[profile["layer"] == 0, "value"].item() == pytest.approx(
        (rows["value"] * rows["n_params"]).sum() / rows["n_params"].sum()
    )


def test_weight_change_command(pair, tmp_path):
    from typer.testing import CliRunner

    from analyses.cli import app

    base, tuned, matrices = pair
    out = tmp_path / "maps"
    result = CliRunner().invoke(
        app,
        [
            "--out",
            str(out),
            "weight-change",
            "--base",
            str(base),
            "--tuned",
            str(tuned),
            "--tuned",
            str(base),
            "--label",
            "tuned",
            "--label",
            "same",
            "--metric",
            "rel_mean_abs",
        ],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "weight_change.csv")
    assert {"layer", "module", "metric", "value", "expert"} <= set(table.columns)
    assert (table.loc[table["expert"] == "same", "value"] == 0).all()
    w0, delta = matrices[(2, "up")]
    row = table[(table["expert"] == "tuned") & (table["layer"] == 2) & (table["module"] == "up")]
    assert row["value"].item() == pytest.approx(np.abs(delta).mean() / np.abs(w0).mean(), rel=1e-5)
    assert (out / "weight_change_rel_mean_abs.html").is_file()
    stored = pd.read_parquet(out / "weight_change.parquet")
    assert len(stored) == len(table)
