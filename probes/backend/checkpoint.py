"""A checkpoint on disk, read tensor by tensor: its config and its safetensors files.

Weight-change maps and merges never load a whole model: they open the safetensors files lazily
(``safe_open``) and read one tensor at a time, so memory stays at a few tensors. Any model the
loader takes is accepted (:func:`probes.backend.models.resolve_model`): an embedded name, a local
folder written by ``save_pretrained``, or a Hugging Face id (its ``*.safetensors`` and
``*.json`` files are fetched into the Hugging Face cache).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open

from probes.backend.errors import ModelNotFoundError, PivotlensError
from probes.backend.models import resolve_model, weights_fingerprint

# the block index of a per-layer tensor: model.layers.N. (Llama, Gemma, Qwen, Mistral, ...),
# transformer.h.N. (GPT-2), layers.N. (Meta's original Llama names), gpt_neox.layers.N.
LAYER_INDEX = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\.")


class CheckpointMismatchError(PivotlensError, ValueError):
    """Two checkpoints that cannot be compared or merged (architecture, depth or shapes differ)."""


def layer_of(name: str) -> int | None:
    """Block index of a tensor name, ``None`` for tensors outside the blocks (embeddings, final
    norm, head)."""
    match = LAYER_INDEX.search(name)
    return int(match.group(1)) if match else None


@dataclass
class Checkpoint:
    """``name`` (display), ``folder`` (local), ``config`` (config.json), ``files`` (tensor name ->
    safetensors file) and ``shapes`` (tensor name -> shape, read from the file headers)."""

    name: str
    folder: Path
    config: dict
    files: dict[str, Path]
    shapes: dict[str, tuple[int, ...]] = field(repr=False)

    @property
    def architecture(self) -> str:
        archs = self.config.get("architectures") or [self.config.get("model_type", "unknown")]
        return str(archs[0])

    @property
    def n_layers(self) -> int:
        layers = {layer for n in self.shapes if (layer := layer_of(n)) is not None}
        if "num_hidden_layers" in self.config:
            return int(self.config["num_hidden_layers"])
        if not layers:
            raise PivotlensError(f"{self.name}: no per-layer tensors found; is this a decoder checkpoint?")
        return max(layers) + 1

    @property
    def fingerprint(self) -> str:
        return weights_fingerprint(str(self.folder))

    def non_layer_names(self) -> list[str]:
        """Tensors outside the blocks (token embeddings, final norm, output head), in file order."""
        return [n for n in self.shapes if layer_of(n) is None]

    def largest_tensor_bytes(self) -> int:
        with self.reader() as read:
            return max(read.nbytes(n) for n in self.shapes)

    @contextmanager
    def reader(self) -> Iterator[TensorReader]:
        """Open every safetensors file lazily; ``read(name)`` loads one tensor."""
        with ExitStack() as stack:
            handles = {f: stack.enter_context(safe_open(str(f), framework="pt")) for f in set(self.files.values())}
            yield TensorReader(self.files, handles)


class TensorReader:
    def __init__(self, files: dict[str, Path], handles: dict) -> None:
        self._files, self._handles = files, handles

    def __call__(self, name: str) -> torch.Tensor:
        return self._handles[self._files[name]].get_tensor(name)

    def nbytes(self, name: str) -> int:
        piece = self._handles[self._files[name]].get_slice(name)
        size = 1
        for dim in piece.get_shape():
            size *= int(dim)
        return size * _DTYPE_BYTES.get(piece.get_dtype(), 4)


_DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _local_folder(source: str) -> Path:
    folder = Path(source)
    if folder.is_dir():
        return folder
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(source, allow_patterns=["*.safetensors", "*.json", "*.model", "*.txt", "*.jinja"])
        )
    except Exception as exc:  # network, gated repo, unknown id: one line naming the id
        raise ModelNotFoundError(
            f"{source!r} is no local folder and could not be fetched from the Hugging Face hub "
            f"({exc.__class__.__name__}); check the path or id (and that you are online)"
        ) from exc


def _weight_files(folder: Path) -> dict[str, Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = {name: folder / file for name, file in weight_map.items()}
        missing = sorted({str(f.name) for f in files.values() if not f.is_file()})
        if missing:
            raise ModelNotFoundError(f"{folder}: {index.name} lists {missing[0]}, which is missing; re-save the model")
        return files
    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        other = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt"))
        hint = f" (found {other[0]}: re-save with save_pretrained(safe_serialization=True))" if other else ""
        raise ModelNotFoundError(f"{folder} has no *.safetensors weight files{hint}")
    files: dict[str, Path] = {}
    for shard in shards:
        with safe_open(str(shard), framework="pt") as handle:
            files.update({name: shard for name in handle.keys()})  # noqa: SIM118 (safe_open has no __iter__)
    return files


def open_checkpoint(spec: str | Path) -> Checkpoint:
    """Resolve ``spec`` like the loader does and read its config and tensor headers (no weights)."""
    name, source = resolve_model(spec)
    folder = _local_folder(source)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelNotFoundError(f"{folder} has no config.json; point at a folder written by save_pretrained")
    files = _weight_files(folder)
    shapes: dict[str, tuple[int, ...]] = {}
    for shard in sorted(set(files.values())):
        with safe_open(str(shard), framework="pt") as handle:
            for tensor in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                if tensor in files:
                    shapes[tensor] = tuple(int(d) for d in handle.get_slice(tensor).get_shape())
    return Checkpoint(name, folder.resolve(), json.loads(config_path.read_text()), files, shapes)


def check_compatible(checkpoints: list[Checkpoint], what: str = "checkpoints", *, distinct: bool = True) -> None:
    """Same architecture, depth, tensor names and shapes (and, with ``distinct``, different
    folders), else one line naming the first difference."""
    first = checkpoints[0]
    for other in checkpoints[1:]:
        if distinct and other.folder == first.folder:
            raise CheckpointMismatchError(
                f"{what}: {first.name} is given twice ({first.folder}); pass different checkpoints"
            )
        if other.architecture != first.architecture:
            raise CheckpointMismatchError(
                f"{what} have different architectures: {first.name} is {first.architecture}, "
                f"{other.name} is {other.architecture}; both must be fine-tuned from the same base"
            )
        if other.n_layers != first.n_layers:
            raise CheckpointMismatchError(
                f"{what} have different depths: {first.name} has {first.n_layers} layers, {other.name} has "
                f"{other.n_layers}"
            )
        only_first = sorted(set(first.shapes) - set(other.shapes))
        only_other = sorted(set(other.shapes) - set(first.shapes))
        if only_first or only_other:
            name, owner = (only_first[0], first.name) if only_first else (only_other[0], other.name)
            raise CheckpointMismatchError(f"{what} have different tensors: {name} is only in {owner}")
        for tensor, shape in first.shapes.items():
            if other.shapes[tensor] != shape:
                raise CheckpointMismatchError(
                    f"{what} have different shapes: {tensor} is {list(shape)} in {first.name} "
                    f"but {list(other.shapes[tensor])} in {other.name}"
                )
