"""Instruction-data recipes (PLUG, Zhang et al. 2023; docs/methods/plug-recipes.md): each recipe's output on a
two-item parallel set written out by hand, the pivot-stripping helper on hand-made answers, a
few training steps through the driver that lower the loss, and the evaluation tables."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
from sacrebleu.metrics import CHRF
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from analyses.cli import app
from analyses.interventions.finetune import FinetuneConfig, load_jsonl
from analyses.interventions.recipes import (
    RECIPES,
    build_recipe,
    parallel_items,
    plug_response,
    read_recipe_card,
    strip_pivot,
    train_recipe,
    write_recipe_card,
)
from analyses.pipelines import recipes as recipes_pipeline
from analyses.pipelines.recipes import (
    comparison_table,
    model_entries,
    score_answers,
    strip_counts,
    table1,
    win_loss,
)
from probes.inputs.instruction_data import collate, load_instructions, pad_id, tokenize_pairs
from probes.instruction_answers import prompt_ids, run_answers
from tests.analyses.redraw import assert_redraws_identically
from tests.conftest import tiny_backend, tiny_tokenizer

ROWS = [
    ("1", "en", "Name a color.", "Red is a color."),
    ("1", "es", "Nombra un color.", "El rojo es un color."),
    ("2", "en", "Count to three.", "One, two, three."),
    ("2", "es", "Cuenta hasta tres.", "Uno, dos, tres."),
]


@pytest.fixture
def two_items(tmp_path):
    path = tmp_path / "instructions.csv"
    pd.DataFrame(ROWS, columns=["id", "lang", "instruction", "response"]).to_csv(path, index=False)
    return load_instructions(path)


def pairs(records):
    return [(r.part, r.prompt, r.response) for r in records]


PLUG_1 = (
    "English instruction: Name a color.\n\nEnglish response: Red is a color.\n\nSpanish response: El rojo es un color."
)
PLUG_2 = (
    "English instruction: Count to three.\n\nEnglish response: One, two, three.\n\nSpanish response: Uno, dos, tres."
)
EXPECTED = {
    "pivot-only": [
        ("x_p->y_p", "Name a color.", "Red is a color."),
        ("x_p->y_p", "Count to three.", "One, two, three."),
    ],
    "mono": [
        ("x_p->y_p", "Name a color.", "Red is a color."),
        ("x_t->y_t", "Nombra un color.", "El rojo es un color."),
        ("x_p->y_p", "Count to three.", "One, two, three."),
        ("x_t->y_t", "Cuenta hasta tres.", "Uno, dos, tres."),
    ],
    "code-switch": [
        ("x_p->y_p", "Name a color.", "Red is a color."),
        ("x_t->y_t", "Nombra un color.", "El rojo es un color."),
        ("x_p->y_t", "Name a color.", "El rojo es un color."),
        ("x_t->y_p", "Nombra un color.", "Red is a color."),
        ("x_p->y_p", "Count to three.", "One, two, three."),
        ("x_t->y_t", "Cuenta hasta tres.", "Uno, dos, tres."),
        ("x_p->y_t", "Count to three.", "Uno, dos, tres."),
        ("x_t->y_p", "Cuenta hasta tres.", "One, two, three."),
    ],
    "aux-translation": [
        ("x_p->y_p", "Name a color.", "Red is a color."),
        ("x_t->y_t", "Nombra un color.", "El rojo es un color."),
        ("trans(x_p)->x_t", "Translate the following text into Spanish.\n\nName a color.", "Nombra un color."),
        ("trans(y_p)->y_t", "Translate the following text into Spanish.\n\nRed is a color.", "El rojo es un color."),
        ("x_p->y_p", "Count to three.", "One, two, three."),
        ("x_t->y_t", "Cuenta hasta tres.", "Uno, dos, tres."),
        ("trans(x_p)->x_t", "Translate the following text into Spanish.\n\nCount to three.", "Cuenta hasta tres."),
        ("trans(y_p)->y_t", "Translate the following text into Spanish.\n\nOne, two, three.", "Uno, dos, tres."),
    ],
    "plug": [
        ("x_p->y_p", "Name a color.", "Red is a color."),
        ("x_t->plug", "Nombra un color.", PLUG_1),
        ("x_p->y_p", "Count to three.", "One, two, three."),
        ("x_t->plug", "Cuenta hasta tres.", PLUG_2),
    ],
}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_output_by_hand(two_items, recipe):
    records = build_recipe(recipe, parallel_items(two_items, ["es"]))
    assert pairs(records) == EXPECTED[recipe]
    assert {r.recipe for r in records} == {recipe}
    assert [r.lang for r in records] == ["en" if part == "x_p->y_p" else "es" for part, _, _ in EXPECTED[recipe]]


def test_pivot_pairs_enter_once_for_several_targets(two_items):
    extra = pd.DataFrame(
        [
            ("1", "fr", "Nomme une couleur.", "Le rouge est une couleur."),
            ("2", "fr", "Compte jusqu'à trois.", "Un, deux, trois."),
        ],
        columns=["id", "lang", "instruction", "response"],
    )
    table = pd.concat([two_items, extra], ignore_index=True)
    records = build_recipe("mono", parallel_items(table, ["es", "fr"]))
    assert [r.part for r in records].count("x_p->y_p") == 2
    assert [r.response for r in records if r.lang == "fr"] == ["Le rouge est une couleur.", "Un, deux, trois."]
    with pytest.raises(ValueError, match="pivot"):
        parallel_items(table, ["en", "es"])


# ---- stripping the pivot part ---------------------------------------------------------------
ES = "El rojo es un color primario que se usa mucho en el arte."
EN_Q = "Name a color and say something about it."
EN_A = "Red is a primary color that is widely used in art."


@pytest.mark.parametrize(
    ("answer", "text", "how"),
    [
        (f"English instruction: {EN_Q}\n\nEnglish response: {EN_A}\n\nSpanish response: {ES}", ES, "tagged"),
        (f"**English instruction:** {EN_Q}\n**English Response :** {EN_A}\n**spanish response：** {ES}", ES, "tagged"),
        (
            f"English instruction: {EN_Q}\n\nEnglish response: {EN_A}\n\nSpanish response: {ES}\n\nEnglish "
            f"instruction: {EN_Q}",
            ES,
            "tagged",
        ),
        (f"English instruction: {EN_Q}\n\nEnglish response: {EN_A}\n\n{ES}", ES, "lid"),
        (f"{EN_Q} {EN_A}\n{ES}", ES, "lid"),
        (f"{EN_A} {ES}", ES, "lid"),
        (ES, ES, "untagged"),
        (f"English instruction: {EN_Q}\n\nEnglish response: {EN_A}", f"{EN_Q}\n\n {EN_A}", "not_found"),
        (EN_A, EN_A, "not_found"),
    ],
)
def test_strip_pivot_on_hand_made_answers(answer, text, how):
    stripped = strip_pivot(answer, "es")
    assert stripped.how == how
    assert " ".join(stripped.text.split()) == " ".join(text.split())


@pytest.mark.parametrize("lang", ["es", "zh", "sw", "ru"])
def test_strip_pivot_inverts_the_plug_format(lang):
    target = {
        "es": ES,
        "zh": "红色是一种原色，在艺术中使用得很广泛。",
        "sw": "Nyekundu ni rangi ya msingi inayotumika sana katika sanaa.",
        "ru": "Красный — это основной цвет, который широко используется в искусстве.",
    }[lang]
    assert strip_pivot(plug_response(EN_Q, EN_A, target, lang), lang).text == target


# ---- training through the driver ------------------------------------------------------------
SHORT = [
    ("the cloud", "le nuage"),
    ("the river", "la rivière"),
    ("white", "blanc"),
    ("long", "longue"),
    ("the river is long", "la rivière est longue"),
    ("the cloud is white", "le nuage est blanc"),
]


@pytest.fixture
def tiny_data(tmp_path):
    rows = []
    for i, (en, fr) in enumerate(SHORT):
        rows += [(str(i), "en", f"say {en}", en), (str(i), "fr", f"dis {fr}", fr)]
    path = tmp_path / "tiny.csv"
    pd.DataFrame(rows, columns=["id", "lang", "instruction", "response"]).to_csv(path, index=False)
    return path


def mean_loss(model, tokenizer, examples) -> float:
    """Token-mean response loss of ``examples`` with a plain forward pass (not the driver's)."""
    enc, labels = collate(tokenize_pairs(tokenizer, examples), pad_id(tokenizer))
    with torch.no_grad():
        logits = model(**enc.model_inputs()).logits
    return float(
        torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
        )
    )


