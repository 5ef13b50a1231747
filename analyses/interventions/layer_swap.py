"""Layer swapping and model soups as generated ``mergekit`` configurations.

Layer swapping (Bandarkar et al., ICLR 2025, Algorithm 1 with the line-5
correction): the task expert keeps its middle layers, the language expert gives its bottom
``b`` and top ``u`` layers, and transition zones of ``t_b`` and ``t_u`` layers between them take
the weighted average of both experts. For a model of ``L`` blocks, block ``l`` takes

* ``l < b`` or ``l > L-1-u``: the language expert;
* ``b+t_b ≤ l < L-u-t_u`` (the slide's line 5 with "and" for "or"): the task expert;
* otherwise (``b ≤ l < b+t_b`` or ``L-u-t_u ≤ l < L-u``):
  ``(w_task·θ_task + w_lang·θ_lang) / (w_task + w_lang)``.

Per-layer norms move with their layer. Tensors outside the blocks (token embeddings, final norm,
output head) follow ``non_layer``: ``average`` (the same weighted average; the paper found the
average better than either expert), ``task`` or ``lang``.

The tensor plumbing is mergekit's (lazy, tensor-by-tensor, GPU-capable): the swap becomes a
``merge_method: linear`` configuration with one slice per zone, both experts with their weights
in the transition slices. mergekit takes the embeddings from the first slice's models and the
final norm and head from the last slice's, so the other expert joins those slices with a
per-tensor weight filter (its non-layer weight on those tensors, 0 on the layer tensors).

Output: a model folder ``AutoModelForCausalLM.from_pretrained`` loads (config, safetensors,
tokenizer), mergekit's ``mergekit_config.yml`` in it (re-run with ``mergekit-yaml`` on other
hardware) and ``merge_record.json``: the configuration and, for every layer, its zone and the
share of each expert.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from probes.backend.checkpoint import Checkpoint, check_compatible, open_checkpoint
from probes.backend.errors import PivotlensError

NON_LAYER: tuple[str, ...] = ("average", "task", "lang")
RECORD = "merge_record.json"
MERGEKIT_YAML = "mergekit_config.yml"
PAPER_DEPTH = 32  # Llama 3.1 8B, where the paper's ranges were tried
PAPER_DEFAULT = {
    "bottom": 4,
    "top": 1,
    "transition_bottom": 1,
    "transition_top": 1,
}  # middle of b∈{3,4,5}, u∈{0,1,2}, t∈{0,1,2}


class SwapConfigError(PivotlensError, ValueError):
    """Swap parameters that do not describe zones inside the model."""


@dataclass(frozen=True)
class SwapConfig:
    """Algorithm 1's parameters: ``bottom`` (b) and ``top`` (u) layers from the language expert,
    ``transition_bottom`` (t_b) and ``transition_top`` (t_u) averaged layers, the experts'
    weights in the transitions, and what the non-layer tensors take."""

    bottom: int
    top: int
    transition_bottom: int = 0
    transition_top: int = 0
    w_task: float = 1.0
    w_lang: float = 1.0
    non_layer: str = "average"

    def check(self, n_layers: int) -> None:
        """One-line errors for negative counts, bad weights, and zones that overlap or exceed the depth."""
        counts = {
            "bottom": self.bottom,
            "top": self.top,
            "transition_bottom": self.transition_bottom,
            "transition_top": self.transition_top,
        }
        for name, value in counts.items():
            if not isinstance(value, int) or value < 0:
                raise SwapConfigError(f"{name} must be a whole number of layers >= 0, got {value!r}")
        if self.w_task < 0 or self.w_lang < 0 or self.w_task + self.w_lang <= 0:
            raise SwapConfigError(
                f"w_task and w_lang must be >= 0 with a positive sum, got {self.w_task} and {self.w_lang}"
            )
        if self.non_layer not in NON_LAYER:
            raise SwapConfigError(f"non_layer must be one of {', '.join(NON_LAYER)}, got {self.non_layer!r}")
        used = sum(counts.values())
        if used > n_layers:
            raise SwapConfigError(
                f"the zones overlap or exceed the depth: bottom {self.bottom} + transition_bottom "
                f"{self.transition_bottom} + transition_top {self.transition_top} + top {self.top} = {used} "
                f"> {n_layers} layers; lower them so that they sum to at most {n_layers}"
            )

    def layer_weights(self, zone: str) -> tuple[float, float]:
        """``(w_task, w_lang)`` of a zone's layer tensors."""
        return {"lang_bottom": (0.0, 1.0), "lang_top": (0.0, 1.0), "task": (1.0, 0.0)}.get(
            zone, (self.w_task, self.w_lang)
        )

    def non_layer_weights(self) -> tuple[float, float]:
        """``(w_task, w_lang)`` of the tensors outside the blocks."""
        return {"average": (self.w_task, self.w_lang), "task": (1.0, 0.0), "lang": (0.0, 1.0)}[self.non_layer]


