"""Floor 2: probes (model + data -> tidy DataFrame). Each probe is one module, registered by name."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the checker sees the names the lazy import below provides
    from probes.registry import PROBES, ProbeSpec, register_probe

__all__ = ["PROBES", "ProbeSpec", "register_probe"]


def __getattr__(name: str):
    """The registry, imported on first use, so ``probes.backend.errors`` stays light."""
    if name in __all__:
        from probes import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
