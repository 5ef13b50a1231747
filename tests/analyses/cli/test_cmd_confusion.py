"""``pivotlens confusion-metrics`` on a small CSV in the benchmark's output format."""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from typer.testing import CliRunner

from analyses.cli import app
from analyses.cli.settings import Settings
from probes.backend.errors import DataFormatError, PivotlensError

ROWS = [
    (0, "m", "Le ciel est bleu à cause de la diffusion de la lumière.", "monolingual", "a", "fr"),
    (1, "m", "Here are some tips to help you sleep better at night.", "monolingual", "a", "fr"),
    (2, "m", "Oui.", "monolingual", "a", "fr"),
    (0, "m", "天空是蓝色的，因为阳光被空气散射，eventually 变成了蓝色。", "monolingual", "a", "zh"),
    (1, "m", "天空是蓝色的，因为阳光被空气中的小颗粒散射了。", "monolingual", "a", "zh"),
    (0, "m", "Here are some tips to help you sleep better at night.", "crosslingual", "b", "zh"),
]


@pytest.fixture
def completions(tmp_path):
    path = tmp_path / "completions.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "model", "completion", "task", "source", "language"])
        writer.writerows(ROWS)
    return path


def test_confusion_metrics_writes_the_documented_table(tmp_path, completions):
    out = tmp_path / "confusion_metrics.csv"
    result = CliRunner().invoke(app, ["--out", str(tmp_path), "confusion-metrics", "--completions", str(completions)])
    assert result.exit_code == 0, result.output
    assert "LPR %" in result.output and "language confusion" in result.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["task", "model", "source", "language", "n", "lpr", "wpr", "lcpr"]
    rows = table.set_index(["task", "source", "language"])
    assert rows.loc[("monolingual", "a", "fr"), "lpr"] == pytest.approx(0.5)  # 1 of 2 scored; "Oui." skipped
    assert rows.loc[("monolingual", "a", "fr"), "n"] == 3 and pd.isna(rows.loc[("monolingual", "a", "fr"), "wpr"])
    assert rows.loc[("monolingual", "a", "zh"), "wpr"] == pytest.approx(0.5)
    assert rows.loc[("monolingual", "a", "zh"), "lcpr"] == pytest.approx(2 / 3)  # harmonic mean of 1 and 0.5
    assert rows.loc[("monolingual", "all", "all"), "lpr"] == pytest.approx((0.5 + 1.0) / 2)
    assert rows.loc[("crosslingual", "all", "all"), "lpr"] == 0.0
    assert table[["lpr", "wpr", "lcpr"]].stack().dropna().between(0, 1).all()


def test_a_file_without_the_language_column_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("id,model,completion,task,source\n0,m,x,monolingual,a\n")
    result = CliRunner().invoke(app, ["confusion-metrics", "--completions", str(path)])
    assert isinstance(result.exception, DataFormatError)
    assert "bad.csv:1: missing column(s) language" in str(result.exception)


def test_confusion_metrics_says_which_word_list_it_used(completions, lcb_folder):
    default = CliRunner().invoke(app, ["confusion-metrics", "--completions", str(completions)])
    assert default.exit_code == 0 and "Debian's wamerican list (not the benchmark's" in default.output
    own = CliRunner().invoke(app, ["confusion-metrics", "--completions", str(completions), "--lcb", str(lcb_folder)])
    assert own.exit_code == 0, own.output
    assert f"English word list: {lcb_folder / 'words'}, the benchmark's own list; 81995 words" in own.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--benchmark", "lcb", "--lcb", "{empty}"], "missing test_sets/ or test_sets.zip"),
        (
            ["--benchmark", "lcb", "--lcb", "{lcb}", "--datasets", "okapi,wiki"],
            "no dataset 'wiki'; it has monolingual: aya",
        ),
        (["--benchmark", "mmlu", "--langs", "fr"], "unknown --benchmark 'mmlu'; use authored or lcb"),
        (["--langs", "fr", "--per-language", "2"], "--lcb and --per-language read the real benchmark"),
    ],
)
def test_confusion_bad_benchmark_input_fails_before_any_model_loads(tmp_path, lcb_folder, monkeypatch, args, message):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(Settings, "load_backend", refuse)
    args = [a.format(empty=tmp_path, lcb=lcb_folder) for a in args]
    result = CliRunner().invoke(app, ["--model", "gemma-3-270m", "confusion", *args])
    assert isinstance(result.exception, PivotlensError), result.output  # the CLI's main turns it into exit code 2
    assert message in str(result.exception)