@dataclass(frozen=True)
class Zone:
    """Consecutive blocks ``start <= l < end`` with the same origin."""

    name: str
    start: int
    end: int


def layer_zone(layer: int, n_layers: int, config: SwapConfig) -> str:
    """Algorithm 1 (line 5 corrected) for one block: ``lang_bottom``, ``transition_bottom``,
    ``task``, ``transition_top`` or ``lang_top``."""
    b, u, tb, tu = config.bottom, config.top, config.transition_bottom, config.transition_top
    if layer < b:
        return "lang_bottom"
    if layer > n_layers - 1 - u:
        return "lang_top"
    if b - 1 + tb < layer < n_layers - u - tu:
        return "task"
    return "transition_bottom" if layer < b + tb else "transition_top"


def zones(n_layers: int, config: SwapConfig) -> list[Zone]:
    """The non-empty zones in block order (validated)."""
    config.check(n_layers)
    out: list[Zone] = []
    for layer in range(n_layers):
        name = layer_zone(layer, n_layers, config)
        if out and out[-1].name == name:
            out[-1] = Zone(name, out[-1].start, layer + 1)
        else:
            out.append(Zone(name, layer, layer + 1))
    return out


def depth_scaled(n_layers: int, **paper_values: int) -> SwapConfig:
    """The paper's configuration for L = 32 scaled to ``n_layers`` (each count times L/32, rounded
    half up): by default its middle values b = 4, u = 1, t_b = t_u = 1."""
    values = {**PAPER_DEFAULT, **paper_values}
    scaled: dict[str, Any] = {k: int(v * n_layers / PAPER_DEPTH + 0.5) for k, v in values.items()}
    return SwapConfig(**scaled)


def _weight(layer_value: float, non_layer_value: float | None, names: Sequence[str]) -> float | list[dict]:
    """A mergekit weight: ``layer_value`` everywhere, or ``non_layer_value`` on the named tensors."""
    if non_layer_value is None or not names:
        return layer_value
    return [{"filter": name, "value": non_layer_value} for name in names] + [{"value": layer_value}]


def _check_filters(ckpt: Checkpoint) -> list[str]:
    """Non-layer tensor names, each usable as a mergekit filter (a substring match) that hits no
    layer tensor."""
    names = ckpt.non_layer_names()
    for name in names:
        clash = next((t for t in ckpt.shapes if t != name and name in t), None)
        if clash is not None:
            raise PivotlensError(f"cannot address {name} alone with a mergekit filter: it is part of {clash}")
    return names


def swap_merge_config(
    task: str, lang: str, n_layers: int, config: SwapConfig, non_layer_names: Sequence[str], *, dtype: str | None = None
) -> dict:
    """The mergekit configuration (a dict, mergekit's YAML schema) of a layer swap."""
    plan = zones(n_layers, config)
    nl_task, nl_lang = config.non_layer_weights()
    slices = []
    for i, zone in enumerate(plan):
        w_task, w_lang = config.layer_weights(zone.name)
        # mergekit reads the embeddings from the first slice's models and the final norm and head
        # from the last slice's (pairing them with the first slice's sources): both experts join
        # those slices, so both edge slices list the same two models
        edge = i == 0 or i == len(plan) - 1
        sources = []
        for model, layer_w, non_layer_w in ((task, w_task, nl_task), (lang, w_lang, nl_lang)):
            if layer_w == 0 and not edge:
                continue
            weight = _weight(layer_w, non_layer_w if edge else None, non_layer_names)
            sources.append({"model": model, "layer_range": [zone.start, zone.end], "parameters": {"weight": weight}})
        slices.append({"sources": sources})
    merge = {"merge_method": "linear", "slices": slices, "parameters": {"normalize": True}}
    return merge | ({"dtype": dtype} if dtype else {})


def soup_merge_config(models: Sequence[str], weights: Sequence[float], *, dtype: str | None = None) -> dict:
    """The mergekit configuration of a weighted average of whole checkpoints (a model soup)."""
    merge = {
        "merge_method": "linear",
        "models": [{"model": m, "parameters": {"weight": float(w)}} for m, w in zip(models, weights)],
        "parameters": {"normalize": True},
    }
    return merge | ({"dtype": dtype} if dtype else {})


