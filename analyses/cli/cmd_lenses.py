"""``pivotlens fit-lens`` and ``pivotlens lens-eval``: the linear-shortcut and tuned lenses."""

from __future__ import annotations

import typer

from analyses.cli.settings import Settings
from probes.backend.languages import parse_languages
from probes.backend.lenses import parse_lens_names


def fit_lens(
    ctx: typer.Context,
    kind: str = typer.Option(..., help="linear (Din et al. 2023, closed form) or tuned (Belrose et al. 2023)."),
    corpus: str = typer.Option(
        None,
        help=(
            "CSV lang,text (or id,lang,text); default: data/sentences.csv (accumulation part) + data/instructions.csv."
        ),
    ),
    langs: str = typer.Option(
        None,
        help=(
            "Comma-separated languages to fit on (default: every language of the corpus, balanced); "
            "en for the English-only fit."
        ),
    ),
    tokens: int = typer.Option(
        None,
        min=1,
        help="Token budget, split evenly over the languages (default: the smallest language's total per language).",
    ),
    name: str = typer.Option(None, help="Name to save under (default: the kind, plus -<langs> with --langs)."),
    seed: int = typer.Option(0, help="Seed of the tuned lens' minibatches."),
    steps: int = typer.Option(50, min=1, help="Tuned lens: optimizer steps."),
    tokens_per_step: int = typer.Option(64, min=1, help="Tuned lens: tokens per step (KL over the full vocabulary)."),
    lr: float = typer.Option(1e-3, help="Tuned lens: Adam learning rate."),
) -> None:
    """Fit a lens on text and save it into the cache, keyed by the model's weights hash."""
    from analyses.pipelines.lens_family import corpus_texts
    from analyses.pipelines.lens_family import fit_lens as fit

    settings: Settings = ctx.obj
    if kind not in ("linear", "tuned"):
        raise typer.BadParameter(f"--kind must be linear or tuned, not {kind!r}")
    codes = parse_languages(langs) if langs else None
    texts, source, sha = corpus_texts(corpus, codes, heldout=False)
    backend = settings.load_backend()
    lens, path = fit(
        backend,
        kind,
        texts,
        source=source,
        corpus_sha256=sha,
        langs=codes,
        tokens=tokens,
        name=name,
        seed=seed,
        steps=steps,
        tokens_per_step=tokens_per_step,
        lr=lr,
        batch_size=settings.batch_size,
    )
    typer.echo(f"fitted {lens.name} ({lens.record['tokens']} tokens, fit {lens.fit_id}) -> {path}")


def lens_eval_(
    ctx: typer.Context,
    lens: str = typer.Option(
        "logit,linear,tuned", help="Comma-separated lens names (logit, linear, tuned, linear-en, ...)."
    ),
    corpus: str = typer.Option(
        None, help="CSV lang,text of held-out text (default: the held-out part of data/sentences.csv)."
    ),
    langs: str = typer.Option(None, help="Comma-separated languages (default: every language of the corpus)."),
    tokens: int = typer.Option(None, min=1, help="Token budget, split evenly over the languages."),
) -> None:
    """Per lens, layer and language: KL in bits to the model's final distribution and top-1
    agreement, with the KL figure."""
    from analyses.pipelines.lens_family import corpus_texts, evaluate, write_evaluation

    settings: Settings = ctx.obj
    names = parse_lens_names(lens)
    texts, source, _ = corpus_texts(corpus, parse_languages(langs) if langs else None, heldout=True)
    backend = settings.load_backend()
    table = evaluate(backend, names, texts, tokens=tokens, batch_size=settings.batch_size)
    written = write_evaluation(table, settings.out_dir, model=backend.model_name, source=source)
    typer.echo(f"wrote {len(written)} files to {settings.out_dir}")


def register(app: typer.Typer) -> None:
    app.command("fit-lens")(fit_lens)
    app.command("lens-eval")(lens_eval_)
