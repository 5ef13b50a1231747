"""Diagnosing several languages x models in one call: one page per language, each language's
tables in its own folder, verdicts and timings written, the index over all pages, a re-run that
only reads the results store."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analyses.report.diagnosis import TIMING_COLUMNS, check_sections, diagnose
from analyses.report.html import VERDICT_COLUMNS
from analyses.stats.prom_lambda import verdict
from probes.backend.errors import PivotlensError, UnknownLanguageError
from probes.backend.store import ResultsStore
from tests.conftest import tiny_backend


def test_two_languages_two_models(tmp_path):
    # one attention head each: the lens runs cost per head, and the report's layout needs no more
    backends = [
        tiny_backend("llama", num_attention_heads=1, num_key_value_heads=1),
        tiny_backend("gemma3", num_attention_heads=1),
    ]
    store, out = ResultsStore(tmp_path / "store"), tmp_path / "out"
    paths = diagnose(
        backends, ["fr", "de"], out, store=store, sections=["lens"], quick=True, batch_size=8, progress=False
    )
    assert [p.name for p in paths] == ["report_fr.html", "report_de.html"]
    for lang in ("fr", "de"):
        page = (out / f"report_{lang}.html").read_text()
        assert "<h2>tiny-llama</h2>" in page and "<h2>tiny-gemma3</h2>" in page
        summary = page.split("<h2>Summary</h2>")[1].split("</table>")[0]  # one row per question, a column per model
        assert (
            "<th>tiny-llama</th>" in summary and "<th>tiny-gemma3</th>" in summary and "<th>model</th>" not in summary
        )
        verdicts = pd.read_csv(out / lang / "verdicts.csv")
        for model in ("tiny-llama", "tiny-gemma3"):
            lambdas = pd.read_csv(out / lang / f"{model}__lambda.csv")
            assert set(lambdas["lang"]) == {lang}
            answer = verdicts.loc[
                (verdicts["model"] == model) & verdicts["question"].str.contains("lambda"), "answer"
            ].item()
            assert answer == verdict(lambdas.iloc[0])
            assert (lambdas["task"].item(), lambdas["shots"].item(), lambdas["src_lang"].item()) == ("cloze", 5, lang)
        assert summary.count("<tr") == 1 + verdicts["question"].nunique()
        assert list(verdicts.columns) == list(VERDICT_COLUMNS)
        assert set(verdicts["model"]) == {"tiny-llama", "tiny-gemma3"} and set(verdicts["lang"]) == {lang}
        timings = pd.read_csv(out / lang / "timings.csv")
        assert list(timings.columns) == list(TIMING_COLUMNS) and timings["computed"].all()
        prov = json.loads((out / lang / "provenance.json").read_text())
        assert set(prov["models"]) == {"tiny-llama", "tiny-gemma3"} and prov["quick"] is True
        assert len(prov["data"]["concepts.csv"]) == 64 and "tasks/sentiment.csv" in prov["data"]
    index = (out / "index.html").read_text()
    assert "report_fr.html" in index and "report_de.html" in index
    assert set(pd.read_csv(out / "verdicts.csv")["lang"]) == {"fr", "de"}

    stored = sorted(store.root.rglob("*.parquet"))
    diagnose(backends, ["de"], out, store=store, sections=["lens"], quick=True, batch_size=8, progress=False)
    assert sorted(store.root.rglob("*.parquet")) == stored
    assert not pd.read_csv(out / "de" / "timings.csv")["computed"].any()
    assert set(pd.read_csv(out / "verdicts.csv")["lang"]) == {"fr", "de"}  # the index keeps the earlier page


def test_sections_are_checked_and_ordered():
    assert check_sections(["confusion", "lens"]) == ["lens", "confusion"]  # page order, not argument order
    with pytest.raises(PivotlensError, match="unknown report sections \\['lenz'\\]"):
        check_sections(["lenz"])


def test_unknown_language_fails_before_any_work(tmp_path):
    with pytest.raises(UnknownLanguageError):
        diagnose([tiny_backend("llama")], ["fr", "xx"], tmp_path, store=ResultsStore(tmp_path / "s"), progress=False)
    assert not (tmp_path / "report_fr.html").exists()


@pytest.mark.parametrize("lang", ["fr", "ta"])
def test_lens_section_links_three_example_prompts_in_the_explorer(tmp_path, lang):
    """fr words have token sets of their own on the tiny vocabulary; ta words (a script it never saw)
    are scored by their byte chains, and their examples open in the explorer all the same."""
    from analyses.figures.explore import DIV_ID
    from probes.backend import wrap
    from tests.conftest import tiny_hf_model, tiny_tokenizer

    # 5-shot cloze prompts (ta in bytes: 1000 to 1400 tokens) are longer than the default 128; one
    # attention head: the softmax over those lengths costs per head, and the links need no more
    model = tiny_hf_model("llama", max_position_embeddings=2048, num_attention_heads=1, num_key_value_heads=1)
    out = tmp_path / "out"
    diagnose(
        [wrap(model, tiny_tokenizer(), model_name="tiny-llama")],
        [lang],
        out,
        store=ResultsStore(tmp_path / "store"),
        sections=["lens"],
        quick=True,
        batch_size=8,
        progress=False,
    )
    examples = pd.read_csv(out / lang / "tiny-llama__lens_examples.csv")
    assert set(examples["example"]) <= {"typical", "latent_leads", "target_earliest"} and len(examples) >= 2
    page = (out / f"report_{lang}.html").read_text()
    assert "is not in the explorer" not in page
    for example in examples["example"]:
        name = f"tiny-llama__explore_{example}.html"
        assert f"href='{lang}/{name}'" in page
        explorer = (out / lang / name).read_text()
        assert f'id="{DIV_ID}"' in explorer
        assert lang == "fr" or "by its chain" in explorer
