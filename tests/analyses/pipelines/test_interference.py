"""The interference job: summaries with t intervals, figures from tables, and the CLI end to end."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analyses.cli import app
from analyses.figures.interference import cosine_figure, fig2_figure, module_figure, pivot_probability_figure
from analyses.pipelines.interference import InterferenceSetup, instruction_split, measure, write_figures
from analyses.stats.interference import summarise_cosines
from tests import FIXTURES
from tests.analyses.redraw import assert_redraws_identically
from tests.conftest import tiny_hf_model, tiny_tokenizer

FIXTURE = FIXTURES / "parallel_instructions.csv"


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for objective in ("plain", "pivoted"):
        for batch in range(5):
            for layer in range(3):
                for module, scope in (("q", "module"), ("all", "layer")):
                    rows.append(
                        {
                            "lang_a": "en",
                            "lang_b": "fr",
                            "objective": objective,
                            "batch": batch,
                            "layer": layer,
                            "module": module,
                            "scope": scope,
                            "cosine": float(rng.normal(0.1 * layer, 0.05)),
                        }
                    )
    return pd.DataFrame(rows)


def test_summaries_and_figures_come_from_tables():
    table = _table()
    summary = summarise_cosines(table)
    assert set(summary["module"]) == {"all"} and summary["n"].eq(5).all() and len(summary) == 6
    row = summary[(summary["objective"] == "plain") & (summary["layer"] == 2)].iloc[0]
    picked = table[(table["objective"] == "plain") & (table["layer"] == 2) & (table["scope"] == "layer")]["cosine"]
    assert row["mean"] == pytest.approx(picked.mean())
    assert len(cosine_figure(summary, pivot_layer=1).data) == 4  # two groups: band + line each
    assert module_figure(summarise_cosines(table, "module"), "en", "fr").data[0].z.shape == (1, 3)
    assert len(fig2_figure(summary.assign(setting=summary["objective"])).data) == 8
    with pytest.raises(ValueError, match="no rows of scope"):
        summarise_cosines(table, "tensor")


def test_pivot_probability_figure_has_a_curve_per_model_and_quantity():
    rows = [
        {"lang": "sw", "layer": layer, "quantity": q, "mean": 0.1, "ci_low": 0.0, "ci_high": 0.2, "n": 3, "model": m}
        for m in ("base", "after pivoted")
        for q in ("p_en", "p_target")
        for layer in range(3)
    ]
    assert len(pivot_probability_figure(pd.DataFrame(rows), lang="sw").data) == 8


def test_splits_hold_out_the_last_ids():
    assert sorted(set(instruction_split(FIXTURE, "train")["id"]), key=int) == [
        "0",
        "1",
        "2",
        "3",
    ]  # 24 ids, 20 held out
    assert instruction_split(FIXTURE, "held_out")["id"].nunique() == 20
    assert len(instruction_split(FIXTURE)) == 72
    with pytest.raises(ValueError, match="unknown split"):
        instruction_split(FIXTURE, "test")


def test_cli_writes_table_summaries_and_figures(tmp_path):
    model = tmp_path / "tiny"
    tiny_hf_model("llama").save_pretrained(model)
    tiny_tokenizer().save_pretrained(model)
    out = tmp_path / "out"
    args = [
        "--model",
        str(model),
        "--batch-size",
        "2",
        "--out",
        str(out),
        "--results",
        str(tmp_path / "store"),
        "interference",
        "--langs",
        "en,fr,de",
        "--batches",
        "2",
        "--data",
        str(FIXTURE),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "interference.parquet")
    assert {"lang_a", "lang_b", "batch", "layer", "module", "cosine"} <= set(table.columns)
    assert set(table["lang_b"]) == {"fr", "de"} and (out / "cosine_layers.html").is_file()
    assert (out / "modules_en_fr.html").is_file() and (out / "summary_layer.csv").is_file()
    assert_redraws_identically(out, partial(write_figures, model="tiny"), tmp_path / "plain")
    pivoted = CliRunner().invoke(app, args + ["--objective", "pivoted", "--layer", "1"])
    assert pivoted.exit_code == 0, pivoted.output
    assert "n = 1" in (out / "cosine_layers.html").read_text()
    assert_redraws_identically(out, partial(write_figures, model="tiny", pivot_layer=1), tmp_path / "pivoted")
    bad = CliRunner().invoke(app, args[:-6] + ["interference", "--langs", "en"])
    assert bad.exit_code != 0


def test_a_setup_keys_its_run_as_the_keyword_arguments_did(tmp_path):
    """``InterferenceSetup`` replaced 21 keyword arguments; the run it stores is found under the
    key those arguments gave (runs stored before the change are reused), and a re-run loads it."""
    from probes.backend import wrap
    from probes.backend.store import ResultsStore, provenance
    from probes.interference import Readout

    backend = wrap(tiny_hf_model("llama"), tiny_tokenizer(), backend="nnsight", model_name="tiny")
    store = ResultsStore(tmp_path)
    setup = InterferenceSetup(
        "en", "fr", objective="pivoted", readout_a=Readout(1, 0.1, 0.5), k=2, batch_size=2, params="blocks", seed=4
    )
    table = measure(backend, setup, FIXTURE, store=store, progress=False)
    as_before = {
        "lang_a": "en",
        "lang_b": "fr",
        "objective": "pivoted",
        "readout_a": {"layer": 1, "label_smoothing": 0.1, "weight": 0.5},
        "readout_b": {"layer": None, "label_smoothing": 0.0, "weight": 1.0},
        "split": "all",
        "k": 2,
        "batch_size": 2,
        "pairing": "independent",
        "params": "blocks",
        "layers": None,
        "reduction": "token_mean",
        "fp32": True,
        "aggregation": "concat",
        "template": "auto",
        "max_length": 256,
    }
    run = store.run(provenance("interference", as_before, backend.describe(), [FIXTURE], seed=4))
    assert run.finished
    pd.testing.assert_frame_equal(run.load(), table)
    assert set(table["batch"]) == {0, 1} and set(table["objective"]) == {"pivoted"}
