"""``pivotlens importance``, ``pivotlens regions`` and ``pivotlens region-freeze``: Taylor
importance per language, linguistic regions with their removal experiments, and the freeze
demonstration (Zhang et al. 2024; docs/methods/linguistic-regions.md)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple

import pandas as pd
import typer

from analyses.cli.options import options
from analyses.cli.settings import Settings, check_choice
from analyses.pipelines.freeze import FreezeDemoConfig, freeze_demo
from analyses.pipelines.regions import (
    PAPER_LANGS,
    CorpusUse,
    RegionSet,
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
from probes.importance import MODES, SCOPES, Mode, Scope

if TYPE_CHECKING:
    from probes.backend import Backend

LANGS_HELP = "Comma-separated languages of the corpus (ISO 639-1)."
PAPER_AND_ENGLISH = ",".join([*PAPER_LANGS, "en"])


def _write(table: pd.DataFrame, out: Path, name: str) -> None:
    table.to_csv(out / f"{name}.csv", index=False, float_format="%.6g")


@dataclass(frozen=True, kw_only=True)
class CorpusOptions:
    """Which sentences of the corpus a command uses (``importance``, ``regions``,
    ``region-freeze``); the defaults are :class:`CorpusUse`'s."""

    corpus: Annotated[str, typer.Option(help="CSV id,lang,text.")] = str(CorpusUse.path)
    n_sentences: Annotated[int, typer.Option(min=1, help="Accumulation sentences per language for the importance.")] = (
        CorpusUse.n_accumulation
    )
    max_tokens: Annotated[int, typer.Option(min=2, help="Tokens kept per sentence.")] = CorpusUse.max_tokens

    def use(self) -> CorpusUse:
        return CorpusUse(Path(self.corpus), n_accumulation=self.n_sentences, max_tokens=self.max_tokens)


@dataclass(frozen=True, kw_only=True)
class HeldOutCorpusOptions(CorpusOptions):
    """The corpus options of the commands that also measure perplexity on held-out sentences."""

    n_heldout: Annotated[int, typer.Option(min=1, help="Held-out sentences per language for perplexity.")] = (
        CorpusUse.n_heldout
    )

    def use(self) -> CorpusUse:
        return replace(super().use(), n_heldout=self.n_heldout)


@dataclass(frozen=True, kw_only=True)
class ImportanceOptions(CorpusOptions):
    langs: Annotated[str, typer.Option(help=LANGS_HELP)] = PAPER_AND_ENGLISH
    corpus: Annotated[str, typer.Option(help="CSV id,lang,text (split by id into accumulation / held-out parts).")] = (
        str(CorpusUse.path)
    )
    n_sentences: Annotated[
        int, typer.Option(min=1, help="Sentences of each language's accumulation part to accumulate over.")
    ] = CorpusUse.n_accumulation
    scope: Annotated[str, typer.Option(help="layers (inside the blocks, norms included, as the reference) or all.")] = (
        "layers"
    )
    mode: Annotated[str, typer.Option(help="sum_then_abs (|theta * sum grad|, the reference) or abs_per_batch.")] = (
        "sum_then_abs"
    )

    def scope_and_mode(self) -> tuple[Scope, Mode]:
        return check_choice(self.scope, SCOPES, "--scope"), check_choice(self.mode, MODES, "--mode")


