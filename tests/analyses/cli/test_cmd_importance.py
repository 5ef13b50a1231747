"""``pivotlens importance`` / ``regions`` / ``region-freeze`` end to end on a tiny model folder and a
small parallel corpus: every table, mask file and figure is written, and the tables hold what
they claim (exact per-tensor fractions, the removal table's columns, a working freeze)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from analyses.cli import app
from analyses.figures import save_figure
from analyses.pipelines.regions import write_figures
from analyses.stats.regions import load_masks
from probes.backend.errors import UnknownLanguageError
from tests.analyses.redraw import assert_redraws_identically

runner = CliRunner()
LINES = {
    "en": "the cloud is white and the river is long",
    "ru": "облако белое и река длинная",
    "zh": "云是白色的，河很长",
    "ar": "السحابة بيضاء والنهر طويل",
}


@pytest.fixture
def setup(tmp_path, monkeypatch, tiny_model_folder):
    # HTML only: a PNG export starts a browser (seconds per figure) and tests nothing more
    monkeypatch.setattr(
        "analyses.pipelines.regions.save_figure", lambda fig, path, **kw: save_figure(fig, path, **kw, static=False)
    )
    corpus = tmp_path / "sentences.csv"
    with corpus.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "lang", "text"])
        for i in range(30):
            for lang, line in LINES.items():
                words = line.split()
                writer.writerow([str(i), lang, " ".join(words[i % len(words) :] + words[: i % len(words)])])
    return tiny_model_folder, corpus, tmp_path


def _invoke(folder, tmp_path, *args):
    base = [
        "--model",
        str(folder),
        "--out",
        str(tmp_path / "out"),
        "--results",
        str(tmp_path / "store"),
        "--batch-size",
        "4",
    ]
    result = runner.invoke(app, [*base, *args])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return tmp_path / "out"


def test_importance_and_regions_write_tables_masks_and_figures(setup):
    folder, corpus, tmp_path = setup
    common = ["--corpus", str(corpus), "--n-sentences", "6", "--max-tokens", "16"]
    out = _invoke(folder, tmp_path, "importance", "--langs", "en,ru,zh", *common)
    summary = pd.read_csv(out / "importance_summary.csv")
    assert set(summary["lang"]) == {"en", "ru", "zh"} and (summary["importance_sum"] > 0).all()
    files = json.loads((out / "importance_files.json").read_text())
    assert set(files) == {"en", "ru", "zh"}
    assert (out / "importance_map.html").is_file()

    out = _invoke(
        folder,
        tmp_path,
        "regions",
        "--langs",
        "en,ru,zh,ar",
        "--core-langs",
        "ru,zh,ar",
        "--fraction",
        "0.05",
        "--n-heldout",
        "3",
        "--structure-langs",
        "en",
        *common,
    )
    removal = pd.read_csv(out / "removal.csv", keep_default_na=False)
    assert {"region", "fraction", "removed_lang", "lang", "perplexity"} <= set(removal.columns)
    expected = {"none", "core-top", "core-bottom", "core-random"} | {
        f"mono-{s}-{lang}" for s in ("top", "random") for lang in LINES
    }
    assert set(removal["region"]) == expected
    assert len(removal) == len(expected) * len(LINES)
    assert set(removal.loc[removal["scope"] == "core", "removed_lang"]) == {"ru+zh+ar"}
    sizes = pd.read_csv(out / "region_sizes.csv")
    core = sizes[sizes["region"].str.startswith("core-")]
    assert (core["selected"] == (0.05 * core["numel"]).astype(int)).all()
    masks_dir = Path((out / "masks_location.txt").read_text().strip())
    assert masks_dir.is_relative_to(tmp_path / "store") and not (out / "masks").exists()  # big files stay in the store
    masks, meta = load_masks(masks_dir / "mono-top-en.safetensors")
    assert meta["removed_lang"] == "en" and meta["fraction"] == 0.05 and masks
    for name in ("structured_removal", "dimension_perturbation", "region_concentration", "region_dimensions"):
        assert not pd.read_csv(out / f"{name}.csv").empty
    for name in (
        "importance_map",
        "region_masks",
        "region_concentration",
        "region_dimensions",
        "removal_core",
        "removal_monolingual",
        "structured_removal",
        "dimension_perturbation",
    ):
        assert (out / f"{name}.html").is_file()
        assert 'src="plotly.min.js"' in (out / f"{name}.html").read_text()  # offline: one plotly.js per folder
    assert (out / "plotly.min.js").is_file()
    assert set(json.loads((out / "timings.json").read_text())) == {"importance", "regions", "removal", "dimensions"}
    assert_redraws_identically(out, lambda copy: write_figures(copy, model=folder.name), tmp_path)


def test_region_freeze_keeps_the_frozen_region(setup):
    folder, corpus, tmp_path = setup
    out = _invoke(
        folder,
        tmp_path,
        "region-freeze",
        "--train-lang",
        "en",
        "--langs",
        "en,ru",
        "--core-langs",
        "ru,zh",
        "--corpus",
        str(corpus),
        "--n-sentences",
        "4",
        "--n-heldout",
        "2",
        "--max-tokens",
        "16",
        "--steps",
        "2",
        "--learning-rate",
        "0.01",
    )
    table = pd.read_csv(out / "freeze_demo.csv")
    assert set(table["stage"]) == {"before", "free", "frozen"} and set(table["lang"]) == {"en", "ru"}
    drift = table.groupby("stage")["region_drift"].max()
    assert drift["frozen"] == 0.0 and drift["free"] > 0.0
    assert (out / "freeze_demo.html").is_file()
    assert_redraws_identically(out, lambda copy: write_figures(copy, model=folder.name), tmp_path)


def test_unknown_language_fails_before_loading(tmp_path):
    result = runner.invoke(app, ["--out", str(tmp_path), "regions", "--langs", "en,xx"])
    assert isinstance(result.exception, UnknownLanguageError)