def test_a_few_plug_steps_lower_the_loss(tiny_model_folder, tiny_data, tmp_path):
    out = tmp_path / "plug-model"
    config = FinetuneConfig(
        method="full",
        max_steps=12,
        batch_size=4,
        learning_rate=3e-3,
        warmup_ratio=0.0,
        scheduler="constant",
        logging_steps=1,
        save_steps=100,
        max_length=120,
    )
    result = train_recipe(tiny_model_folder, "plug", ["fr"], out, config, data=tiny_data, n_held_out=1, progress=False)
    table = load_instructions(tiny_data)
    train = table[table["id"] != "5"]  # the last id is held out
    examples = [(r.prompt, r.response) for r in build_recipe("plug", parallel_items(train, ["fr"]))]
    tokenizer = tiny_tokenizer()
    before = mean_loss(AutoModelForCausalLM.from_pretrained(tiny_model_folder), tokenizer, examples)
    after = mean_loss(AutoModelForCausalLM.from_pretrained(out), tokenizer, examples)
    assert after < 0.8 * before
    log = result.log
    assert {"step", "loss", "lr"} <= set(log.columns) and log["loss"].iloc[-1] < log["loss"].iloc[0]
    card = read_recipe_card(out)
    assert card["recipe"] == "plug" and card["langs"] == ["fr"]
    assert card["n_items"] == len(examples) == 10  # 5 training ids: 5 pivot pairs + 5 PLUG pairs, id 5 held out


