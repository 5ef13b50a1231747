"""``pivotlens importance``, ``pivotlens regions`` and ``pivotlens region-freeze``: Taylor
importance per language, linguistic regions with their removal experiments, and the freeze
demonstration (Zhang et al. 2024; docs/methods/linguistic-regions.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import typer

from analyses.cli.settings import Settings, check_choice
from analyses.pipelines.regions import (
    PAPER_LANGS,
    CorpusUse,
    build_regions,
    importance_for,
    job_run,
    perturbation_table,
    removal_table,
    structure_table,
    write_figures,
)
from analyses.stats.regions import check_fraction
from probes.backend.languages import parse_languages
from probes.backend.store import ResultsStore
from probes.importance import MODES, SCOPES
from probes.inputs.lm_corpus import SENTENCES

LANGS_HELP = "Comma-separated languages of the corpus (ISO 639-1)."


def _write(table: pd.DataFrame, out: Path, name: str) -> None:
    table.to_csv(out / f"{name}.csv", index=False, float_format="%.6g")


def _use(corpus: str, n_accumulation: int, n_heldout: int, max_tokens: int) -> CorpusUse:
    return CorpusUse(Path(corpus), n_accumulation=n_accumulation, n_heldout=n_heldout, max_tokens=max_tokens)


def importance(
    ctx: typer.Context,
    langs: str = typer.Option(",".join([*PAPER_LANGS, "en"]), help=LANGS_HELP),
    corpus: str = typer.Option(
        str(SENTENCES), help="CSV id,lang,text (split by id into accumulation / held-out parts)."
    ),
    n_sentences: int = typer.Option(
        64, min=1, help="Sentences of each language's accumulation part to accumulate over."
    ),
    max_tokens: int = typer.Option(48, min=2, help="Tokens kept per sentence."),
    scope: str = typer.Option("layers", help="layers (inside the blocks, norms included, as the reference) or all."),
    mode: str = typer.Option("sum_then_abs", help="sum_then_abs (|theta * sum grad|, the reference) or abs_per_batch."),
) -> None:
    """Taylor importance |theta * sum_b grad L_b| per parameter and language (float32
    safetensors in the results store), its per-tensor summary and the layer x module map."""
    settings: Settings = ctx.obj
    codes = parse_languages(langs)
    scope = check_choice(scope, SCOPES, "--scope")
    mode = check_choice(mode, MODES, "--mode")
    backend = settings.load_backend()
    start = time.perf_counter()
    summary = importance_for(
        backend,
        codes,
        _use(corpus, n_sentences, 16, max_tokens),
        batch_size=settings.batch_size,
        scope=scope,
        mode=mode,
        store=ResultsStore(settings.results),
    )
    out = settings.out_dir
    _write(summary, out, "importance_summary")
    (out / "importance_files.json").write_text(
        json.dumps({k: str(v) for k, v in summary.attrs["files"].items()}, indent=2)
    )
    write_figures(out, model=backend.model_name)
    typer.echo(
        f"importance for {', '.join(codes)} in {time.perf_counter() - start:.0f} s; maps listed in "
        f"{out / 'importance_files.json'}, tables and figure in {out}"
    )


def regions(
    ctx: typer.Context,
    langs: str = typer.Option(",".join([*PAPER_LANGS, "en"]), help=LANGS_HELP + " Each gets a monolingual region."),
    core_langs: str = typer.Option(
        None, help="Languages summed into the core score (default: the paper's six among --langs, else all)."
    ),
    eval_langs: str = typer.Option(None, help="Held-out languages to measure perplexity on (default: --langs)."),
    fraction: float = typer.Option(0.01, help="k: share of each tensor selected (0.01 = 1 %)."),
    seed: int = typer.Option(0, help="Seed of the random regions and perturbations."),
    corpus: str = typer.Option(str(SENTENCES), help="CSV id,lang,text."),
    n_sentences: int = typer.Option(64, min=1, help="Accumulation sentences per language (as for `importance`)."),
    n_heldout: int = typer.Option(16, min=1, help="Held-out sentences per language for perplexity."),
    max_tokens: int = typer.Option(48, min=2, help="Tokens kept per sentence."),
    structure: bool = typer.Option(
        True, help="Also remove whole hidden dimensions (Table 3) and perturb single ones (Fig. 3)."
    ),
    structure_langs: str = typer.Option("en,ru,zh", help="Held-out languages for the dimension experiments."),
) -> None:
    """Core and monolingual regions (masks as packed bits), the removal table
    (``region, fraction, removed_lang, lang, perplexity``), dimension experiments and figures."""
    settings: Settings = ctx.obj
    codes = parse_languages(langs)
    core = parse_languages(core_langs) if core_langs else ([c for c in PAPER_LANGS if c in codes] or codes)
    evaluate = parse_languages(eval_langs) if eval_langs else codes
    dims_langs = parse_languages(structure_langs)
    check_fraction(fraction)
    use = _use(corpus, n_sentences, n_heldout, max_tokens)
    backend = settings.load_backend()
    store = ResultsStore(settings.results)
    out, model = settings.out_dir, backend.model_name
    timings: dict[str, float] = {}
    start = time.perf_counter()
    summary = importance_for(backend, codes, use, batch_size=settings.batch_size, store=store)
    timings["importance"] = time.perf_counter() - start
    _write(summary, out, "importance_summary")
    params = {
        "langs": codes,
        "core_langs": core,
        "eval_langs": evaluate,
        "fraction": fraction,
        "batch_size": settings.batch_size,
    }
    masks_dir = job_run(store, "region-masks", params, backend, use, seed).folder / "masks"  # big: in the store
    start = time.perf_counter()
    found = build_regions(
        summary.attrs["files"],
        core_langs=core,
        fraction=fraction,
        d_model=backend.d_model,
        scopes=backend.parameter_scopes(),
        masks_dir=masks_dir,
        seed=seed,
        metadata={"model": model, "weights_hash": backend.weights_hash, **use.describe()},
    )
    timings["regions"] = time.perf_counter() - start
    for name in ("sizes", "core_global", "concentration", "dimensions", "density"):
        _write(getattr(found, name), out, f"region_{name}")
    (out / "masks_location.txt").write_text(f"{masks_dir}\n")
    heldout = use.texts(evaluate, "heldout")
    start = time.perf_counter()
    removal = removal_table(
        backend,
        found.regions,
        heldout,
        fraction=fraction,
        batch_size=settings.batch_size,
        max_tokens=max_tokens,
        run=job_run(store, "region-removal", params, backend, use, seed),
    )
    timings["removal"] = time.perf_counter() - start
    _write(removal, out, "removal")
    if structure:
        core_top = next(r for r in found.regions if r.label == "core-top").load()
        small = use.texts(dims_langs, "heldout")
        dims_params = {**params, "eval_langs": dims_langs}
        start = time.perf_counter()
        structured = structure_table(
            backend,
            core_top,
            small,
            batch_size=settings.batch_size,
            max_tokens=max_tokens,
            run=job_run(store, "region-structure", dims_params, backend, use, seed),
            seed=seed,
        )
        core_dims = found.dimensions[found.dimensions["region"] == "core-top"]
        perturbed = perturbation_table(
            backend,
            core_dims,
            core_top,
            small,
            batch_size=settings.batch_size,
            max_tokens=max_tokens,
            run=job_run(store, "region-perturbation", dims_params, backend, use, seed),
            seed=seed,
        )
        timings["dimensions"] = time.perf_counter() - start
        _write(structured, out, "structured_removal")
        _write(perturbed, out, "dimension_perturbation")
    write_figures(out, model=model)
    (out / "timings.json").write_text(json.dumps({k: round(v, 1) for k, v in timings.items()}, indent=2))
    view = removal[removal["scope"].isin(["none", "core"])].pivot_table(
        index="region", columns="lang", values="perplexity"
    )
    typer.echo(view.round(2).to_string())
    typer.echo(f"masks (packed bits) in {masks_dir}")
    typer.echo(f"wrote tables, masks and figures to {out} ({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})")


def region_freeze(
    ctx: typer.Context,
    train_lang: str = typer.Option("ar", help="Language of the further training."),
    langs: str = typer.Option(
        ",".join([*PAPER_LANGS, "en"]), help="Held-out languages to measure (and whose importance exists)."
    ),
    core_langs: str = typer.Option(",".join(PAPER_LANGS), help="Languages summed into the core score."),
    fraction: float = typer.Option(0.05, help="Share of each tensor frozen (the paper freezes the top 5 %)."),
    steps: int = typer.Option(30, min=1, help="Optimizer steps."),
    learning_rate: float = typer.Option(2e-4, help="Peak learning rate (cosine schedule)."),
    corpus: str = typer.Option(str(SENTENCES), help="CSV id,lang,text."),
    n_sentences: int = typer.Option(64, min=1, help="Accumulation sentences per language for the importance."),
    n_heldout: int = typer.Option(16, min=1, help="Held-out sentences per language for perplexity."),
    max_tokens: int = typer.Option(48, min=2, help="Tokens kept per sentence."),
    work: str = typer.Option(
        None, help="Folder for the two trained models (default: <results>/region-freeze/<model>)."
    ),
) -> None:
    """Further training on one language with and without the core region frozen (restored after
    every optimizer step), and perplexity of every language before and after."""
    from analyses.pipelines.freeze import FreezeDemoConfig, freeze_demo
    from analyses.stats.regions import core_scores, select
    from probes.importance import load_importance
    from probes.inputs.lm_corpus import load_corpus

    settings: Settings = ctx.obj
    train, codes, core = parse_languages([train_lang])[0], parse_languages(langs), parse_languages(core_langs)
    check_fraction(fraction)
    use = _use(corpus, n_sentences, n_heldout, max_tokens)
    backend = settings.load_backend()
    summary = importance_for(backend, core, use, batch_size=settings.batch_size, store=ResultsStore(settings.results))
    scores = core_scores(load_importance(summary.attrs["files"][lang]).importance for lang in core)
    masks = select(scores, fraction, "top")
    del scores
    model = settings.model
    train_texts = load_corpus(use.path).texts(train, "accumulation")  # all of it; never the held-out part
    del backend
    work_dir = (
        Path(work)
        if work
        else ResultsStore(settings.results).root
        / "region-freeze"
        / f"{Path(model).name}-{train}-{steps}-{learning_rate:g}"
    )
    table = freeze_demo(
        model,
        train,
        train_texts,
        use.texts(codes, "heldout"),
        masks,
        work_dir,
        FreezeDemoConfig(
            steps=steps, batch_size=settings.batch_size, learning_rate=learning_rate, max_tokens=max_tokens
        ),
    )
    out = settings.out_dir
    _write(table.assign(fraction=fraction), out, "freeze_demo")
    write_figures(out, model=Path(model).name)
    typer.echo(table.pivot_table(index="lang", columns="stage", values="perplexity").round(2).to_string())
    typer.echo(
        f"frozen entries: {int(table['n_frozen'].iloc[0])}; largest drift of a frozen entry: "
        f"{table.loc[table['stage'] == 'frozen', 'region_drift'].max():.3g}; wrote {out}"
    )


def register(app: typer.Typer) -> None:
    app.command("importance")(importance)
    app.command("regions")(regions)
    app.command("region-freeze")(region_freeze)