def _prepare_out(out: Path) -> Path:
    if out.exists() and not (out / RECORD).is_file() and any(out.iterdir()):
        raise PivotlensError(
            f"{out} exists and is not a merge output (no {RECORD}); choose an empty or new --out folder"
        )
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def run_mergekit(
    merge: dict, out: str | Path, record: dict, *, shard_bytes: int, device: str = "cpu", progress: bool = True
) -> Path:
    """Run a mergekit configuration through its Python API into ``out`` (written to a temporary
    folder, then renamed), with ``record`` as ``merge_record.json``. Output shards hold at most
    ``shard_bytes`` (the largest input tensor), which bounds the writer's buffer."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    out = Path(out)
    tmp = _prepare_out(out)
    configuration = MergeConfiguration.model_validate(merge)
    options = MergeOptions(
        out_shard_size=max(1, shard_bytes),
        copy_tokenizer=True,
        device=device,
        quiet=not progress,
        write_model_card=True,
        safe_serialization=True,
    )
    logging.getLogger("mergekit").setLevel(logging.WARNING)
    try:
        run_merge(configuration, str(tmp), options, config_source=configuration.to_yaml())
        full = record | {"mergekit": metadata.version("mergekit"), "mergekit_yaml": MERGEKIT_YAML}
        (tmp / RECORD).write_text(json.dumps(full, indent=2, default=str))
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _describe(ckpt: Checkpoint) -> dict:
    return {
        "name": ckpt.name,
        "folder": str(ckpt.folder),
        "weights_hash": ckpt.fingerprint,
        "architecture": ckpt.architecture,
    }


def swap(
    task_expert: str | Path,
    lang_expert: str | Path,
    out: str | Path,
    config: SwapConfig,
    *,
    dtype: str | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Merge ``task_expert`` and ``lang_expert`` (any models the loader takes, fine-tuned from the
    same base) by layer swapping into the folder ``out``; returns ``out``."""
    task, lang = open_checkpoint(task_expert), open_checkpoint(lang_expert)
    check_compatible([task, lang], "the task and language experts")
    n_layers = task.n_layers
    plan = zones(n_layers, config)
    names = _check_filters(task)
    merge = swap_merge_config(str(task.folder), str(lang.folder), n_layers, config, names, dtype=dtype)
    layers = []
    for zone in plan:
        w_task, w_lang = config.layer_weights(zone.name)
        for layer in range(zone.start, zone.end):
            layers.append(
                {
                    "layer": layer,
                    "zone": zone.name,
                    "share_task": w_task / (w_task + w_lang),
                    "share_lang": w_lang / (w_task + w_lang),
                }
            )
    nl_task, nl_lang = config.non_layer_weights()
    record = {
        "method": "layer_swap",
        "paper": "Bandarkar et al., ICLR 2025, Algorithm 1 (line 5: 'and')",
        "task_expert": _describe(task),
        "lang_expert": _describe(lang),
        "config": asdict(config),
        "n_layers": n_layers,
        "zones": [asdict(z) for z in plan],
        "layers": layers,
        "non_layer": {
            "tensors": names,
            "share_task": nl_task / (nl_task + nl_lang),
            "share_lang": nl_lang / (nl_task + nl_lang),
        },
    }
    return run_mergekit(merge, out, record, shard_bytes=task.largest_tensor_bytes(), device=device, progress=progress)


def soup(
    models: Sequence[str | Path],
    out: str | Path,
    weights: Sequence[float] | None = None,
    *,
    dtype: str | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Weighted average of two or more checkpoints (equal weights by default) into ``out``."""
    if len(models) < 2:
        raise PivotlensError(f"a soup needs at least two checkpoints, got {len(models)}")
    weights = [1.0] * len(models) if weights is None else [float(w) for w in weights]
    if len(weights) != len(models):
        raise PivotlensError(f"{len(weights)} weights for {len(models)} checkpoints; give one weight per checkpoint")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise PivotlensError(f"soup weights must be >= 0 with a positive sum, got {weights}")
    ckpts = [open_checkpoint(m) for m in models]
    check_compatible(ckpts, "the soup's checkpoints")
    merge = soup_merge_config([str(c.folder) for c in ckpts], weights, dtype=dtype)
    total = sum(weights)
    record = {
        "method": "soup",
        "models": [_describe(c) | {"share": w / total} for c, w in zip(ckpts, weights)],
        "n_layers": ckpts[0].n_layers,
        "layers": [
            {"layer": layer, "zone": "soup", **{f"share_{i}": w / total for i, w in enumerate(weights)}}
            for layer in range(ckpts[0].n_layers)
        ],
    }
    return run_mergekit(
        merge, out, record, shard_bytes=max(c.largest_tensor_bytes() for c in ckpts), device=device, progress=progress
    )