# ---- CLI and JSONL --------------------------------------------------------------------------
def test_cli_recipes_writes_jsonl_the_driver_reads(tiny_data, tmp_path):
    out = tmp_path / "code-switch.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "--out",
            str(tmp_path),
            "recipes",
            "--recipe",
            "code-switch",
            "--langs",
            "fr",
            "--data",
            str(tiny_data),
            "--held-out",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 4 * len(SHORT)
    assert records[2] == {
        "id": "0",
        "recipe": "code-switch",
        "part": "x_p->y_t",
        "lang": "fr",
        "prompt": "say the cloud",
        "response": "le nuage",
    }
    assert [(e.prompt, e.response) for e in load_jsonl(out)] == [(r["prompt"], r["response"]) for r in records]


def test_cli_recipes_rejects_an_unknown_recipe(tiny_data, tmp_path):
    result = CliRunner().invoke(
        app,
        ["--out", str(tmp_path), "recipes", "--recipe", "plugg", "--langs", "fr", "--data", str(tiny_data)],
    )
    assert result.exit_code != 0
    assert "unknown recipe 'plugg'" in str(result.exception)


# ---- evaluation ------------------------------------------------------------------------------
def test_prompt_ids_are_the_training_prefix_and_answers_run():
    backend = tiny_backend("llama")
    row = tokenize_pairs(backend.tokenizer, [("say white", "blanc")])[0]
    prefix = prompt_ids(backend, "say white")
    assert row.input_ids[: len(prefix)] == prefix and row.labels[len(prefix)] != -100
    table = pd.DataFrame(
        [("0", "fr", "dis blanc", "blanc"), ("1", "fr", "dis long", "longue")],
        columns=["id", "lang", "instruction", "response"],
    )
    answers = run_answers(backend, table, ["fr"], ["0", "1"], max_new_tokens=5, batch_size=2, progress=False)
    assert set(answers["item"]) == {"fr|0", "fr|1"}
    assert (answers["n_new_tokens"] <= 5).all()
    assert dict(zip(answers["id"], answers["reference"])) == {"0": "blanc", "1": "longue"}


def answers_frame() -> pd.DataFrame:
    refs = {
        "1": "El rojo es un color primario que se usa mucho en el arte.",
        "2": "Uno, dos y tres son los primeros números que aprendemos a contar.",
    }
    rows = []
    for i, ref in refs.items():
        rows.append(
            {
                "model": "plug",
                "recipe": "plug",
                "lang": "es",
                "id": i,
                "reference": ref,
                "completion": f"English instruction: x\n\nEnglish response: {EN_A}\n\nSpanish response: {ref}",
            }
        )
        rows.append({"model": "mono", "recipe": "mono", "lang": "es", "id": i, "reference": ref, "completion": EN_A})
    return pd.DataFrame(rows)


