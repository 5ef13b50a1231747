"""``pivotlens explore``: one prompt through a lens, as a standalone HTML page."""

from __future__ import annotations

import typer

from analyses.cli.settings import Settings
from analyses.figures.explore import COLORS
from analyses.pipelines.explore import available_lenses, check_request, explore
from probes.backend.languages import get_language


def explore_command(
    ctx: typer.Context,
    prompt: str = typer.Option(..., help="The text whose layers you want to see."),
    target: str = typer.Option(None, help="A word whose probability is tracked per layer (e.g. the expected answer)."),
    latent: str = typer.Option("en", help="Latent language: its word for the target's concept is tracked too."),
    latent_word: str = typer.Option(None, help="The latent word itself (default: looked up in the word list)."),
    lens: str = typer.Option("logit", help=f"Lens: {', '.join(available_lenses())}."),
    color: str = typer.Option("prob", help=f"Cell colour: {', '.join(COLORS)} (top-1 probability, entropy, language)."),
    top_k: int = typer.Option(5, min=1, help="Tokens shown when hovering a cell."),
) -> None:
    """What every layer would predict at every position of PROMPT: a standalone page, explore.html in
    --out (plotly inlined: works offline)."""
    check_request(prompt, lens, color)  # before the model loads
    get_language(latent)
    settings: Settings = ctx.obj
    found = explore(
        settings.load_backend(),
        prompt,
        lens=lens,
        color=color,
        top_k=top_k,
        target=target,
        latent=latent,
        latent_word=latent_word,
    )
    typer.echo(
        f"wrote {found.write_html(settings.out_dir / 'explore.html')} ({found.table['position'].nunique()} positions x "
        f"{found.table['layer'].nunique()} layers)"
    )


def register(app: typer.Typer) -> None:
    app.command("explore")(explore_command)
