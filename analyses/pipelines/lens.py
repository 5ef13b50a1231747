"""The latent-language job, shared by the CLI and the notebooks: run the lens probe for some
languages (through the results store), then derive curves, the pivot summary, PROM's lambda
table and their figures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from analyses.figures import save_figure
from analyses.figures.latent import lambda_figure, lens_figure
from analyses.stats.prom_lambda import LensResults
from probes.backend import Backend
from probes.backend.store import ResultsStore, provenance, write_parquet_atomic, write_text_atomic
from probes.inputs.prompts import Task, build_prompts
from probes.inputs.words import CLOZE, CONCEPTS, load_cloze, load_concepts
from probes.lens import WordProb, run_lens


def data_languages(words: str | Path = CONCEPTS) -> list[str]:
    return [c for c in load_concepts(words).columns if c != "concept"]


def run_languages(
    backend: Backend,
    langs: list[str],
    *,
    task: Task = "translation",
    src: str | None = None,
    latent: str = "en",
    words: str | Path = CONCEPTS,
    word_prob: WordProb = "prefix",
    batch_size: int = 16,
    store: ResultsStore | None = None,
    seed: int = 42,
    limit: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """The lens table for every language in ``langs`` (each stored as its own resumable run);
    ``limit`` keeps the first prompts of each language (a quick, deterministic subset)."""
    concepts = load_concepts(words)
    cloze = load_cloze(CLOZE) if task == "cloze" else None
    data_files = [words] + ([CLOZE] if task == "cloze" else [])
    store = store or ResultsStore()
    tables = []
    for lang in langs:
        prompts = build_prompts(task, concepts, lang, src=src, latent=latent, cloze=cloze, seed=seed)[:limit]
        params = {"task": task, "lang": lang, "src": src, "latent": latent, "word_prob": word_prob, "limit": limit}
        run = store.run(provenance("lens", params, backend.describe(), data_files, seed=seed))
        table = (
            run.load()
            if run.finished
            else run_lens(backend, prompts, word_prob=word_prob, batch_size=batch_size, run=run, progress=progress)
        )
        tables.append(table)
    combined = pd.concat(tables, ignore_index=True)
    combined.attrs["provenance"] = {"runs": [t.attrs.get("provenance", {}) for t in tables]}
    return combined


def write_outputs(results: LensResults, out: Path, *, model: str, figures_per_language: bool = True) -> list[Path]:
    """Tables (CSV + Parquet for the tidy lens table) and figures under ``out``."""
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
    written += save_figure(lambda_figure(results.lambdas, title=None), out / "lambda")
    if figures_per_language:
        for lang in results.curves["lang"].unique():
            fig = lens_figure(results.curves, lang, title=f"{model}: logit lens, target {lang} (95% CI)")
            written += save_figure(fig, out / f"lens_{lang}")
    return written
