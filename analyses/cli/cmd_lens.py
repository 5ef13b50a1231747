"""``pivotlens lens`` and ``pivotlens lambda``: the latent-language probe and PROM's rule."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from analyses.cli.settings import Settings, check_choice, check_languages, check_layer
from analyses.pipelines.lens import data_languages, run_languages, write_outputs
from analyses.stats.prom_lambda import EMPTY_FLOOR, analyse, copy_costs, verdict
from probes.backend.errors import InputError, TaskRequestError
from probes.backend.lenses import load_lens, parse_lens_names
from probes.backend.models import model_depth
from probes.backend.store import ResultsStore
from probes.inputs.prompts import SHOTS, check_request
from probes.inputs.words import CLOZE, CONCEPTS, load_cloze, load_concepts

TASKS = ("cloze", "translation", "repetition")
WORD_PROBS = ("auto", "prefix", "chain")
TASK_HELP = "cloze (PROM's protocol: Wendler's cloze task in the target language), translation or repetition."
SOURCE_HELP = (
    "Source language of translation prompts (default ru, fr for Cyrillic targets: a source in another script "
    "cannot spell the answer)."
)
LAMBDA_VIEW = [
    "lang",
    "src_lang",
    "layer",
    "n",
    "n_dropped_copy",
    "n_dropped_degenerate",
    "mean_p_en",
    "mean_p_target",
    "verdict",
]
WORD_PROB_HELP = (
    "auto (prefix set where it identifies the word, else whole-word chain, both sides alike), prefix or chain."
)


def _check_data(words: str, langs: list[str]) -> None:
    """The word list reads and holds a column for every language asked for."""
    have = [c for c in load_concepts(words).columns if c != "concept"]
    missing = [c for c in langs if c not in have]
    if missing:
        raise InputError(
            f"{words} has no column for {', '.join(missing)}; it has {', '.join(have)}: "
            "choose among those or add the column"
        )


def _check_task(task: str, langs: list[str], source: str | None, floor: float | None = None) -> None:
    """The task can be built for these languages (cloze data, a source other than the target)
    and the abstain floor is positive."""
    check_request(task, langs, src=source, cloze=load_cloze(CLOZE) if task == "cloze" else None)
    if floor is not None and not floor > 0:
        raise TaskRequestError(f"--floor must be positive (got {floor}); the default is {EMPTY_FLOOR}")


def lens(
    ctx: typer.Context,
    target: str = typer.Option(..., help="Target language (ISO 639-1)."),
    source: str = typer.Option(None, help=SOURCE_HELP),
    task: str = typer.Option("cloze", help=TASK_HELP),
    shots: int = typer.Option(SHOTS, help="Demonstrations per prompt (PROM: 5)."),
    words: str = typer.Option(str(CONCEPTS), help="Wide CSV word list: concept, then one column per language."),
    latent: str = typer.Option("en", help="Latent language whose word probability is tracked."),
    word_prob: str = typer.Option("auto", help=WORD_PROB_HELP),
    keep_copies: bool = typer.Option(False, help="Keep prompts whose answer shares a token with a word in the prompt."),
    lens_name: str = typer.Option(
        "logit", "--lens", help="logit, linear or tuned (a fitted lens: see pivotlens fit-lens)."
    ),
) -> None:
    """Lens (logit by default) for one target language: tidy table (lens.csv/.parquet) and figure."""
    settings: Settings = ctx.obj
    task = check_choice(task, TASKS, "--task")
    word_prob = check_choice(word_prob, WORD_PROBS, "--word-prob")
    langs = [check_languages(target, "--target")[0], check_languages(latent, "--latent")[0]]
    langs += [check_languages(source, "--source")[0]] if source else []
    _check_data(words, langs)
    _check_task(task, langs[:1], source)
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
        shots=shots,
        batch_size=settings.batch_size,
        store=ResultsStore(settings.results),
        drop_copies=not keep_copies,
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
    task: str = typer.Option("cloze", help=TASK_HELP),
    shots: int = typer.Option(SHOTS, help="Demonstrations per prompt (PROM footnote 3: 5-shot)."),
    source: str = typer.Option(None, help=SOURCE_HELP),
    floor: float = typer.Option(
        EMPTY_FLOOR,
        help="Abstain floor: below it for both mean P(en) and mean P(target), the lens is empty and lambda undecided.",
    ),
    word_prob: str = typer.Option("auto", help=WORD_PROB_HELP),
    keep_copies: bool = typer.Option(False, help="Keep prompts whose answer shares a token with a word in the prompt."),
    words: str = typer.Option(str(CONCEPTS), help="Wide CSV word list."),
    limit: int = typer.Option(None, min=1, help="Only the first N prompts per language (a quick subset)."),
    lens_name: str = typer.Option(
        "logit",
        "--lens",
        help="logit, linear, tuned, linear-en, a comma-separated list, or all (logit, linear, linear-en, tuned).",
    ),
) -> None:
    """PROM's lambda per language, measured as PROM does (cloze, 5-shot): 0 where mean P(en) <
    mean P(target) at layer n, undecided where the lens is empty there; with the lens curves
    and figures. With several lenses: each lens' decision and whether they agree."""
    settings: Settings = ctx.obj
    task = check_choice(task, TASKS, "--task")
    word_prob = check_choice(word_prob, WORD_PROBS, "--word-prob")
    codes = [c for c in data_languages(words) if c != "en"] if langs == "all" else check_languages(langs)
    codes_and_source = codes + ([check_languages(source, "--source")[0]] if source else [])
    _check_data(words, codes_and_source)
    _check_task(task, codes, source, floor)
    check_layer(layer, model_depth(settings.model), settings.model)
    names = parse_lens_names(lens_name, allow_all=True)
    backend = settings.load_backend()
    check_layer(layer, backend.n_layers, settings.model)  # a hub model's depth is known only now
    options = {
        "task": task,
        "src": source,
        "words": words,
        "limit": limit,
        "shots": shots,
        "word_prob": word_prob,
        "drop_copies": not keep_copies,
        "batch_size": settings.batch_size,
        "store": ResultsStore(settings.results),
    }
    if len(names) > 1:
        _lambda_under_lenses(backend, names, codes, settings, layer=layer, lambda0=lambda0, floor=floor, **options)
        return
    table = run_languages(backend, codes, lens=load_lens(backend, names[0]), **options)
    results = analyse(table, n_layers=backend.n_layers, layer=layer, lambda0=lambda0, floor=floor)
    written = write_outputs(results, settings.out_dir, model=backend.model_name)
    for line in copy_costs(results.lambdas):
        typer.echo(line)
    view = results.lambdas.assign(verdict=results.lambdas.apply(verdict, axis=1))
    _print_summary(
        view[LAMBDA_VIEW], f"PROM lambda ({backend.model_name}; {task}, {shots}-shot; all columns in lambda.csv)"
    )
    typer.echo(f"wrote {len(written)} files to {settings.out_dir}")


def _lambda_under_lenses(backend, names, codes, settings: Settings, *, layer, lambda0, floor, **options) -> None:
    from analyses.pipelines.lens_family import lambda_under_lenses, write_lambda_by_lens

    table, lambdas, agreement = lambda_under_lenses(
        backend, names, codes, layer=layer, lambda0=lambda0, floor=floor, **options
    )
    written = write_lambda_by_lens(table, lambdas, agreement, settings.out_dir)
    _print_summary(agreement, f"PROM pivot decision under each lens ({backend.model_name})")
    typer.echo(f"wrote {', '.join(p.name for p in written)} to {settings.out_dir}")


def _print_summary(table, title: str) -> None:
    view = Table(title=title)
    for column in table.columns:
        view.add_column(str(column))
    for row in table.itertuples(index=False):
        view.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row])
    Console().print(view)


def register(app: typer.Typer) -> None:
    app.command("lens")(lens)
    app.command("lambda")(lambda_)
