"""Global CLI options shared by every command."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import typer


@dataclass(frozen=True)
class Settings:
    model: str
    backend: str
    device: str
    dtype: str
    batch_size: int
    out: str
    results: str | None

    @property
    def out_dir(self) -> Path:
        path = Path(self.out)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def load_backend(self, model: str | None = None):
        from probes.backend import load

        return load(model or self.model, backend=self.backend, device=self.device, dtype=self.dtype)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"pivotlens {metadata.version('pivotlens')}")
        raise typer.Exit()
