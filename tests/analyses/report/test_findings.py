"""The findings of the results READMEs equal what their committed tables say."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from analyses.cli import app
from analyses.report import findings
from analyses.report.findings import (
    BLOCK,
    RESULTS,
    generate,
    lambda_sentence,
    refresh,
    render,
    stale_blocks,
    stale_derived,
)
from analyses.stats.confusion_metrics import compare_with_paper


def test_every_results_readme_states_what_its_tables_say():
    readmes = sorted(RESULTS.glob("**/README.md"))
    checked = [m["key"] for readme in readmes for m in BLOCK.finditer(readme.read_text(encoding="utf-8"))]
    assert {"lens:gemma-3-270m", "lens:smollm2-135m", "reports:lambda"} <= set(checked)
    assert {"lcb:overall", "lcb:comparison", "lcb:gap"} <= set(checked)
    assert {str(readme): stale_blocks(readme) for readme in readmes} == {str(readme): [] for readme in readmes}
    assert not any(refresh(readmes, check=True).values())
    result = CliRunner().invoke(app, ["findings", "--check"])
    assert result.exit_code == 0 and result.output == ""


def test_a_number_typed_beside_the_tables_is_caught_and_rewritten(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(
        RESULTS / "lens" / "gemma-3-270m",
        results / "lens" / "gemma-3-270m",
        ignore=shutil.ignore_patterns("*.parquet", "*.html", "*.png", "*.svg"),
    )
    readme = results / "lens" / "README.md"
    text = generate("lens:gemma-3-270m", results)
    readme.write_text(f"# x\n<!-- findings:lens:gemma-3-270m -->\n{text}<!-- /findings -->\n", encoding="utf-8")
    assert stale_blocks(readme, results) == []
    summary = pd.read_csv(results / "lens" / "gemma-3-270m" / "pivot_summary.csv")
    peak = summary["latent_peak_layer"].mode()[0]
    readme.write_text(readme.read_text().replace(f"peaks at layer {peak} ", "peaks at layer 99 "), encoding="utf-8")
    assert stale_blocks(readme, results) == ["lens:gemma-3-270m"]
    assert render(readme, results).count(f"peaks at layer {peak} ") == 1
    assert refresh([readme], check=True, results=results) == {readme: ["lens:gemma-3-270m"]}
    assert "peaks at layer 99 " in readme.read_text()  # --check writes nothing
    refresh([readme], results=results)
    assert stale_blocks(readme, results) == [] and "peaks at layer 99 " not in readme.read_text()


def test_decisions_name_undecided_languages():
    lambdas = pd.DataFrame(
        {
            "lang": ["xx", "yy"],
            "task": "cloze",
            "shots": 5,
            "src_lang": ["xx", "yy"],
            "layer": 22,
            "n": 10,
            "mean_p_latent": [1e-7, 0.2],
            "mean_p_target": [2e-7, 0.1],
            "lambda": [float("nan"), 0.1],
            "borderline": [True, False],
            "nonempty_layer": [25, 22],
        }
    )
    sentence = lambda_sentence(lambdas)
    assert "cloze, 5-shot prompts, source each target language itself" in sentence
    assert "lambda = 0.1: yy" in sentence and "undecided: the lens is empty at layer 22: xx" in sentence


def test_unknown_block_kind():
    with pytest.raises(KeyError, match="unknown findings block"):
        generate("nope:x")


def test_decision_changes_list_only_the_languages_whose_answer_changed(tmp_path):
    folder = tmp_path / "lens" / "m"
    folder.mkdir(parents=True)
    before = pd.read_csv(RESULTS / "lens" / "gemma-3-270m" / "lambda_before_prom_protocol.csv")
    before.to_csv(folder / "lambda_before_prom_protocol.csv", index=False)
    after = before.assign(
        task="cloze",
        shots=5,
        src_lang=before["lang"],
        n_dropped_copy=0,
        share_chain=0.25,
        nonempty_layer=before["layer"],
    )
    es, de = after["lang"] == "es", after["lang"] == "de"
    after.loc[es, "lambda"] = 0.1  # es: lambda 0 under translation
    after.loc[es, "borderline"] = True
    after.loc[de, "lambda"] = float("nan")  # de: the lens is empty
    after.to_csv(folder / "lambda.csv", index=False)
    table = generate("changes:m", tmp_path)
    lines = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| lang")]
    assert [line.split(" | ")[0] for line in lines] == ["| de", "| es"]
    assert "lambda = 0 | lambda = 0.1 (borderline)" in table and "undecided: the lens is empty at layer 13" in table


def test_report_changes_are_keyed_by_model_and_language(tmp_path):
    root = tmp_path / "reports"
    before = pd.read_csv(RESULTS / "lens" / "gemma-3-270m" / "lambda_before_prom_protocol.csv").head(2)
    both = pd.concat([before.assign(model=model) for model in ("a", "b")], ignore_index=True)
    root.mkdir()
    both.to_csv(root / "lambda_before_prom_protocol.csv", index=False)
    for model in ("a", "b"):
        after = before.assign(n_dropped_copy=3, share_chain=0.5, nonempty_layer=-1)
        if model == "b":
            after.loc[0, "lambda"] = float("nan")
        for lang, row in after.groupby("lang"):
            (root / str(lang)).mkdir(exist_ok=True)
            row.to_csv(root / str(lang) / f"{model}__lambda.csv", index=False)
    table = generate("reports:changes", tmp_path)
    rows = [line for line in table.splitlines() if line.startswith("| b ")]
    assert len(rows) == 1 and rows[0].startswith(f"| b | {before.loc[0, 'lang']} | lambda = ")
    assert "| a " not in table and "| 3 | 50% |" in rows[0]


def test_the_lcb_comparison_is_rewritten_when_a_model_table_changes(tmp_path):
    lcb = tmp_path / "confusion" / "lcb"
    shutil.copytree(RESULTS / "confusion" / "lcb", lcb, ignore=shutil.ignore_patterns("completions.csv"))
    assert stale_derived(tmp_path) == {}
    models = sorted(p.parent.name for p in lcb.glob("*/metrics_with_ci.csv"))
    assert models == ["gemma-3-270m", "smollm2-135m"]
    table = pd.read_csv(lcb / "comparison.csv")
    ours = table[table["from"] == "pivotlens"]
    assert sorted(set(ours["model"])) == models and len(ours) == 4  # both tasks of both models
    # a model's overall cross-lingual LPR changes: comparison.csv is stale, and the fresh text has it
    metrics = pd.read_csv(lcb / "gemma-3-270m" / "metrics_with_ci.csv")
    overall = (metrics["task"] == "crosslingual") & (metrics["source"] == "all") & (metrics["language"] == "all")
    metrics.loc[overall, "lpr"] = 0.5
    metrics.to_csv(lcb / "gemma-3-270m" / "metrics_with_ci.csv", index=False)
    (path, text), *rest = stale_derived(tmp_path).items()
    assert path == lcb / "comparison.csv" and rest == []
    lines = set(text.splitlines())
    assert "crosslingual,gemma-3-270m,50.0,100.0,pivotlens" in lines
    paper = pd.read_csv(lcb / "paper_table3.csv")
    unchanged = compare_with_paper(pd.read_csv(lcb / "smollm2-135m" / "metrics_with_ci.csv"), paper)
    assert set(unchanged.to_csv(index=False, header=False).splitlines()) <= lines


def test_report_answers_group_languages_by_answer_and_leave_the_lens_to_its_block(tmp_path):
    def verdict(lang, section, question, answer):
        return {"lang": lang, "model": "m", "section": section, "question": question, "answer": answer}

    rows = [
        verdict("de", "Regions", "Which layers carry de (its region apart from English)?", "layers 1, 2"),
        verdict("fr", "Regions", "Which layers carry fr (its region apart from English)?", "layers 1, 2"),
        verdict("ja", "Regions", "Which layers carry ja (its region apart from English)?", "layers 3, 4"),
        verdict("de", findings.LENS_SECTION, "Which lambda should PROM's pivoted objective use?", "lambda = 0"),
    ]
    (tmp_path / "verdicts.csv").write_text(pd.DataFrame(rows).assign(evidence="", uncertainty="").to_csv(index=False))
    text = findings.reports_answers(tmp_path)
    assert "Which layers carry <lang> (its region apart from English)? layers 1, 2 (de, fr); layers 3, 4 (ja)" in text
    assert "lambda" not in text


def test_report_timings_table_states_the_median_and_the_cells_over_the_target(tmp_path):
    rows = [
        ("a", "de", "lens", 120.0),
        ("a", "de", "exit", 300.0),
        ("a", "fr", "lens", 600.0),
        ("a", "fr", "exit", 180.0),
        ("b", "de", "lens", 60.0),
        ("b", "de", "exit", 60.0),
    ]
    table = pd.DataFrame(rows, columns=["model", "lang", "section", "seconds"]).assign(computed=True)
    table.to_csv(tmp_path / "compute_timings.csv", index=False)
    text = findings.reports_timings(tmp_path)
    assert "| a       | fr     |   10.0 |    3.0 |    13.0 |" in text
    assert "3 cells; median 7.0 min, slowest 13.0 min (a, fr); over 12 min: a fr." in text
