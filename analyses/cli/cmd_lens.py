"""``pivotlens lens`` and ``pivotlens lambda``: the latent-language probe and PROM's rule."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from analyses.cli.settings import Settings, check_choice, check_languages
from analyses.pipelines.lens import data_languages, run_languages, write_outputs
from analyses.stats.prom_lambda import analyse
from probes.backend.errors import InputError
from probes.backend.lenses import load_lens, parse_lens_names
from probes.backend.models import model_depth
from probes.backend.store import ResultsStore
from probes.inputs.words import CONCEPTS, load_concepts

TASKS = ("translation", "repetition", "cloze")
WORD_PROBS = ("prefix", "chain")


def _check_data(words: str, langs: list[str]) -> None:
    """The word list reads and holds a column for every language asked for."""
    have = [c for c in load_concepts(words).columns if c != "concept"]
    missing = [c for c in langs if c not in have]
    if missing:
        raise InputError(
            f"{words} has no column for {', '.join(missing)}; it has {', '.join(have)}: "
            "choose among those or add the column"
        )


def _check_layer(layer: int | None, depth: int | None, model: str) -> None:
    if layer is not None and depth is not None and not 0 <= layer < depth:
        raise InputError(f"--layer {layer} is outside {model}'s {depth} layers; use 0 to {depth - 1}")


def lens(
    ctx: typer.Context,
    target: str = typer.Option(..., help="Target language (ISO 639-1)."),
    source: str = typer.Option(None, help="Source language of the translation prompts (default fr, or de for fr)."),
    task: str = typer.Option("translation", help="translation, repetition or cloze."),
    words: str = typer.Option(str(CONCEPTS), help="Wide CSV word list: concept, then one column per language."),
    latent: str = typer.Option("en", help="Latent language whose word probability is tracked."),
    word_prob: str = typer.Option("prefix", help="prefix (Wendler's token-set sum) or chain (whole-word probability)."),
    lens_name: str = typer.Option(
        "logit", "--lens", help="logit, linear or tuned (a fitted lens: see pivotlens fit-lens)."
    ),
) -> None:
    """Lens (logit by default) for one target language: tidy table (lens.csv/.parquet) and figure."""
    settings: Settings = ctx.obj
    check_choice(task, TASKS, "--task")
    check_choice(word_prob, WORD_PROBS, "--word-prob")
    langs = [check_languages(target, "--target")[0], check_languages(latent, "--latent")[0]]
    langs += [check_languages(source, "--source")[0]] if source else []
    _check_data(words, langs)
    (name,) = parse_lens_names(lens_name)
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
        lens=load_lens(backend, name),
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
    limit: int = typer.Option(None, min=1, help="Only the first N prompts per language (a quick subset)."),
    lens_name: str = typer.Option(
        "logit",
        "--lens",
        help="logit, linear, tuned, linear-en, a comma-separated list, or all (logit, linear, linear-en, tuned).",
    ),
) -> None:
    """PROM's lambda per language (0 where mean P(en) < mean P(target) at layer n), with the lens
    curves and figures. With several lenses: each lens' decision and whether they agree."""
    settings: Settings = ctx.obj
    check_choice(task, TASKS, "--task")
    codes = [c for c in data_languages(words) if c != "en"] if langs == "all" else check_languages(langs)
    _check_data(words, codes)
    _check_layer(layer, model_depth(settings.model), settings.model)
    names = parse_lens_names(lens_name, allow_all=True)
    backend = settings.load_backend()
    _check_layer(layer, backend.n_layers, settings.model)  # a hub model's depth is known only now
    options = {
        "task": task,
        "words": words,
        "limit": limit,
        "batch_size": settings.batch_size,
        "store": ResultsStore(settings.results),
    }
    if len(names) > 1:
        _lambda_under_lenses(backend, names, codes, settings, layer=layer, lambda0=lambda0, **options)
        return
    table = run_languages(backend, codes, lens=load_lens(backend, names[0]), **options)
    results = analyse(table, n_layers=backend.n_layers, layer=layer, lambda0=lambda0)
    written = write_outputs(results, settings.out_dir, model=backend.model_name)
    _print_summary(results.lambdas, f"PROM lambda ({backend.model_name})")
    typer.echo(f"wrote {len(written)} files to {settings.out_dir}")


def _lambda_under_lenses(backend, names, codes, settings: Settings, *, layer, lambda0, **options) -> None:
    from analyses.pipelines.lens_family import lambda_under_lenses, write_lambda_by_lens

    table, lambdas, agreement = lambda_under_lenses(backend, names, codes, layer=layer, lambda0=lambda0, **options)
    written = write_lambda_by_lens(table, lambdas, agreement, settings.out_dir)
    _print_summary(agreement, f"PROM pivot decision under each lens ({backend.model_name})")
    typer.echo(f"wrote {', '.join(p.name for p in written)} to {settings.out_dir}")


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
