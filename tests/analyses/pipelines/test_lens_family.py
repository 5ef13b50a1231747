"""fit-lens, lens-eval and lens-keyed lens runs on a tiny model folder (no downloads)."""

from __future__ import annotations

import csv
import random
from functools import partial

import pandas as pd
import pytest
from typer.testing import CliRunner

from analyses.cli import app
from analyses.pipelines.lens import run_languages
from analyses.pipelines.lens_family import corpus_texts, write_figures
from analyses.stats.lens_family import decision
from probes.backend.errors import DataFormatError
from probes.backend.lens_fit import TooFewTokensError
from probes.backend.lenses import LOGIT, LensNotFittedError, load_lens
from probes.backend.store import ResultsStore
from tests.analyses.redraw import assert_redraws_identically
from tests.conftest import tiny_backend

WORDS = {
    "en": "the cloud river white long is and sky blue water tree house".split(),
    "fr": "le nuage rivière blanc longue est et ciel bleu eau arbre maison".split(),
}


def _corpus(path, n: int, seed: int = 0):
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lang", "text"])
        for lang, words in WORDS.items():
            for _ in range(n):
                writer.writerow([lang, " ".join(rng.choice(words) for _ in range(14))])
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIVOTLENS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _invoke(folder, *args):
    return CliRunner().invoke(app, ["--model", str(folder), *args])


def test_fit_then_evaluate_writes_the_per_layer_table(tmp_path, cache, tiny_model_folder):
    train, held = _corpus(tmp_path / "train.csv", 60), _corpus(tmp_path / "held.csv", 8, seed=1)
    fitted = _invoke(tiny_model_folder, "fit-lens", "--kind", "linear", "--corpus", str(train))
    assert fitted.exit_code == 0, fitted.output
    assert "fitted linear" in fitted.output and list((cache / "lenses").glob("*/linear.json"))
    out = tmp_path / "out"
    result = _invoke(tiny_model_folder, "--out", str(out), "lens-eval", "--lens", "logit,linear", "--corpus", str(held))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "lens_eval.csv")
    assert set(table["lens"]) == {"logit", "linear"} and set(table["lang"]) == {"en", "fr"}
    assert len(table) == 2 * 2 * 3 and (table["kl_bits"] >= -1e-6).all()
    last = table[table["layer"] == 2]
    assert last["kl_bits"].abs().max() < 1e-4 and (last["top1_agreement"] == 1).all()  # the last layer is the output
    assert (
        table.loc[table["lens"] == "logit", "lens_fit"].isna().all()
        and table.loc[table["lens"] == "linear", "lens_fit"].notna().all()
    )
    verdicts = pd.read_csv(out / "lens_vs_logit.csv")
    assert set(verdicts["lens"]) == {"linear"} and (verdicts["layers"] == 2).all()
    assert (out / "lens_kl.html").is_file()
    source = corpus_texts(held, None, heldout=True)[1]
    redraw = partial(write_figures, model=tiny_model_folder.name, source=source)
    assert_redraws_identically(out, redraw, tmp_path)


def test_bad_input_names_the_problem_and_the_fix(tmp_path, cache, tiny_model_folder):
    unfitted = _invoke(
        tiny_model_folder, "lens-eval", "--lens", "logit,tuned", "--corpus", str(_corpus(tmp_path / "h.csv", 2))
    )
    assert isinstance(unfitted.exception, LensNotFittedError) and "fit-lens --kind tuned" in str(unfitted.exception)
    bad = tmp_path / "bad.csv"
    bad.write_text("lang,text\nen,fine text\nen,one,two\n", encoding="utf-8")
    malformed = _invoke(tiny_model_folder, "fit-lens", "--kind", "linear", "--corpus", str(bad))
    assert isinstance(malformed.exception, DataFormatError) and f"{bad}:3:" in str(malformed.exception)
    small = _invoke(tiny_model_folder, "fit-lens", "--kind", "linear", "--corpus", str(_corpus(tmp_path / "s.csv", 2)))
    assert isinstance(small.exception, TooFewTokensError) and "needs at least 640" in str(small.exception)


def test_the_lens_column_and_the_run_key_tell_lenses_apart(tmp_path, cache):
    from analyses.pipelines.lens_family import fit_lens

    backend = tiny_backend("llama")
    texts = {
        lang: pd.read_csv(_corpus(tmp_path / "c.csv", 60)).query("lang == @lang")["text"].tolist() for lang in WORDS
    }
    fit_lens(backend, "linear", texts, source="test", corpus_sha256="-", progress=False)
    store = ResultsStore(tmp_path / "store")
    logit = run_languages(backend, ["fr"], store=store, limit=3, progress=False)
    linear = run_languages(backend, ["fr"], store=store, limit=3, progress=False, lens=load_lens(backend, "linear"))
    assert set(logit["lens"]) == {"logit"} and set(linear["lens"]) == {"linear"}
    assert not logit["p_target"].equals(linear["p_target"])
    params = [t.attrs["provenance"]["runs"][0]["params"] for t in (logit, linear)]
    assert "lens" not in params[0]  # the logit lens keeps the run key it always had
    assert params[1]["lens"] == "linear" and params[1]["lens_fit"] == load_lens(backend, "linear").fit_id
    assert len(list((tmp_path / "store").rglob("*.parquet"))) >= 2  # two runs, not one reused
    assert load_lens(backend, "logit") is LOGIT


def test_report_and_lambda_say_whether_the_decision_depends_on_the_lens(tmp_path, cache):
    from analyses.pipelines.lens_family import fit_lens, lambda_under_lenses, write_lambda_by_lens
    from analyses.report.lens_section import lens_section
    from analyses.report.sections import ReportContext

    backend = tiny_backend("llama")
    texts = {
        lang: pd.read_csv(_corpus(tmp_path / "c.csv", 60)).query("lang == @lang")["text"].tolist() for lang in WORDS
    }
    for langs in (None, ["en"]):
        fit_lens(
            backend,
            "linear",
            {k: v for k, v in texts.items() if not langs or k in langs},
            source="test",
            corpus_sha256="-",
            langs=langs,
            progress=False,
        )
    store = ResultsStore(tmp_path / "store")
    names = ["logit", "linear", "linear-en"]
    table, lambdas, agreement = lambda_under_lenses(backend, names, ["fr", "de"], store=store, limit=4, progress=False)
    assert set(lambdas["lens"]) == set(names) and set(table["lens"]) == set(names)
    for row in agreement.itertuples():
        decisions = lambdas[lambdas["lang"] == row.lang].set_index("lens")["pivot"].map(decision)
        assert row.same_under_every_lens == (decisions.nunique() == 1)
    written = write_lambda_by_lens(table, lambdas, agreement, tmp_path / "out")
    assert {p.name for p in written} == {"lambda_by_lens.csv", "lens_agreement.csv", "lens_curves.csv", "lens_bias.csv"}
    section = lens_section(ReportContext(backend, "fr", store, quick=True, lenses=("logit", "linear")))
    verdict = section.verdicts[-1]
    assert verdict.question == "Does PROM's decision depend on the lens?" and "linear:" in verdict.evidence
    assert set(section.tables["lambda_by_lens"]["lens"]) == {"logit", "linear"}
