"""Early-exit analysis: FLOPs arithmetic, exit evaluation, classifiers against the majority baseline."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from analyses.stats.early_exit import (
    VARIANTS,
    CRFStopper,
    FittedGapRule,
    FullModel,
    GapRule,
    Majority,
    Oracle,
    StaticLayer,
    SVMStopper,
    accuracy_by_layer,
    classifier_table,
    evaluate,
    generalisation_table,
    is_test_item,
    run_strategies,
    strategy_table,
    with_depth,
)
from analyses.stats.flops import DecoderShape, Uncounted, flops_model

# A hand-checkable decoder: 2 layers, h=4, i=6, 2 query heads and 1 kv head of dim 2, V=10,
# layer 0 with a sliding window of 2, layer 1 with full attention.
TOY = DecoderShape(
    n_layers=2, hidden=4, intermediate=6, n_heads=2, n_kv_heads=1, head_dim=2, vocab=10, windows=(2, None)
)


def deep(n_layers: int) -> DecoderShape:
    return DecoderShape(n_layers, 4, 6, 2, 1, 2, 10, (None,) * n_layers)


def test_flops_worked_example_by_hand():
    # s = 3 tokens. d_q = 4, d_kv = 2.
    # projections: 2*3*(4*4 + 2*4*2 + 4*4) = 6*48 = 288; gated MLP: 2*3*3*4*6 = 432
    # scores: layer 0 (window 2): 4*3*2*4 = 96; layer 1 (full): 4*3*3*4 = 144
    assert TOY.block(3, 0) == 288 + 432 + 96 == 816
    assert TOY.block(3, 1) == 288 + 432 + 144 == 864
    assert TOY.head() == 2 * 4 * 10 == 80
    assert TOY.full(3) == 816 + 864 + 80 == 1760
    assert TOY.exit(3, 0) == 816 + 80  # one block, lens head once
    assert TOY.exit(3, 1) == 816 + 864 + 2 * 80  # the lens head at both layers: more than the forward pass
    assert TOY.exit(3, 1, lens_every_layer=False) == TOY.full(3)
    with pytest.raises(ValueError, match="outside"):
        TOY.exit(3, 2)


def test_flops_reduce_to_the_spec_formula_for_llama2_7b():
    config = {
        "model_type": "llama",
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32000,
    }
    shape = DecoderShape.from_config(config)
    # spec: 4h^2 + 3hi = 67,108,864 + 135,266,304 = 202,375,168 parameters per layer (~202.4M);
    # per token 2x that, plus 4*s^2*h = 16,384 for the attention scores at s = 1
    assert shape.block(1, 0) == 2 * 202_375_168 + 16_384
    assert shape.block(10, 5) == 10 * 2 * 202_375_168 + 4 * 100 * 4096


def test_flops_shape_from_a_gemma3_config_uses_real_head_shapes():
    config = {
        "model_type": "gemma3_text",
        "num_hidden_layers": 3,
        "hidden_size": 640,
        "intermediate_size": 2048,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 256,
        "vocab_size": 100,
        "sliding_window": 512,
        "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
    }
    shape = DecoderShape.from_config({"text_config": config})
    assert shape.windows == (512, 512, None)
    d_q, d_kv = 1024, 256  # != hidden
    s = 600
    expected = 2 * s * (640 * d_q + 2 * 640 * d_kv + d_q * 640) + 2 * s * 3 * 640 * 2048
    assert shape.block(s, 0) == expected + 4 * s * 512 * d_q
    assert shape.block(s, 2) == expected + 4 * s * s * d_q


def test_flops_of_plain_mlp_fused_qkv_and_aliases():
    from transformers import GPT2Config

    shape = DecoderShape.from_config(GPT2Config(n_layer=2, n_embd=8, n_head=2, vocab_size=5))  # n_inner None: 4h
    assert (shape.n_layers, shape.hidden, shape.intermediate, shape.mlp_matrices) == (2, 8, 32, 2)
    s = 3
    assert shape.block(s, 0) == 2 * s * 4 * 8 * 8 + 2 * s * 2 * 8 * 32 + 4 * s * s * 8
    falcon = DecoderShape.from_config(
        {"model_type": "falcon", "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1, "vocab_size": 5}
    )  # Falcon-7B: multi-query
    assert falcon.n_kv_heads == 1 and falcon.intermediate == 32 and falcon.mlp_matrices == 2


def test_flops_of_a_mixture_of_experts_count_the_routed_experts():
    config = {
        "model_type": "mixtral",
        "num_hidden_layers": 1,
        "hidden_size": 8,
        "intermediate_size": 16,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "vocab_size": 5,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
    }
    shape = DecoderShape.from_config(config)
    dense = DecoderShape.from_config(
        {k: v for k, v in config.items() if "experts" not in k} | {"model_type": "mistral"}
    )
    # two routed experts' gated MLPs instead of one, plus the router's 8 scores per token
    assert shape.block(3, 0) - dense.block(3, 0) == 2 * 3 * 3 * 8 * 16 + 2 * 3 * 8 * 8


def test_an_uncountable_config_says_why_and_gives_nan():
    shape = flops_model({"model_type": "qwen2_moe", "num_hidden_layers": 1, "shared_expert_intermediate_size": 4})
    assert isinstance(shape, Uncounted) and "shared_expert_intermediate_size" in shape.reason
    assert math.isnan(shape.full(3)) and math.isnan(shape.exit(3, 0))


def _table(correct: list[list[bool]], gaps: list[list[float]], n_tokens: int = 3, task="t", lang="en", model="toy"):
    """Items x layers table in the probe's columns (features only where the test needs them)."""
    rows = []
    for i, (c_row, g_row) in enumerate(zip(correct, gaps)):
        for layer, (c, g) in enumerate(zip(c_row, g_row)):
            rows.append(
                {
                    "model": model,
                    "task": task,
                    "lang": lang,
                    "item": f"i{i}",
                    "shots": 0,
                    "layer": layer,
                    "n_tokens": n_tokens,
                    "correct": c,
                    "correct_options": c,
                    "gap": g,
                    "top_prob": g,
                    "gap_options": g,
                    "top_prob_options": g,
                }
            )
    return pd.DataFrame(rows)


