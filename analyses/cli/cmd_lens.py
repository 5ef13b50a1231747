"""``pivotlens lens`` and ``pivotlens lambda``: the latent-language probe and PROM's rule."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from analyses.cli.settings import Settings
from analyses.pipelines.lens import data_languages, run_languages, write_outputs
from analyses.stats.prom_lambda import analyse
from probes.backend.languages import parse_languages
from probes.backend.store import ResultsStore
from probes.inputs.words import CONCEPTS


def lens(
    ctx: typer.Context,
    target: str = typer.Option(..., help="Target language (ISO 639-1)."),
    source: str = typer.Option(None, help="Source language of the translation prompts (default fr, or de for fr)."),
    task: str = typer.Option("translation", help="translation, repetition or cloze."),
    words: str = typer.Option(str(CONCEPTS), help="Wide CSV word list: concept, then one column per language."),
    latent: str = typer.Option("en", help="Latent language whose word probability is tracked."),
    word_prob: str = typer.Option("prefix", help="prefix (Wendler's token-set sum) or chain (whole-word probability)."),
) -> None:
    """Logit lens for one target language: tidy table (lens.csv/.parquet) and figure."""
    settings: Settings = ctx.obj
    parse_languages([target, latent] + ([source] if source else []))
    backend = settings.load_backend()
    table = run_languages(
        backend,
        [target],
        task=task,
        src=source,
        latent=latent,
        words=words,
        word_prob=word_prob,
        batch_size=settings.batch_size,
        store=ResultsStore(settings.results),
    )
    results = analyse(table, n_layers=backend.n_layers)
    written = write_outputs(results, settings.out_dir, model=backend.model_name)
    _print_summary(results.summary, "pivot summary")
    typer.echo(f"wrote {len(written)} files to {settings.out_dir}")


def lambda_(
    ctx: typer.Context,
    langs: str = typer.Option(
        "fr,de,ru,zh,ja,sw", help="Comma-separated target languages, or 'all' for every data language."
    ),
    layer: int = typer.Option(None, help="0-based layer n (default: three quarters of the depth, as PROM's 24 of 32)."),
    lambda0: float = typer.Option(0.1, help="lambda where the model pivots through English (PROM: 0.1)."),
    task: str = typer.Option("translation", help="translation, repetition or cloze."),
    words: str = typer.Option(str(CONCEPTS), help="Wide CSV word list."),
    limit: int = typer.Option(None, help="Only the first N prompts per language (a quick subset)."),
) -> None:
    """PROM's lambda per language (0 where mean P(en) < mean P(target) at layer n), with the lens
    curves and figures."""
    settings: Settings = ctx.obj
    codes = [c for c in data_languages(words) if c != "en"] if langs == "all" else parse_languages(langs)
    backend = settings.load_backend()
    table = run_languages(
        backend,
        codes,
        task=task,
        words=words,
        limit=limit,
        batch_size=settings.batch_size,
        store=ResultsStore(settings.results),
    )
    results = analyse(table, n_layers=backend.n_layers, layer=layer, lambda0=lambda0)
    written = write_outputs(results, settings.out_dir, model=backend.model_name)
    _print_summary(results.lambdas, f"PROM lambda ({backend.model_name})")
    typer.echo(f"wrote {len(written)} files to {settings.out_dir}")


def _print_summary(table, title: str) -> None:
    view = Table(title=title)
    for column in table.columns:
        view.add_column(str(column))
    for row in table.itertuples(index=False):
        view.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    Console().print(view)


def register(app: typer.Typer) -> None:
    app.command("lens")(lens)
    app.command("lambda")(lambda_)