def test_scores_comparison_and_table1():
    scored = score_answers(answers_frame())
    plug_rows = scored[scored["model"] == "plug"]
    assert set(plug_rows["variant"]) == {"full", "stripped"}
    assert plug_rows.loc[plug_rows["variant"] == "stripped", "chrf"].eq(100.0).all()
    assert scored.loc[scored["model"] == "mono", "shown"].all()
    comparison = comparison_table(scored, n_boot=50)
    es = comparison[comparison["lang"] == "es"].set_index(["model", "variant"])
    assert es.loc[("plug", "stripped"), "lpr"] == 1.0 and es.loc[("mono", "full"), "lpr"] == 0.0
    assert np.isnan(es.loc[("mono", "full"), "wpr"])  # Latin script: WPR undefined
    assert es.loc[("plug", "stripped"), "chrf"] == pytest.approx(100.0)
    pairs = win_loss(scored, n_boot=50)
    row = pairs[(pairs["model_a"] == "plug") & (pairs["model_b"] == "mono") & (pairs["lang"] == "es")].iloc[0]
    assert (row["win"], row["loss"], row["tie"], row["delta"]) == (100.0, 0.0, 0.0, 100.0)
    assert strip_counts(scored).to_dict("records") == [{"model": "plug", "lang": "es", "how": "tagged", "n": 2}]
    wide = table1(pairs, "plug")
    assert list(wide.index) == ["plug vs. mono"]
    assert wide.loc["plug vs. mono", ("es", "Win%")] == 100.0 and wide.loc["plug vs. mono", ("es", "Loss%")] == 0.0


def test_win_loss_counts_ties_within_the_margin():
    scored = pd.DataFrame(
        {
            "model": ["a"] * 4 + ["b"] * 4,
            "recipe": ["x"] * 4 + ["y"] * 4,
            "lang": "es",
            "id": list("1234") * 2,
            "shown": True,
            "chrf": [50, 50, 40, 10, 49.5, 30, 45, 10],
        }
    )
    row = win_loss(scored, tie_margin=1.0, n_boot=0).query("model_a == 'a' and lang == 'es'").iloc[0]
    assert (row["win"], row["loss"], row["tie"]) == (25.0, 25.0, 50.0)


def test_model_entries_find_the_recipe(tmp_path):
    carded = tmp_path / "run-7"
    carded.mkdir()
    write_recipe_card(carded, "aux-translation", ["sw"], "en", [], "data.csv")
    named = tmp_path / "mono"
    named.mkdir()
    entries = model_entries([str(carded), str(named), f"base={tmp_path / 'gemma'}"])
    assert [(e.label, e.recipe) for e in entries] == [("run-7", "aux-translation"), ("mono", "mono"), ("base", "base")]
    with pytest.raises(ValueError, match="LABEL=PATH"):
        model_entries([str(named), str(named)])


@pytest.mark.slow
def test_gemma_is_asked_in_the_training_format():
    from tests.conftest import embedded

    backend = embedded("gemma-3-270m")
    row = tokenize_pairs(backend.tokenizer, [("Nombra un color.", "Rojo.")])[0]
    prefix = prompt_ids(backend, "Nombra un color.")
    assert row.input_ids[: len(prefix)] == prefix and row.labels[len(prefix)] != -100
    table = pd.DataFrame([("0", "es", "Nombra un color.", "Rojo.")], columns=["id", "lang", "instruction", "response"])
    answers = run_answers(backend, table, ["es"], ["0"], max_new_tokens=4, progress=False)
    assert answers.loc[0, "n_new_tokens"] <= 4 and isinstance(answers.loc[0, "completion"], str)