def test_accuracy_by_layer_counts_and_intervals():
    table = _table([[False, True], [False, False], [True, True]], [[0, 0]] * 3)
    layers = accuracy_by_layer(table)
    assert layers["accuracy"].tolist() == pytest.approx([1 / 3, 2 / 3])
    assert layers["n"].tolist() == [3, 3]
    ci = binomtest(2, 3).proportion_ci(method="wilson")
    assert layers["accuracy_low"].iloc[1] == pytest.approx(ci.low)


def test_exit_evaluation_by_hand():
    # item 0 stops at layer 0 (gap 0.9) and is wrong there; item 1 never reaches the threshold
    table = _table([[False, True], [True, True]], [[0.9, 0.95], [0.1, 0.2]])
    exits, stop = evaluate(GapRule(0.8), table, VARIANTS["full"], TOY)
    assert stop.tolist() == [True, True, False, False]
    assert exits["stop_layer"].tolist() == [0, 1]
    assert exits["correct"].tolist() == [False, True]
    assert exits["flops"].tolist() == [816 + 80, 816 + 864 + 160]
    summary = generalisation_table(exits.assign(setting="s", variant="full", strategy="rule"))
    assert summary["accuracy"].iloc[0] == 0.5
    assert summary["flops_ratio"].iloc[0] == pytest.approx(100 * (896 + 1840) / (2 * 1760))
    assert summary["layers_mean"].iloc[0] == 1.5 and summary["layers_var"].iloc[0] == 0.25
    full, _ = evaluate(FullModel(), table, VARIANTS["full"], TOY)
    assert full["stop_layer"].tolist() == [1, 1] and (full["flops"] == full["flops_full"]).all()
    oracle, _ = evaluate(Oracle(), table, VARIANTS["full"], TOY)
    assert oracle["stop_layer"].tolist() == [1, 0] and oracle["correct"].all()


def test_majority_baseline_never_stops_or_always_stops():
    variant = VARIANTS["full"]
    mostly_wrong = _table([[False, False], [False, True], [False, False]], [[0.1, 0.2]] * 3)
    exits, _ = evaluate(Majority().fit(mostly_wrong, variant), mostly_wrong, variant, TOY)
    assert exits["stop_layer"].tolist() == [1, 1, 1]
    assert (exits["flops"] == exits["flops_full"]).all()  # a constant needs no lens: the plain forward pass
    mostly_right = _table([[True, True], [True, False], [False, True]], [[0.1, 0.2]] * 3)
    exits, _ = evaluate(Majority().fit(mostly_right, variant), mostly_right, variant, TOY)
    assert exits["stop_layer"].tolist() == [0, 0, 0]
    assert exits["flops"].tolist() == [816 + 80] * 3


