"""Command options from a dataclass, and one ``--out`` rule for every command."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import typer
import typer.main
from typer.testing import CliRunner

from analyses.cli import _command_index, _LazyCommands, _own_commands, app
from analyses.cli.options import option_parameters, options


@dataclass(frozen=True, kw_only=True)
class Shared:
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = 300
    layer: Annotated[int | None, typer.Option(help="Read-out layer.")] = None


@dataclass(frozen=True, kw_only=True)
class Extended(Shared):
    lang: Annotated[str, typer.Option(help="Target language.")]  # no default: required
    resume: Annotated[bool, typer.Option(help="Resume.")] = True
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = 7  # a command's own default


def _settings_callback(ctx: typer.Context) -> None:
    ctx.obj = "settings"


def _app(seen: list) -> typer.Typer:
    @options(Extended)
    def command(ctx: typer.Context, opts: Extended) -> None:
        """Train something."""
        seen.append((ctx.obj, opts))

    commands = typer.Typer()
    commands.callback()(_settings_callback)
    commands.command("train")(command)
    return commands


def test_fields_become_options_and_the_command_gets_the_dataclass():
    seen: list = []
    result = CliRunner().invoke(_app(seen), ["train", "--lang", "sw", "--layer", "3", "--no-resume"])
    assert result.exit_code == 0, result.output
    assert seen == [("settings", Extended(steps=7, layer=3, lang="sw", resume=False))]


def test_help_defaults_and_checks_come_from_the_fields():
    seen: list = []
    help_text = CliRunner().invoke(_app(seen), ["train", "--help"], terminal_width=200).output
    assert "Train something." in help_text and "Read-out layer." in help_text and "[default: 7]" in help_text
    assert "--resume" in help_text and "--no-resume" in help_text and "--train-batch" not in help_text
    missing = CliRunner().invoke(_app(seen), ["train"])
    assert missing.exit_code == 2 and "--lang" in missing.output and not seen
    too_few = CliRunner().invoke(_app(seen), ["train", "--lang", "sw", "--steps", "0"])
    assert too_few.exit_code == 2 and "--steps" in too_few.output and not seen


def test_no_command_has_an_out_of_its_own():
    """The global --out is the one output folder: no command declares its own."""
    group = typer.main.get_group(app)
    assert isinstance(group, _LazyCommands)
    own = {
        name: [p.name for p in command.params if p.name == "out" or "--out" in getattr(p, "opts", [])]
        for name in _command_index()
        if (command := group.get_command(typer.Context(group), name)) is not None
    }
    assert len(own) == len(_command_index()) > 20
    assert {name: params for name, params in own.items() if params} == {}


def test_finetune_and_prom_fig3_share_one_declaration_of_their_training_options():
    from analyses.cli.cmd_finetune import Fig3Options, FinetuneOptions, TrainingOptions

    assert issubclass(FinetuneOptions, TrainingOptions) and issubclass(Fig3Options, TrainingOptions)
    assert Fig3Options().max_length == 128 and FinetuneOptions().max_length == 256
    config = FinetuneOptions(lora_r=4, layer=2).finetune_config(_settings())
    assert (config.lora_r, config.lora_alpha, config.pivot.layer, config.max_steps) == (4, 8, 2, 300)


def _settings():
    from analyses.cli.settings import Settings

    return Settings("m", "nnsight", "cpu", "float32", 1, "out", None)


def test_interference_options_give_the_setups_the_keyword_arguments_gave():
    """The options' defaults are :class:`InterferenceSetup`'s, so a run stored before the options
    became a dataclass keeps its key; ``interference-fig2`` fixes the gradient comparison."""
    from analyses.cli.cmd_interference import Fig2Options, InterferenceOptions
    from analyses.interventions.pivoted_loss import PivotedObjective
    from analyses.pipelines.interference import InterferenceSetup

    assert InterferenceOptions().setup(_settings()) == InterferenceSetup(batch_size=1)
    assert InterferenceOptions().pivoted_objective() == PivotedObjective()
    chosen = InterferenceOptions(
        batches=3,
        split="train",
        params="blocks",
        max_length=64,
        seed=2,
        objective="pivoted",
        pairing="parallel",
        reduction="sequence_mean",
        fp32=False,
        aggregation="mean",
    )
    assert chosen.setup(_settings()) == InterferenceSetup(
        k=3,
        batch_size=1,
        split="train",
        params="blocks",
        max_length=64,
        seed=2,
        objective="pivoted",
        pairing="parallel",
        reduction="sequence_mean",
        fp32=False,
        aggregation="mean",
    )
    fig2 = Fig2Options(batches=6, max_length=128, split="train", params="blocks")
    assert fig2.setup(_settings()) == InterferenceSetup(
        k=6, batch_size=1, max_length=128, split="train", params="blocks"
    )
    assert (fig2.pivot, fig2.targets, InterferenceOptions().langs) == ("en", "sw", "en,sw")


def _own_registered_commands() -> dict[str, Callable[..., object]]:
    """``name -> callback`` of every command of this package's ``cmd_*.py`` modules, as each
    module's ``register`` hands it to typer."""
    callbacks: dict[str, Callable[..., object]] = {}
    for module in sorted({module for module, _ in _own_commands().values()}):
        commands = typer.Typer()
        importlib.import_module(module).register(commands)
        callbacks |= {info.name: info.callback for info in commands.registered_commands if info.name and info.callback}
    return callbacks


def _declares_options_inline(callback: Callable[..., object]) -> bool:
    """Whether a command's parameters are anything but nothing, the context alone, or the context
    and the fields of the options dataclass its function takes (the signature :func:`options`
    builds)."""
    parameters = list(inspect.signature(callback).parameters.values())
    hints = typing.get_type_hints(callback)
    if not parameters or (len(parameters) == 1 and hints.get(parameters[0].name) is typer.Context):
        return False
    command = inspect.unwrap(callback)
    names = list(inspect.signature(command).parameters)
    declared = typing.get_type_hints(command)
    if len(names) != 2 or declared.get(names[0]) is not typer.Context:
        return True
    options_class = declared[names[1]]
    if not (isinstance(options_class, type) and dataclasses.is_dataclass(options_class)):
        return True
    fields = [(p.name, p.default) for p in option_parameters(options_class)]  # annotations: evaluated anew each time
    return [(p.name, p.default) for p in parameters[1:]] != fields


def test_every_command_takes_its_options_from_an_options_dataclass():
    """The rule of ``analyses/cli/options.py`` holds for every command: no option declared inline."""
    callbacks = _own_registered_commands()
    assert set(callbacks) == set(_own_commands()) and len(callbacks) > 25
    assert [name for name, callback in callbacks.items() if _declares_options_inline(callback)] == []


def _inline(ctx: typer.Context, steps: int = typer.Option(3, help="Steps.")) -> None:
    """A command written the old way."""


def _inline_without_context(steps: int = typer.Option(3, help="Steps.")) -> None:
    """A command written the old way, without the context."""


def _no_options() -> None:
    """A command without options."""


def test_the_rule_catches_options_declared_inline():
    @options(Extended)
    def command(ctx: typer.Context, opts: Extended) -> None:
        """Train something."""

    assert not _declares_options_inline(command) and not _declares_options_inline(_no_options)
    assert _declares_options_inline(_inline) and _declares_options_inline(_inline_without_context)