@options(ImportanceOptions)
def importance(ctx: typer.Context, opts: ImportanceOptions) -> None:
    """Taylor importance |theta * sum_b grad L_b| per parameter and language (float32
    safetensors in the results store), its per-tensor summary and the layer x module map."""
    settings: Settings = ctx.obj
    codes = parse_languages(opts.langs)
    scope, mode = opts.scope_and_mode()
    backend = settings.load_backend()
    start = time.perf_counter()
    summary = importance_for(
        backend,
        codes,
        opts.use(),
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


class RegionLanguages(NamedTuple):
    langs: list[str]
    core: list[str]
    evaluate: list[str]
    structure: list[str]


@dataclass(frozen=True, kw_only=True)
class RegionOptions(HeldOutCorpusOptions):
    langs: Annotated[str, typer.Option(help=LANGS_HELP + " Each gets a monolingual region.")] = PAPER_AND_ENGLISH
    core_langs: Annotated[
        str | None,
        typer.Option(help="Languages summed into the core score (default: the paper's six among --langs, else all)."),
    ] = None
    eval_langs: Annotated[
        str | None, typer.Option(help="Held-out languages to measure perplexity on (default: --langs).")
    ] = None
    fraction: Annotated[float, typer.Option(help="k: share of each tensor selected (0.01 = 1 %).")] = 0.01
    seed: Annotated[int, typer.Option(help="Seed of the random regions and perturbations.")] = 0
    n_sentences: Annotated[
        int, typer.Option(min=1, help="Accumulation sentences per language (as for `importance`).")
    ] = CorpusUse.n_accumulation
    structure: Annotated[
        bool, typer.Option(help="Also remove whole hidden dimensions (Table 3) and perturb single ones (Fig. 3).")
    ] = True
    structure_langs: Annotated[str, typer.Option(help="Held-out languages for the dimension experiments.")] = "en,ru,zh"

    def languages(self) -> RegionLanguages:
        """Every language option, checked with ``--fraction``."""
        codes = parse_languages(self.langs)
        core = (
            parse_languages(self.core_langs) if self.core_langs else ([c for c in PAPER_LANGS if c in codes] or codes)
        )
        evaluate = parse_languages(self.eval_langs) if self.eval_langs else codes
        found = RegionLanguages(codes, core, evaluate, parse_languages(self.structure_langs))
        check_fraction(self.fraction)
        return found


@options(RegionOptions)
def regions(ctx: typer.Context, opts: RegionOptions) -> None:
    """Core and monolingual regions (masks as packed bits), the removal table
    (``region, fraction, removed_lang, lang, perplexity``), dimension experiments and figures."""
    settings: Settings = ctx.obj
    langs = opts.languages()
    use = opts.use()
    backend = settings.load_backend()
    store = ResultsStore(settings.results)
    out, model = settings.out_dir, backend.model_name
    timings: dict[str, float] = {}
    start = time.perf_counter()
    summary = importance_for(backend, langs.langs, use, batch_size=settings.batch_size, store=store)
    timings["importance"] = time.perf_counter() - start
    _write(summary, out, "importance_summary")
    params = {
        "langs": langs.langs,
        "core_langs": langs.core,
        "eval_langs": langs.evaluate,
        "fraction": opts.fraction,
        "batch_size": settings.batch_size,
    }
    masks_dir = job_run(store, "region-masks", params, backend, use, opts.seed).folder / "masks"  # big: in the store
    start = time.perf_counter()
    found = build_regions(
        summary.attrs["files"],
        core_langs=langs.core,
        fraction=opts.fraction,
        d_model=backend.d_model,
        scopes=backend.parameter_scopes(),
        masks_dir=masks_dir,
        seed=opts.seed,
        metadata={"model": model, "weights_hash": backend.weights_hash, **use.describe()},
    )
    timings["regions"] = time.perf_counter() - start
    for name in ("sizes", "core_global", "concentration", "dimensions", "density"):
        _write(getattr(found, name), out, f"region_{name}")
    (out / "masks_location.txt").write_text(f"{masks_dir}\n")
    heldout = use.texts(langs.evaluate, "heldout")
    start = time.perf_counter()
    removal = removal_table(
        backend,
        found.regions,
        heldout,
        fraction=opts.fraction,
        batch_size=settings.batch_size,
        max_tokens=opts.max_tokens,
        run=job_run(store, "region-removal", params, backend, use, opts.seed),
    )
    timings["removal"] = time.perf_counter() - start
    _write(removal, out, "removal")
    if opts.structure:
        small = use.texts(langs.structure, "heldout")
        start = time.perf_counter()
        _structure_experiments(backend, found, small, opts, settings, {**params, "eval_langs": langs.structure})
        timings["dimensions"] = time.perf_counter() - start
    write_figures(out, model=model)
    (out / "timings.json").write_text(json.dumps({k: round(v, 1) for k, v in timings.items()}, indent=2))
    view = removal[removal["scope"].isin(["none", "core"])].pivot_table(
        index="region", columns="lang", values="perplexity"
    )
    typer.echo(view.round(2).to_string())
    typer.echo(f"masks (packed bits) in {masks_dir}")
    typer.echo(f"wrote tables, masks and figures to {out} ({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})")


def _structure_experiments(
    backend: Backend,
    found: RegionSet,
    texts: dict[str, list[str]],
    opts: RegionOptions,
    settings: Settings,
    params: dict[str, object],
) -> None:
    """Removing whole hidden dimensions of the core region (Table 3) and perturbing single ones
    (Fig. 3), written to ``--out``."""
    store, use = ResultsStore(settings.results), opts.use()
    core_top = next(r for r in found.regions if r.label == "core-top").load()
    structured = structure_table(
        backend,
        core_top,
        texts,
        batch_size=settings.batch_size,
        max_tokens=opts.max_tokens,
        run=job_run(store, "region-structure", params, backend, use, opts.seed),
        seed=opts.seed,
    )
    core_dims = found.dimensions[found.dimensions["region"] == "core-top"]
    perturbed = perturbation_table(
        backend,
        core_dims,
        core_top,
        texts,
        batch_size=settings.batch_size,
        max_tokens=opts.max_tokens,
        run=job_run(store, "region-perturbation", params, backend, use, opts.seed),
        seed=opts.seed,
    )
    _write(structured, settings.out_dir, "structured_removal")
    _write(perturbed, settings.out_dir, "dimension_perturbation")


@dataclass(frozen=True, kw_only=True)
class FreezeOptions(HeldOutCorpusOptions):
    """The options of ``region-freeze``; the training defaults are :class:`FreezeDemoConfig`'s."""

    train_lang: Annotated[str, typer.Option(help="Language of the further training.")] = "ar"
    langs: Annotated[str, typer.Option(help="Held-out languages to measure (and whose importance exists).")] = (
        PAPER_AND_ENGLISH
    )
    core_langs: Annotated[str, typer.Option(help="Languages summed into the core score.")] = ",".join(PAPER_LANGS)
    fraction: Annotated[float, typer.Option(help="Share of each tensor frozen (the paper freezes the top 5 %).")] = 0.05
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = FreezeDemoConfig.steps
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate (cosine schedule).")] = (
        FreezeDemoConfig.learning_rate
    )
    work: Annotated[
        str | None, typer.Option(help="Folder for the two trained models (default: <results>/region-freeze/<model>).")
    ] = None

    def languages(self) -> tuple[str, list[str], list[str]]:
        """The training language, the measured and the core languages, checked with ``--fraction``."""
        train, codes, core = (
            parse_languages([self.train_lang])[0],
            parse_languages(self.langs),
            parse_languages(self.core_langs),
        )
        check_fraction(self.fraction)
        return train, codes, core

    def config(self, settings: Settings) -> FreezeDemoConfig:
        return FreezeDemoConfig(
            steps=self.steps,
            batch_size=settings.batch_size,
            learning_rate=self.learning_rate,
            max_tokens=self.max_tokens,
        )

    def work_dir(self, settings: Settings, train: str) -> Path:
        """``--work``, or a folder of the results store named by model, language, steps and rate."""
        if self.work:
            return Path(self.work)
        name = f"{Path(settings.model).name}-{train}-{self.steps}-{self.learning_rate:g}"
        return ResultsStore(settings.results).root / "region-freeze" / name


