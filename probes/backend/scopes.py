"""Where each parameter of a model sits (its block and module), and gradients for a chosen few.

Probes that work on parameters (Taylor importance, gradient interference, linguistic regions)
ask these questions under Hugging Face parameter names; the answers come from the model's
module tree, not from parsing names: a parameter's ``layer`` is the index of the block whose
``named_parameters()`` hold it (:class:`probes.backend.architecture.ModelParts` finds the blocks),
its ``module`` the path of the module that owns it. Outside the blocks, the final norm and the
unembedding are the modules :class:`ModelParts` located, and an embedding is any
``torch.nn.Embedding`` (token and position embeddings alike).

``group`` names the module the way the interference tables report it (PROM, Lee et al., Fig. 2;
docs/methods/prom.md): the usual projections by a short name (``q, k, v, o, gate, up, down``),
every normalisation inside a block as ``norms``, other block modules by their path (fused
``attn.c_attn`` or ``self_attn.qkv_proj`` keep theirs); outside the blocks ``embed``,
``final_norm``, ``head``, or the module's path.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from probes.backend.architecture import ModelParts

PROJECTIONS = {
    "q_proj": "q",
    "k_proj": "k",
    "v_proj": "v",
    "o_proj": "o",
    "gate_proj": "gate",
    "up_proj": "up",
    "down_proj": "down",
}


@dataclass(frozen=True)
class ParameterScope:
    """Where one parameter sits.

    ``layer``: 0-based block index, ``None`` outside the blocks. ``module``: the owning module's
    path inside its block (``self_attn.q_proj``, ``input_layernorm``), or its full path outside
    the blocks (``model.embed_tokens``). ``group``: see the module docstring. ``tensor``: the
    parameter's own name in its module (``weight``, ``bias``)."""

    name: str
    layer: int | None
    module: str
    group: str
    tensor: str
    numel: int
    ndim: int

    @property
    def block_index(self) -> int:
        """``layer``, or -1 outside the blocks (as the importance and region tables write it)."""
        return -1 if self.layer is None else self.layer

    @property
    def role(self) -> str:
        """``module``, with the tensor's own name added unless it is the ``weight``
        (``mlp.down_proj``, ``self_attn.q_proj.bias``): one label per tensor of a block."""
        return self.module if self.tensor == "weight" else f"{self.module}.{self.tensor}"


def _is_norm(module: torch.nn.Module) -> bool:
    return "norm" in type(module).__name__.lower()


def _owner(path: str) -> tuple[str, str]:
    """``a.b.weight`` -> ``("a.b", "weight")``: the module path and the tensor's own name."""
    owner, _, tensor = path.rpartition(".")
    return owner, tensor


def _block_group(module_path: str, module: torch.nn.Module) -> str:
    leaf = module_path.rpartition(".")[2]
    if leaf in PROJECTIONS:
        return PROJECTIONS[leaf]
    return "norms" if _is_norm(module) else module_path


def _outer_group(model: torch.nn.Module, parts: ModelParts, owner: str, module: torch.nn.Module) -> str:
    if module is parts.final_norm(model):
        return "final_norm"
    if module is parts.head(model):
        return "head"
    return "embed" if isinstance(module, torch.nn.Embedding) else owner


def parameter_scopes(model: torch.nn.Module, parts: ModelParts) -> dict[str, ParameterScope]:
    """The scope of every parameter of ``model`` under its Hugging Face name, in parameter order."""
    in_blocks: dict[int, tuple[int, torch.nn.Module, str]] = {}
    for layer, block in enumerate(parts.block_list(model)):
        for path, param in block.named_parameters():
            owner, _ = _owner(path)
            in_blocks.setdefault(id(param), (layer, block.get_submodule(owner), path))
    scopes = {}
    for name, param in model.named_parameters():
        if id(param) in in_blocks:
            layer, module, path = in_blocks[id(param)]
            owner, tensor = _owner(path)
            group = _block_group(owner, module)
        else:
            layer = None
            owner, tensor = _owner(name)
            group = _outer_group(model, parts, owner, model.get_submodule(owner))
        scopes[name] = ParameterScope(name, layer, owner, group, tensor, param.numel(), param.dim())
    return scopes


def _unknown(names: Collection[str], params: Mapping[str, torch.nn.Parameter]) -> KeyError:
    return KeyError(f"unknown parameters {sorted(names)[:3]}; use Hugging Face names such as {next(iter(params))!r}")


@contextmanager
def frozen_except(params: Mapping[str, torch.nn.Parameter], names: Collection[str]) -> Iterator[None]:
    """Inside, exactly the parameters ``names`` require gradients (autograd then computes no
    gradient that only the others need); on exit every ``requires_grad`` is what it was, even
    after an error."""
    unknown = set(names) - set(params)
    if unknown:
        raise _unknown(unknown, params)
    wanted = set(names)
    flags = {name: param.requires_grad for name, param in params.items()}
    try:
        for name, param in params.items():
            param.requires_grad_(name in wanted)
        yield
    finally:
        for name, param in params.items():
            param.requires_grad_(flags[name])
