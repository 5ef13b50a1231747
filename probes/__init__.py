"""Floor 2: probes (model + data -> tidy DataFrame). Each probe is one module, registered by name."""

from probes.registry import PROBES, ProbeSpec, get_probe, register_probe

__all__ = ["PROBES", "ProbeSpec", "get_probe", "register_probe"]
