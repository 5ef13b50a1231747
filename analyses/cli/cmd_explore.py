"""``pivotlens explore``: one prompt through a lens, as a standalone HTML page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from analyses.cli.options import options
from analyses.cli.settings import Settings
from analyses.figures.explore import COLORS
from analyses.pipelines.explore import available_lenses, check_request, explore
from probes.backend.languages import get_language


@dataclass(frozen=True, kw_only=True)
class ExploreOptions:
    prompt: Annotated[str, typer.Option(help="The text whose layers you want to see.")]
    target: Annotated[
        str | None, typer.Option(help="A word whose probability is tracked per layer (e.g. the expected answer).")
    ] = None
    latent: Annotated[str, typer.Option(help="Latent language: its word for the target's concept is tracked too.")] = (
        "en"
    )
    latent_word: Annotated[
        str | None, typer.Option(help="The latent word itself (default: looked up in the word list).")
    ] = None
    lens: Annotated[str, typer.Option(help=f"Lens: {', '.join(available_lenses())}.")] = "logit"
    color: Annotated[
        str, typer.Option(help=f"Cell colour: {', '.join(COLORS)} (top-1 probability, entropy, language).")
    ] = "prob"
    top_k: Annotated[int, typer.Option(min=1, help="Tokens shown when hovering a cell.")] = 5

    def check(self) -> None:
        """The prompt, lens, colour and latent language, before the model loads."""
        check_request(self.prompt, self.lens, self.color)
        get_language(self.latent)


@options(ExploreOptions)
def explore_command(ctx: typer.Context, opts: ExploreOptions) -> None:
    """What every layer would predict at every position of PROMPT: a standalone page, explore.html in
    --out (plotly inlined: works offline)."""
    opts.check()
    settings: Settings = ctx.obj
    found = explore(
        settings.load_backend(),
        opts.prompt,
        lens=opts.lens,
        color=opts.color,
        top_k=opts.top_k,
        target=opts.target,
        latent=opts.latent,
        latent_word=opts.latent_word,
    )
    typer.echo(
        f"wrote {found.write_html(settings.out_dir / 'explore.html')} ({found.table['position'].nunique()} positions x "
        f"{found.table['layer'].nunique()} layers)"
    )


def register(app: typer.Typer) -> None:
    app.command("explore")(explore_command)
