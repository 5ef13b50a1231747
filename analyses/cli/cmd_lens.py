"""``pivotlens lens`` and ``pivotlens lambda``: the latent-language probe and PROM's rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, TypedDict

import typer
from rich.console import Console
from rich.table import Table

from analyses.cli.options import LensOption, options
from analyses.cli.settings import Settings, check_choice, check_languages, check_layer
from analyses.pipelines.lens import data_languages, run_languages, write_outputs
from analyses.stats.prom_lambda import EMPTY_FLOOR, analyse, copy_costs, verdict
from probes.backend.errors import InputError, TaskRequestError
from probes.backend.lenses import load_lens, parse_lens_names
from probes.backend.models import model_depth
from probes.backend.store import ResultsStore
from probes.inputs.prompts import SHOTS, LensTask, check_request
from probes.inputs.words import CLOZE, CONCEPTS, load_cloze, load_concepts
from probes.lens import WordProb

if TYPE_CHECKING:
    from probes.backend import Backend

TASKS: tuple[LensTask, ...] = ("cloze", "translation", "repetition")
WORD_PROBS: tuple[WordProb, ...] = ("auto", "prefix", "chain")
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
    "mean_p_latent",
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


@dataclass(frozen=True, kw_only=True)
class PromptOptions:
    """The prompt options ``lens`` and ``lambda`` share."""

    task: Annotated[str, typer.Option(help=TASK_HELP)] = "cloze"
    source: Annotated[str | None, typer.Option(help=SOURCE_HELP)] = None
    word_prob: Annotated[str, typer.Option(help=WORD_PROB_HELP)] = "auto"
    keep_copies: Annotated[
        bool, typer.Option(help="Keep prompts whose answer shares a token with a word in the prompt.")
    ] = False

    def lens_task(self) -> LensTask:
        return check_choice(self.task, TASKS, "--task")

    def word_probability(self) -> WordProb:
        return check_choice(self.word_prob, WORD_PROBS, "--word-prob")

    def check_choices(self) -> None:
        self.lens_task()
        self.word_probability()

    def check_task(
        self, words: str, langs: list[str], *, extra: Sequence[str] = (), floor: float | None = None
    ) -> None:
        """The word list holds a column for ``langs``, ``extra`` and the source, the task can be
        built for ``langs`` (cloze data, a source other than the target) and the abstain floor is
        positive."""
        source = [check_languages(self.source, "--source")[0]] if self.source else []
        _check_data(words, [*langs, *extra, *source])
        check_request(self.task, langs, src=self.source, cloze=load_cloze(CLOZE) if self.task == "cloze" else None)
        if floor is not None and not floor > 0:
            raise TaskRequestError(f"--floor must be positive (got {floor}); the default is {EMPTY_FLOOR}")


@dataclass(frozen=True, kw_only=True)
class LensOptions(PromptOptions, LensOption):
    target: Annotated[str, typer.Option(help="Target language (ISO 639-1).")]
    shots: Annotated[int, typer.Option(help="Demonstrations per prompt (PROM: 5).")] = SHOTS
    words: Annotated[str, typer.Option(help="Wide CSV word list: concept, then one column per language.")] = str(
        CONCEPTS
    )
    latent: Annotated[str, typer.Option(help="Latent language whose word probability is tracked.")] = "en"

    def check(self) -> None:
        """Every option, before the model loads."""
        self.check_choices()
        target, latent = check_languages(self.target, "--target")[0], check_languages(self.latent, "--latent")[0]
        self.check_task(self.words, [target], extra=[latent])


@options(LensOptions)
def lens(ctx: typer.Context, opts: LensOptions) -> None:
    """Lens (logit by default) for one target language: tidy table (lens.csv/.parquet) and figure."""
    settings: Settings = ctx.obj
    opts.check()
    name = opts.lens_name()
    backend = settings.load_backend()
    table = run_languages(
        backend,
        [opts.target],
        task=opts.lens_task(),
        src=opts.source,
        latent=opts.latent,
        words=opts.words,
        word_prob=opts.word_probability(),
        shots=opts.shots,
        batch_size=settings.batch_size,
        store=ResultsStore(settings.results),
        drop_copies=not opts.keep_copies,
        lens=load_lens(backend, name),
    )
    results = analyse(table, n_layers=backend.n_layers)
    written = write_outputs(results, settings.out_dir, model=backend.model_name)
    _print_summary(results.summary, "pivot summary")
    typer.echo(f"wrote {len(written)} files to {settings.out_dir}")


@dataclass(frozen=True, kw_only=True)
class LambdaOptions(PromptOptions):
    langs: Annotated[str, typer.Option(help="Comma-separated target languages, or 'all' for every data language.")] = (
        "fr,de,ru,zh,ja,sw"
    )
    layer: Annotated[
        int | None, typer.Option(help="0-based layer n (default: three quarters of the depth, as PROM's 24 of 32).")
    ] = None
    lambda0: Annotated[float, typer.Option(help="lambda where the model pivots through English (PROM: 0.1).")] = 0.1
    shots: Annotated[int, typer.Option(help="Demonstrations per prompt (PROM footnote 3: 5-shot).")] = SHOTS
    floor: Annotated[
        float,
        typer.Option(
            help="Abstain floor: below it for both mean P(en) and mean P(target), the lens is empty and lambda "
            "undecided."
        ),
    ] = EMPTY_FLOOR
    words: Annotated[str, typer.Option(help="Wide CSV word list.")] = str(CONCEPTS)
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N prompts per language (a quick subset).")
    ] = None
    lens: Annotated[
        str,
        typer.Option(
            help="logit, linear, tuned, linear-en, a comma-separated list, or all (logit, linear, linear-en, tuned)."
        ),
    ] = "logit"

    def languages(self) -> list[str]:
        """The target languages (``all``: every language of the word list but English), checked
        with every other option that needs no model."""
        self.check_choices()
        codes = (
            [c for c in data_languages(self.words) if c != "en"] if self.langs == "all" else check_languages(self.langs)
        )
        self.check_task(self.words, codes, floor=self.floor)
        return codes

    def run_options(self, settings: Settings) -> LambdaRunOptions:
        """The keyword arguments of :func:`run_languages` these options and ``settings`` give."""
        return LambdaRunOptions(
            task=self.lens_task(),
            src=self.source,
            words=self.words,
            limit=self.limit,
            shots=self.shots,
            word_prob=self.word_probability(),
            drop_copies=not self.keep_copies,
            batch_size=settings.batch_size,
            store=ResultsStore(settings.results),
        )


class LambdaRunOptions(TypedDict):
    task: LensTask
    src: str | None
    words: str
    limit: int | None
    shots: int
    word_prob: WordProb
    drop_copies: bool
    batch_size: int
    store: ResultsStore


@options(LambdaOptions)
def lambda_(ctx: typer.Context, opts: LambdaOptions) -> None:
    """PROM's lambda per language, measured as PROM does (cloze, 5-shot): 0 where mean P(en) <
    mean P(target) at layer n, undecided where the lens is empty there; with the lens curves
    and figures. With several lenses: each lens' decision and whether they agree."""
    settings: Settings = ctx.obj
    codes = opts.languages()
    check_layer(opts.layer, model_depth(settings.model), settings.model)
    names = parse_lens_names(opts.lens, allow_all=True)
    backend = settings.load_backend()
    check_layer(opts.layer, backend.n_layers, settings.model)  # a hub model's depth is known only now
    if len(names) > 1:
        _lambda_under_lenses(backend, names, codes, settings, opts)
        return
    table = run_languages(backend, codes, lens=load_lens(backend, names[0]), **opts.run_options(settings))
    results = analyse(table, n_layers=backend.n_layers, layer=opts.layer, lambda0=opts.lambda0, floor=opts.floor)
    written = write_outputs(results, settings.out_dir, model=backend.model_name)
    for line in copy_costs(results.lambdas):
        typer.echo(line)
    view = results.lambdas.assign(verdict=results.lambdas.apply(verdict, axis=1))
    title = f"PROM lambda ({backend.model_name}; {opts.task}, {opts.shots}-shot; all columns in lambda.csv)"
    _print_summary(view[LAMBDA_VIEW], title)
    typer.echo(f"wrote {len(written)} files to {settings.out_dir}")


def _lambda_under_lenses(
    backend: Backend, names: list[str], codes: list[str], settings: Settings, opts: LambdaOptions
) -> None:
    from analyses.pipelines.lens_family import lambda_under_lenses, write_lambda_by_lens

    table, lambdas, agreement = lambda_under_lenses(
        backend,
        names,
        codes,
        layer=opts.layer,
        lambda0=opts.lambda0,
        floor=opts.floor,
        **opts.run_options(settings),
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