def _synthetic(n_items: int, n_layers: int, seed: int, task="t", lang="en", model="toy") -> pd.DataFrame:
    """Items that become correct at a random depth; the gap rises with depth and is high once
    correct (plus noise), so the features carry the label; about two thirds of rows are wrong."""
    rng = np.random.default_rng(seed)
    correct, gaps = [], []
    for _ in range(n_items):
        onset = rng.integers(n_layers // 3, n_layers + 3)
        layers = np.arange(n_layers)
        c = layers >= onset
        g = np.clip(np.where(c, 0.65, 0.15) + 0.02 * layers + rng.normal(0, 0.08, n_layers), 0, 1)
        correct.append(c.tolist())
        gaps.append(g.tolist())
    return _table(correct, gaps, n_tokens=20, task=task, lang=lang, model=model)


def test_classifiers_beat_the_majority_baseline_on_held_out_items():
    table = _synthetic(160, 12, seed=1)
    test = is_test_item(table, 0.5, seed=0)
    train, held_out = table[~test], table[test]
    variant = VARIANTS["full"]
    majority = Majority().fit(train, variant)
    y = held_out.sort_values(["item", "layer"])["correct"].to_numpy()
    majority_acc = np.mean(majority.stop(held_out, variant) == y)
    assert majority_acc > 0.55  # imbalanced: the majority class is a real baseline
    for stopper in (SVMStopper(), CRFStopper(), FittedGapRule()):
        _, stop = evaluate(stopper.fit(train, variant), held_out, variant, deep(12))
        assert np.mean(stop == y) > majority_acc + 0.1, stopper.name


def test_fitted_rule_and_static_layer_follow_the_train_split():
    variant = VARIANTS["full"]
    table = _synthetic(80, 12, seed=2)
    rule = FittedGapRule(tolerance=0.0).fit(table, variant)
    exits, _ = evaluate(rule, table, variant, deep(12))
    final = table[table["layer"] == 11]["correct"].mean()
    assert exits["correct"].mean() >= final  # the fitted threshold keeps the train accuracy
    static = StaticLayer(tolerance=0.0).fit(table, variant)
    layer = round(static.depth * 11)
    by_layer = table.groupby("layer")["correct"].mean()
    assert by_layer[layer] >= by_layer[11] and (by_layer[: layer - 1] < by_layer[11]).all()
    exits, _ = evaluate(static, table, variant, deep(12))
    assert (exits["stop_layer"] == layer).all()
    # the same relative depth on a model twice as deep
    deeper = _synthetic(4, 23, seed=5)
    exits, _ = evaluate(static, deeper, variant, deep(23))
    assert (exits["stop_layer"] == round(static.depth * 22)).all()


def test_split_keeps_translations_together_and_is_seeded():
    table = pd.concat([_synthetic(50, 2, seed=3, lang="en"), _synthetic(50, 2, seed=3, lang="fr")])
    test = is_test_item(table, 0.5, seed=7)
    sides = table.assign(test=test).groupby("item")["test"].nunique()
    assert (sides == 1).all()
    assert 0.3 < test.mean() < 0.7
    assert test.equals(is_test_item(table, 0.5, seed=7)) and not test.equals(is_test_item(table, 0.5, seed=8))


def test_run_strategies_covers_the_generalisation_settings():
    combos = [(task, lang, model) for task in ("a", "b") for lang in ("en", "fr") for model in ("m1", "m2")]
    parts = [
        _synthetic(40, 6, seed=s, task=task, lang=lang, model=model) for s, (task, lang, model) in enumerate(combos)
    ]
    items = pd.concat(parts, ignore_index=True)
    shape = deep(6)
    exits, decisions = run_strategies(items, "m1", shape, variants=("full",))
    assert set(exits["setting"]) == {"intra-task", "inter-task", "inter-lang", "inter-model"}
    assert set(exits["model"]) == {"m1"}  # always tested on the model itself
    table = strategy_table(exits)
    full = table[table["strategy"] == "full model"]
    assert np.allclose(full["flops_ratio"], 100) and (full["layers_mean"] == 6).all()
    classifiers = classifier_table(decisions)
    assert set(classifiers["strategy"]) >= {"majority", "svm", "crf", "rule gap>=0.8"}
    majority = classifiers[classifiers["strategy"] == "majority"]
    assert (majority["balanced_accuracy"] == 0.5).all()
    svm = classifiers[classifiers["strategy"] == "svm"]
    assert svm["beats_majority"].all()


def test_depth_is_relative_to_each_models_depth():
    items = pd.concat([_synthetic(2, 3, seed=0, model="short"), _synthetic(2, 5, seed=0, model="deep")])
    depth = with_depth(items)
    assert depth[depth["model"] == "short"]["depth"].unique().tolist() == [0, 0.5, 1]
    assert depth[depth["model"] == "deep"]["depth"].unique().tolist() == [0, 0.25, 0.5, 0.75, 1]


def test_exit_report_without_a_flops_count_says_why_and_keeps_the_rest():
    from analyses.pipelines.exit import exit_report

    items = pd.concat([_synthetic(30, 4, seed=s, lang=lang) for s, lang in enumerate(("en", "fr"))], ignore_index=True)
    model = items["model"].iloc[0]
    report = exit_report(items, Uncounted("config of model type 'x' lacks intermediate_size"), model)
    for name in ("strategies", "generalisation", "static"):
        table = report.tables[name]
        assert table["flops_ratio"].isna().all() and (table["flops_note"].str.contains("intermediate_size")).all()
    assert report.tables["layers"]["accuracy"].notna().all() and "tradeoff_full" in report.figures