def test_cli_finetune_recipe_writes_a_loadable_model_with_its_card(tiny_model_folder, tiny_data, tmp_path):
    out = tmp_path / "mono-model"
    result = CliRunner().invoke(
        app,
        [
            "--model",
            str(tiny_model_folder),
            "--out",
            str(out),
            "finetune",
            "--recipe",
            "mono",
            "--langs",
            "fr",
            "--data",
            str(tiny_data),
            "--held-out",
            "1",
            "--steps",
            "5",
            "--max-length",
            "64",
            "--logging-steps",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert read_recipe_card(out)["recipe"] == "mono"
    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 3
    assert list(pd.read_csv(out / "training_log.csv")["step"])[-1] == 5  # logged every 5 steps


def test_cli_recipe_eval_writes_tables_and_figures(tiny_model_folder, tiny_data, tmp_path):
    out = tmp_path / "eval"
    models = f"base={tiny_model_folder},plug={tiny_model_folder}"
    result = CliRunner().invoke(
        app,
        [
            "--results",
            str(tmp_path / "store"),
            "--batch-size",
            "2",
            "--out",
            str(out),
            "recipe-eval",
            "--models",
            models,
            "--langs",
            "fr",
            "--data",
            str(tiny_data),
            "--held-out",
            "2",
            "--no-inside",
            "--max-new-tokens",
            "6",
            "--plug-max-new-tokens",
            "6",
            "--n-boot",
            "20",
            "--no-png",
        ],
    )
    assert result.exit_code == 0, result.output
    comparison = pd.read_csv(out / "comparison.csv")
    assert {"model", "recipe", "lang", "lpr", "wpr", "chrf"} <= set(comparison.columns)
    assert set(zip(comparison["model"], comparison["variant"])) == {
        ("base", "full"),
        ("plug", "full"),
        ("plug", "stripped"),
    }
    answers = pd.read_csv(out / "answers.csv", keep_default_na=False)
    assert sorted(set(answers["id"])) == [4, 5]  # the two held-out ids
    fr = answers[(answers["model"] == "base")].sort_values("id")
    expected = CHRF().corpus_score(list(fr["text"]), [list(fr["reference"])]).score
    assert comparison.query("model == 'base' and lang == 'fr'")["chrf"].iloc[0] == pytest.approx(expected)
    assert "Judge: sentence chrF" in (out / "table1.md").read_text()
    assert pd.read_csv(out / "win_loss_pairs.csv")["judge"].str.contains("chrF").all()
    assert (out / "scores.html").is_file() and (out / "win_loss.html").is_file()
    assert (out / "plotly.min.js").is_file()  # offline: the folder's pages share one plotly.js
    assert_redraws_identically(out, partial(recipes_pipeline.write_figures, png=False), tmp_path)


def test_cli_recipe_eval_inside_the_model(tiny_model_folder, tmp_path):
    rows = []
    for i in range(24):  # the interference batches come from the 20 held-out ids
        rows += [
            (str(i), "en", f"say the cloud {i}", f"the cloud is white {i}"),
            (str(i), "fr", f"dis le nuage {i}", f"le nuage est blanc {i}"),
        ]
    data = tmp_path / "d24.csv"
    pd.DataFrame(rows, columns=["id", "lang", "instruction", "response"]).to_csv(data, index=False)
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app,
        [
            "--results",
            str(tmp_path / "store"),
            "--out",
            str(out),
            "recipe-eval",
            "--models",
            f"base={tiny_model_folder},mono={tiny_model_folder}",
            "--langs",
            "fr",
            "--data",
            str(data),
            "--max-new-tokens",
            "4",
            "--lens-limit",
            "6",
            "--pairs",
            "2",
            "--pair-batch",
            "2",
            "--n-boot",
            "20",
            "--reference",
            "mono",
            "--no-png",
        ],
    )
    assert result.exit_code == 0, result.output
    curves = pd.read_csv(out / "lens_curves.csv")
    assert set(curves["model"]) == {"base", "mono"} and {"p_en", "p_target"} <= set(curves["quantity"])
    assert (curves["ci_low"] <= curves["mean"]).all() and (curves["mean"] <= curves["ci_high"]).all()
    # the two models are the same weights: the same lens curves and interference
    wide = curves.pivot_table(index=["lang", "layer", "quantity"], columns="model", values="mean")
    assert np.allclose(wide["base"], wide["mono"])
    inter = pd.read_csv(out / "interference.csv")
    assert set(inter["model"]) == {"base", "mono"} and (inter["n"] == 2).all()
    assert set(pd.read_csv(out / "lambda.csv")["model"]) == {"base", "mono"}
    for name in ("lens_fr", "interference_fr", "lambda", "win_loss"):
        assert (out / f"{name}.html").is_file()
