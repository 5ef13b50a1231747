"""The latent-language job, shared by the CLI and the notebooks: run the lens probe for some
languages (through the results store), then derive curves, the pivot summary, PROM's lambda
table and their figures.

The default is PROM's protocol (PROM footnote 3): Wendler et al.'s cloze task, 5-shot, in the
target language, so that no source word stands in the prompt; copies of the answer from the
demonstrations are dropped, and every word is scored by a unit that identifies it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from analyses.figures import save_figure
from analyses.figures.latent import lambda_figure, lens_figure
from analyses.stats.prom_lambda import LensResults, protocol
from probes.backend import Backend
from probes.backend.lenses import LOGIT, Lens
from probes.backend.store import ResultsStore, provenance, write_parquet_atomic, write_text_atomic
from probes.inputs.prompts import SHOTS, LensPrompt, LensTask, check_request, lens_prompts
from probes.inputs.words import CLOZE, CONCEPTS, load_cloze, load_concepts
from probes.lens import WordProb, run_lens


def data_languages(words: str | Path = CONCEPTS) -> list[str]:
    return [c for c in load_concepts(words).columns if c != "concept"]


def language_prompts(
    lang: str,
    *,
    task: LensTask = "cloze",
    src: str | None = None,
    latent: str = "en",
    words: str | Path = CONCEPTS,
    shots: int = SHOTS,
    seed: int = 42,
) -> list[LensPrompt]:
    """The prompts :func:`run_languages` runs for ``lang`` with the same settings (the report's
    explorer pages find their example items among them)."""
    cloze = load_cloze(CLOZE) if task == "cloze" else None
    return lens_prompts(task, load_concepts(words), lang, src=src, latent=latent, cloze=cloze, shots=shots, seed=seed)


def run_languages(
    backend: Backend,
    langs: list[str],
    *,
    task: LensTask = "cloze",
    src: str | None = None,
    latent: str = "en",
    words: str | Path = CONCEPTS,
    word_prob: WordProb = "auto",
    batch_size: int = 16,
    store: ResultsStore | None = None,
    seed: int = 42,
    limit: int | None = None,
    progress: bool = True,
    shots: int = SHOTS,
    drop_copies: bool = True,
    lens: Lens = LOGIT,
) -> pd.DataFrame:
    """The lens table for every language in ``langs`` (each stored as its own resumable run);
    ``limit`` keeps the first prompts of each language (a quick, deterministic subset). ``lens``
    decodes the layers (:func:`probes.backend.lenses.load_lens`); a fitted lens' name and fit id
    join the run key, the logit lens keeps the key it always had."""
    concepts = load_concepts(words)
    check_request(task, langs, src=src, cloze=load_cloze(CLOZE) if task == "cloze" else None)
    data_files = [words] + ([CLOZE] if task == "cloze" else [])
    store = store or ResultsStore()
    vocabularies = {code: list(concepts[code]) for code in concepts.columns if code != "concept"}
    tables = []
    for lang in langs:
        prompts = language_prompts(lang, task=task, src=src, latent=latent, words=words, shots=shots, seed=seed)[:limit]
        params = {
            "task": task,
            "lang": lang,
            "src": prompts[0].src_lang if prompts else src,
            "latent": latent,
            "word_prob": word_prob,
            "limit": limit,
            "shots": shots,
            "drop_copies": drop_copies,
            "units": "whole-character",
        }
        if lens is not LOGIT:
            params.update(lens.key())
        run = store.run(provenance("lens", params, backend.describe(), data_files, seed=seed))
        table = (
            run.load()
            if run.finished
            else run_lens(
                backend,
                prompts,
                word_prob=word_prob,
                batch_size=batch_size,
                run=run,
                progress=progress,
                vocabularies=vocabularies,
                drop_copies=drop_copies,
                lens=lens,
            )
        )
        tables.append(table)
    combined = pd.concat(tables, ignore_index=True)
    combined.attrs["provenance"] = {"runs": [t.attrs.get("provenance", {}) for t in tables]}
    return combined


def write_outputs(results: LensResults, out: Path, *, model: str, figures_per_language: bool = True) -> list[Path]:
    """Tables (CSV + Parquet for the tidy lens table) under ``out``, then the figures drawn from
    them (:func:`write_figures`)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    lens = results.lens.copy()
    lens["top_tokens"] = lens["top_tokens"].map(" | ".join)
    for name, table in {
        "lens": lens,
        "curves": results.curves,
        "pivot_summary": results.summary,
        "lambda": results.lambdas,
    }.items():
        path = out / f"{name}.csv"
        write_text_atomic(table.to_csv(index=False), path)
        written.append(path)
    prov = results.lens.attrs.get("provenance", {})
    write_parquet_atomic(results.lens, out / "lens.parquet", prov)
    write_text_atomic(json.dumps(prov, indent=2, default=str), out / "provenance.json")
    return written + write_figures(out, model=model, per_language=figures_per_language)


def write_figures(out: Path, *, model: str, per_language: bool = True) -> list[Path]:
    """The figures of the lens folder ``out``, drawn from the tables :func:`write_outputs` wrote
    there: PROM's lambda per language and, with ``per_language``, the logit-lens curves of each
    target language; ``model`` names the model in the titles. HTML with plotly.js beside it."""
    lambdas = pd.read_csv(out / "lambda.csv")
    written = save_figure(lambda_figure(lambdas, title=None, model=model), out / "lambda")
    if per_language:
        curves, protocols = pd.read_csv(out / "curves.csv"), lambdas.set_index("lang")
        for lang in curves["lang"].unique():
            fig = lens_figure(
                curves, lang, title=f"{model}: logit lens, target {lang}, {protocol(protocols.loc[lang])} (95% CI)"
            )
            written += save_figure(fig, out / f"lens_{lang}")
    return written
