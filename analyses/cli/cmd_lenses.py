"""``pivotlens fit-lens`` and ``pivotlens lens-eval``: the linear-shortcut and tuned lenses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from analyses.cli.options import options
from analyses.cli.settings import Settings
from probes.backend.languages import parse_languages
from probes.backend.lenses import parse_lens_names


@dataclass(frozen=True, kw_only=True)
class FitLensOptions:
    kind: Annotated[str, typer.Option(help="linear (Din et al. 2023, closed form) or tuned (Belrose et al. 2023).")]
    corpus: Annotated[
        str | None,
        typer.Option(
            help="CSV lang,text (or id,lang,text); default: data/sentences.csv (accumulation part) + "
            "data/instructions.csv."
        ),
    ] = None
    langs: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated languages to fit on (default: every language of the corpus, balanced); "
            "en for the English-only fit."
        ),
    ] = None
    tokens: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Token budget, split evenly over the languages (default: the smallest language's total per language).",
        ),
    ] = None
    name: Annotated[
        str | None, typer.Option(help="Name to save under (default: the kind, plus -<langs> with --langs).")
    ] = None
    seed: Annotated[int, typer.Option(help="Seed of the tuned lens' minibatches.")] = 0
    steps: Annotated[int, typer.Option(min=1, help="Tuned lens: optimizer steps.")] = 50
    tokens_per_step: Annotated[
        int, typer.Option(min=1, help="Tuned lens: tokens per step (KL over the full vocabulary).")
    ] = 64
    lr: Annotated[float, typer.Option(help="Tuned lens: Adam learning rate.")] = 1e-3

    def languages(self) -> list[str] | None:
        """``--langs`` (None: every language of the corpus), checked with ``--kind``."""
        if self.kind not in ("linear", "tuned"):
            raise typer.BadParameter(f"--kind must be linear or tuned, not {self.kind!r}")
        return parse_languages(self.langs) if self.langs else None


@options(FitLensOptions)
def fit_lens(ctx: typer.Context, opts: FitLensOptions) -> None:
    """Fit a lens on text and save it into the cache, keyed by the model's weights hash."""
    from analyses.pipelines.lens_family import corpus_texts
    from analyses.pipelines.lens_family import fit_lens as fit

    settings: Settings = ctx.obj
    codes = opts.languages()
    texts, source, sha = corpus_texts(opts.corpus, codes, heldout=False)
    backend = settings.load_backend()
    lens, path = fit(
        backend,
        opts.kind,
        texts,
        source=source,
        corpus_sha256=sha,
        langs=codes,
        tokens=opts.tokens,
        name=opts.name,
        seed=opts.seed,
        steps=opts.steps,
        tokens_per_step=opts.tokens_per_step,
        lr=opts.lr,
        batch_size=settings.batch_size,
    )
    typer.echo(f"fitted {lens.name} ({lens.record['tokens']} tokens, fit {lens.fit_id}) -> {path}")


@dataclass(frozen=True, kw_only=True)
class LensEvalOptions:
    lens: Annotated[str, typer.Option(help="Comma-separated lens names (logit, linear, tuned, linear-en, ...).")] = (
        "logit,linear,tuned"
    )
    corpus: Annotated[
        str | None,
        typer.Option(help="CSV lang,text of held-out text (default: the held-out part of data/sentences.csv)."),
    ] = None
    langs: Annotated[
        str | None, typer.Option(help="Comma-separated languages (default: every language of the corpus).")
    ] = None
    tokens: Annotated[int | None, typer.Option(min=1, help="Token budget, split evenly over the languages.")] = None


@options(LensEvalOptions)
def lens_eval_(ctx: typer.Context, opts: LensEvalOptions) -> None:
    """Per lens, layer and language: KL in bits to the model's final distribution and top-1
    agreement, with the KL figure."""
    from analyses.pipelines.lens_family import corpus_texts, evaluate, write_evaluation

    settings: Settings = ctx.obj
    names = parse_lens_names(opts.lens)
    texts, source, _ = corpus_texts(opts.corpus, parse_languages(opts.langs) if opts.langs else None, heldout=True)
    backend = settings.load_backend()
    table = evaluate(backend, names, texts, tokens=opts.tokens, batch_size=settings.batch_size)
    written = write_evaluation(table, settings.out_dir, model=backend.model_name, source=source)
    typer.echo(f"wrote {len(written)} files to {settings.out_dir}")


def register(app: typer.Typer) -> None:
    app.command("fit-lens")(fit_lens)
    app.command("lens-eval")(lens_eval_)