@options(FreezeOptions)
def region_freeze(ctx: typer.Context, opts: FreezeOptions) -> None:
    """Further training on one language with and without the core region frozen (restored after
    every optimizer step), and perplexity of every language before and after."""
    from analyses.stats.regions import core_scores, select
    from probes.importance import load_importance
    from probes.inputs.lm_corpus import load_corpus

    settings: Settings = ctx.obj
    train, codes, core = opts.languages()
    use = opts.use()
    backend = settings.load_backend()
    summary = importance_for(backend, core, use, batch_size=settings.batch_size, store=ResultsStore(settings.results))
    scores = core_scores(load_importance(summary.attrs["files"][lang]).importance for lang in core)
    masks = select(scores, opts.fraction, "top")
    del scores
    train_texts = load_corpus(use.path).texts(train, "accumulation")  # all of it; never the held-out part
    del backend
    table = freeze_demo(
        settings.model,
        train,
        train_texts,
        use.texts(codes, "heldout"),
        masks,
        opts.work_dir(settings, train),
        opts.config(settings),
    )
    out = settings.out_dir
    _write(table.assign(fraction=opts.fraction), out, "freeze_demo")
    write_figures(out, model=Path(settings.model).name)
    typer.echo(table.pivot_table(index="lang", columns="stage", values="perplexity").round(2).to_string())
    typer.echo(
        f"frozen entries: {int(table['n_frozen'].iloc[0])}; largest drift of a frozen entry: "
        f"{table.loc[table['stage'] == 'frozen', 'region_drift'].max():.3g}; wrote {out}"
    )


def register(app: typer.Typer) -> None:
    app.command("importance")(importance)
    app.command("regions")(regions)
    app.command("region-freeze")(region_freeze)
