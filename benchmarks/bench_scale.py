"""Scale by simulation: the probes' memory and time on a Llama-2-shaped model with random weights.

Builds a Llama-2-7B-shaped model from its config (hidden 4096, 32 layers, 32 heads,
intermediate 11008, vocabulary 32000; no download) with random bfloat16 weights, wraps it the way
:func:`probes.backend.wrap` wraps any in-memory model, and measures on it

* the logit lens over every layer (and over the first quarter: 8 of 32) for 1, 4 and 16 prompts of 32 tokens;
* one gradient-cosine pair of the interference probe (``run_interference``) on two batches of 4
  prompts, restricted as the probe restricts it (``params="matrices"``, ``layers`` = the last
  blocks): only those blocks' matrices get gradients, so the backward pass stops there;
* 20 generated tokens with per-step statistics (``Backend.generate``).

Each measurement records the process's peak resident memory beyond what it held before the call
(a thread samples the RSS every 20 ms) and the wall time. The prompts are random token ids; the
tokenizer is a word-level one with one token per id of the model's vocabulary (nothing trained,
nothing downloaded). ``--table-only`` prints the projected table of ``docs/scale.md`` (weights,
activations and kept tensors, and time per probe for Llama-2 7B, 13B and 70B from
:mod:`analyses.stats.flops`) without building any model.

Usage: OMP_NUM_THREADS=2 python benchmarks/bench_scale.py [--shape small|7b] [--backend B] [--out F]
       python benchmarks/bench_scale.py --table-only
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import inspect
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch
from rich.console import Console
from rich.table import Table

from analyses.stats.flops import DecoderShape
from probes.backend import Backend, BackendName, wrap
from probes.backend.base import LensRequest, readout_layers
from probes.interference import Batch, BatchPair, run_interference

GIB = 1024**3
# Llama-2's released shapes (hidden, layers, heads, key-value heads, MLP width); all have a
# vocabulary of 32000 and 4096 positions. 70B uses grouped-query attention (8 key-value heads).
LLAMA2 = {
    "7B": (4096, 32, 32, 32, 11008),
    "13B": (5120, 40, 40, 40, 13824),
    "70B": (8192, 80, 64, 8, 28672),
}
# --shape small runs the same code path in seconds (development and the test)
SHAPES = {"7b": LLAMA2["7B"], "small": (512, 4, 8, 8, 1376)}
VOCAB, POSITIONS = 32000, 4096
NEEDED_FOR_7B = 15.5 * GIB  # 13.5 GB of weights and room for the probes
PROMPT_TOKENS = 32


def llama2_config(hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int):
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=intermediate,
        vocab_size=VOCAB,
        max_position_embeddings=POSITIONS,
        rms_norm_eps=1e-5,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )


def word_tokenizer(vocab: int):
    """A word-level tokenizer with ``vocab`` tokens (``<pad>``, ``<bos>``, ``<eos>``, then
    ``w3`` ...): one token per id of the model, built instantly; the prompts are token ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {"<pad>": 0, "<bos>": 1, "<eos>": 2} | {f"w{i}": i for i in range(3, vocab)}
    tok = Tokenizer(models.WordLevel(words, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>")


def random_backend(shape: str, backend: BackendName = "transformer-lens") -> Backend:
    """The ``shape`` Llama-2 model with random bfloat16 weights behind ``backend``. The weights are
    drawn in bfloat16 directly (``from_config(dtype=...)`` initialises under that default dtype),
    so no float32 copy (27 GB for 7B) ever exists."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = llama2_config(*SHAPES[shape])
    # eager attention, as probes.backend.load loads every model
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="eager").eval()
    return wrap(model, word_tokenizer(VOCAB), backend=backend, model_name=f"llama-2-{shape}-random", source="config")


def _release_freed_memory() -> None:
    """Collect garbage and hand freed heap pages back to the system (glibc ``malloc_trim``), so
    that the RSS before a call is not padded with pages a previous call freed."""
    gc.collect()
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakRSS:
    """``with PeakRSS() as peak: ...``: ``peak.beyond`` is the highest resident memory of this
    process during the block minus its resident memory on entry (sampled every ``interval`` s)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.process = interval, psutil.Process()
        self.start = self.peak = 0
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(self.interval):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        _release_freed_memory()
        self.start = self.peak = self.process.memory_info().rss
        self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._sampler.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def beyond(self) -> int:
        return self.peak - self.start


@dataclass(frozen=True)
class Measurement:
    probe: str
    setting: str
    peak_beyond_bytes: int
    wall_s: float


def measure(probe: str, setting: str, call: Callable[[], object]) -> Measurement:
    with PeakRSS() as peak:
        start = time.perf_counter()
        call()
        wall = time.perf_counter() - start
    return Measurement(probe, setting, peak.beyond, wall)


def random_prompts(n: int, tokens: int, seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (n, tokens), generator=generator).tolist()


def measure_lens(backend: Backend, n_prompts: int, n_layers: int, tokens: int = PROMPT_TOKENS) -> Measurement:
    """The lens probe's read (``probes.lens``: probabilities of 4 target ids per prompt, their
    best rank, the top 5) at the last position after the first ``n_layers`` blocks."""
    enc = backend.encode(random_prompts(n_prompts, tokens, seed=n_prompts))
    targets = torch.randint(3, VOCAB, (n_prompts, 4), generator=torch.Generator().manual_seed(1))
    request = LensRequest(token_ids=targets, rank_group=torch.ones_like(targets, dtype=torch.bool), top_k=5)
    return measure(
        "lens",
        f"{n_prompts} prompts x {tokens} tokens, {n_layers} layers",
        lambda: backend.lens(enc, request, layers=range(n_layers)),
    )


def _batch(backend: Backend, lang: str, prompts: list[list[int]]) -> Batch:
    enc = backend.encode(prompts)
    return Batch(lang, enc, enc.input_ids.masked_fill(enc.attention_mask == 0, -100))


def measure_gradient_pair(backend: Backend, grad_layers: int, batch_size: int = 4, tokens: int = 16) -> Measurement:
    """One batch pair of ``run_interference`` with gradients for the matrices of the last
    ``grad_layers`` blocks (the probe's ``params="matrices"``, ``layers=...``)."""
    pair = BatchPair(
        0,
        _batch(backend, "en", random_prompts(batch_size, tokens, seed=10)),
        _batch(backend, "xx", random_prompts(batch_size, tokens, seed=11)),
    )
    layers = list(range(backend.n_layers - grad_layers, backend.n_layers))
    return measure(
        "gradient-cosine pair",
        f"2 x {batch_size} prompts x {tokens} tokens, matrices of blocks {layers[0]}-{layers[-1]}",
        lambda: run_interference(backend, [pair], params="matrices", layers=layers, progress=False),
    )


def measure_generation(backend: Backend, new_tokens: int = 20, tokens: int = PROMPT_TOKENS) -> Measurement:
    enc = backend.encode(random_prompts(1, tokens, seed=20))
    return measure(
        "generation",
        f"1 prompt x {tokens} tokens, {new_tokens} new tokens, statistics",
        lambda: backend.generate(enc, max_new_tokens=new_tokens),
    )


def run_measurements(backend: Backend, grad_layers: int) -> list[Measurement]:
    """Every measurement, the lens first in increasing batch size."""
    out = [measure_lens(backend, n, backend.n_layers) for n in (1, 4, 16)]
    out.append(measure_lens(backend, 16, max(1, backend.n_layers // 4)))  # 8 of Llama-2-7B's 32
    out.append(measure_gradient_pair(backend, grad_layers))
    out.append(measure_generation(backend))
    return out


def plateau_measurements(backend: Backend, prompts: tuple[int, ...] = (128, 256, 512, 1024, 2048)) -> list[Measurement]:
    """The lens over every layer for many 2-token prompts: past 64M logits (256 MB in float32) the
    backend unembeds the layers in chunks, so the peak stops following the number of prompts."""
    return [measure_lens(backend, n, backend.n_layers, tokens=2) for n in prompts]


def measured_markdown(measurements: list[Measurement], weights_bytes: int) -> str:
    lines = [
        f"weights: {weights_bytes / GIB:.2f} GiB (bfloat16)",
        "",
        "| probe | setting | peak RSS beyond the weights (GiB) | wall (s) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {m.probe} | {m.setting} | {m.peak_beyond_bytes / GIB:.3f} | {m.wall_s:.1f} |" for m in measurements]
    return "\n".join(lines) + "\n"


# ---- projection ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Accelerator:
    name: str
    memory_gb: float
    peak_tflops: float  # bf16 dense
    bandwidth_tbs: float  # HBM


A100_80 = Accelerator("A100 80GB", 80, 312, 2.0)
A100_40 = Accelerator("A100 40GB", 40, 312, 1.555)
# Assumed fractions of the peak reached: matrix products of a forward/backward pass on a few
# hundred tokens, and weight streaming when decoding one token at a time.
FLOP_UTILISATION, BANDWIDTH_UTILISATION = 0.4, 0.6
USABLE_MEMORY = 0.9  # of each GPU's memory, the rest for the CUDA context and fragmentation
LENS_PROMPTS, PAIR_PROMPTS, PAIR_TOKENS, NEW_TOKENS = 16, 4, 128, 20
# the lens unembeds layers in chunks of at most this many float32 bytes (256 MiB)
LOGITS_CAP = 4 * inspect.signature(readout_layers).parameters["max_logits"].default
# the lens's peak is about 4 times a chunk's float32 logits (the head's output and the reduction's
# temporaries): 1.0-1.1 GiB at the cap (--shape small --plateau, benchmarks/tables/scale_small_plateau.md)
LOGIT_COPIES = 4


def llama2_shape(size: str) -> DecoderShape:
    return DecoderShape.from_config(llama2_config(*LLAMA2[size]))


def block_params(shape: DecoderShape) -> int:
    h, d_q, d_kv = shape.hidden, shape.n_heads * shape.head_dim, shape.n_kv_heads * shape.head_dim
    return 2 * h * d_q + 2 * h * d_kv + shape.mlp_matrices * h * shape.intermediate


def n_params(shape: DecoderShape) -> int:
    """Block matrices, two RMS norms per block, embedding, final norm and untied head (Llama-2)."""
    return shape.n_layers * (block_params(shape) + 2 * shape.hidden) + 2 * shape.vocab * shape.hidden + shape.hidden


def block_activations(shape: DecoderShape, tokens: int) -> int:
    """Bytes (bfloat16) of one block's live tensors over ``tokens`` tokens without autograd:
    residual, norm output, q, k, v, attention output, and the MLP's gate, up and product."""
    d_q, d_kv = shape.n_heads * shape.head_dim, shape.n_kv_heads * shape.head_dim
    return 2 * tokens * (3 * shape.hidden + 2 * d_q + 2 * d_kv + 3 * shape.intermediate)


def lens_memory(shape: DecoderShape, prompts: int, tokens: int) -> int:
    """Beyond the weights: two blocks' activations, the kept residuals (float32) and
    ``LOGIT_COPIES`` copies of one chunk of float32 lens logits (capped at ``LOGITS_CAP``)."""
    logits = min(LOGITS_CAP, 4 * shape.n_layers * prompts * shape.vocab)
    residuals = 4 * shape.n_layers * prompts * shape.hidden
    return 2 * block_activations(shape, prompts * tokens) + residuals + LOGIT_COPIES * logits


def pair_memory(shape: DecoderShape, grad_blocks: int, prompts: int, tokens: int) -> int:
    """Beyond the weights: side A's gradients kept while side B's are made (2 copies, bfloat16),
    the saved activations of the blocks under gradient (about 4 blocks' live tensors each) and
    the float32 loss logits with their gradient."""
    grads = 2 * 2 * grad_blocks * block_params(shape)
    saved = 4 * grad_blocks * block_activations(shape, prompts * tokens)
    return grads + saved + 2 * 4 * prompts * tokens * shape.vocab


def generation_memory(shape: DecoderShape, tokens: int) -> int:
    """Beyond the weights: the KV cache (bfloat16) over prompt and new tokens, and the step
    statistics' float32 distribution."""
    kv = 2 * 2 * shape.n_layers * shape.n_kv_heads * shape.head_dim * (tokens + NEW_TOKENS)
    return kv + block_activations(shape, tokens) + 3 * 4 * shape.vocab


def seconds(flops: float, weight_passes: float, weights_bytes: int, gpu: Accelerator) -> float:
    """Roofline: the slower of the compute at ``FLOP_UTILISATION`` and of streaming the weights
    ``weight_passes`` times at ``BANDWIDTH_UTILISATION``."""
    compute = flops / (gpu.peak_tflops * 1e12 * FLOP_UTILISATION)
    stream = weight_passes * weights_bytes / (gpu.bandwidth_tbs * 1e12 * BANDWIDTH_UTILISATION)
    return max(compute, stream)


@dataclass(frozen=True)
class ProjectedRow:
    size: str
    probe: str
    setting: str
    weights_gb: float
    beyond_gb: float
    seconds: float  # on one A100 (device_map: the same, the GPUs run their blocks in turn)
    gpus_80: int  # A100 80GB needed with device_map="auto"
    gpus_40: int
    ndif: str

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.beyond_gb


def projected_rows() -> list[ProjectedRow]:
    """Per Llama-2 size and probe: memory (weights, beyond them) and A100 time; see module doc."""
    rows = []
    s = PROMPT_TOKENS
    for size in LLAMA2:
        shape = llama2_shape(size)
        weights = 2 * n_params(shape)
        last = shape.n_layers - 1
        # forward + backward over the blocks from the first one under gradient: backward ~ 2 x forward
        grad_flops = {
            "2 last blocks' matrices": 2
            * PAIR_PROMPTS
            * (shape.full(PAIR_TOKENS) + 2 * sum(shape.block(PAIR_TOKENS, layer) for layer in (last - 1, last))),
            "all blocks' matrices": 2 * PAIR_PROMPTS * 3 * shape.full(PAIR_TOKENS),
        }
        probes = [
            (
                "lens",
                f"{LENS_PROMPTS} prompts x {s} tokens, all layers",
                lens_memory(shape, LENS_PROMPTS, s),
                LENS_PROMPTS * shape.exit(s, last),
                1,
                "lens on a hosted model, `remote=True`",
            ),
        ]
        for setting, flops in grad_flops.items():
            blocks = 2 if setting.startswith("2") else shape.n_layers
            probes.append(
                (
                    "gradient-cosine pair",
                    f"2 x {PAIR_PROMPTS} prompts x {PAIR_TOKENS} tokens, {setting}",
                    pair_memory(shape, blocks, PAIR_PROMPTS, PAIR_TOKENS),
                    flops,
                    6,  # weights read by two forward and two backward passes (backward reads them twice)
                    "refused with `remote=True`",
                )
            )
        generation_flops = shape.full(s) + NEW_TOKENS * shape.full(1)
        probes.append(
            (
                "generation",
                f"1 prompt x {s} tokens, {NEW_TOKENS} new tokens, statistics",
                generation_memory(shape, s),
                generation_flops,
                1 + NEW_TOKENS,
                "refused with `remote=True`",
            )
        )
        for probe, setting, beyond, flops, passes, ndif in probes:
            total = weights + beyond
            rows.append(
                ProjectedRow(
                    size=size,
                    probe=probe,
                    setting=setting,
                    weights_gb=weights / 1e9,
                    beyond_gb=beyond / 1e9,
                    seconds=seconds(flops, passes, weights, A100_80),
                    gpus_80=math.ceil(total / (A100_80.memory_gb * 1e9 * USABLE_MEMORY)),
                    gpus_40=math.ceil(total / (A100_40.memory_gb * 1e9 * USABLE_MEMORY)),
                    ndif=ndif,
                )
            )
    return rows


def projected_markdown() -> str:
    lines = [
        "| model | probe | setting | weights (GB) | beyond weights (GB) | total (GB) | A100 time (s) "
        "| A100 80GB | A100 40GB | NDIF |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in projected_rows():
        lines.append(
            f"| Llama-2-{row.size} | {row.probe} | {row.setting} | {row.weights_gb:.1f} | {row.beyond_gb:.2f} "
            f"| {row.total_gb:.1f} | {row.seconds:.2f} | {_gpus(row.gpus_80)} | {_gpus(row.gpus_40)} | {row.ndif} |"
        )
    return "\n".join(lines) + "\n"


def formula_at_measured_markdown() -> str:
    """The memory formulas of :func:`projected_rows` at the settings measured on the 7B shape, to
    set beside the measured table."""
    shape = llama2_shape("7B")
    rows = [
        (f"lens, {n} prompts x {PROMPT_TOKENS} tokens, 32 layers", lens_memory(shape, n, PROMPT_TOKENS))
        for n in (1, 4, 16)
    ]
    rows.append(
        ("gradient-cosine pair, 2 x 4 prompts x 16 tokens, 2 last blocks' matrices", pair_memory(shape, 2, 4, 16))
    )
    rows.append((f"generation, 1 prompt x {PROMPT_TOKENS} tokens", generation_memory(shape, PROMPT_TOKENS)))
    lines = ["| Llama-2-7B, formula at the measured setting | beyond weights (GiB) |", "|---|---|"]
    return "\n".join(lines + [f"| {name} | {bytes_ / GIB:.3f} |" for name, bytes_ in rows]) + "\n"


def _gpus(n: int) -> str:
    return "1 GPU" if n == 1 else f'{n} GPUs, `device_map="auto"`'


# ---- command line ----------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description="Probes on a Llama-2-shaped model with random weights.")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="small")
    parser.add_argument("--backend", choices=["transformer-lens", "nnsight"], default="transformer-lens")
    parser.add_argument("--grad-layers", type=int, default=2, help="blocks whose matrices get gradients")
    parser.add_argument("--plateau", action="store_true", help="only the lens for 128 to 2048 prompts of 2 tokens")
    parser.add_argument("--out", type=Path, help="write the measured table here (markdown)")
    parser.add_argument("--table-only", action="store_true", help="print the projected table of docs/scale.md")
    args = parser.parse_args()
    if args.table_only:
        print(projected_markdown() + "\n" + formula_at_measured_markdown(), end="")
        return
    if not 1 <= args.grad_layers <= SHAPES[args.shape][1]:
        sys.exit(f"--grad-layers {args.grad_layers} is outside 1..{SHAPES[args.shape][1]}; pick fewer blocks")
    available = psutil.virtual_memory().available
    if args.shape == "7b" and available < NEEDED_FOR_7B:
        sys.exit(
            f"only {available / GIB:.1f} GiB of memory available, the 7B shape needs {NEEDED_FOR_7B / GIB:.1f}; "
            "wait for other jobs to finish or use --shape small"
        )
    before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    backend = random_backend(args.shape, args.backend)
    build_s = time.perf_counter() - start
    _release_freed_memory()
    built_rss = psutil.Process().memory_info().rss - before
    weights = sum(p.numel() * p.element_size() for p in backend.named_parameters().values())
    measurements = plateau_measurements(backend) if args.plateau else run_measurements(backend, args.grad_layers)
    table = Table(
        title=f"llama-2-{args.shape} random bf16 on {args.backend}, {torch.get_num_threads()} threads; "
        f"built in {build_s:.0f} s, weights {weights / GIB:.2f} GiB, RSS grew {built_rss / GIB:.2f} GiB"
    )
    for column in ("probe", "setting", "peak beyond weights (GiB)", "wall (s)"):
        table.add_column(column)
    for m in measurements:
        table.add_row(m.probe, m.setting, f"{m.peak_beyond_bytes / GIB:.3f}", f"{m.wall_s:.1f}")
    Console().print(table)
    if args.out:
        load = subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
        command = "OMP_NUM_THREADS={} python benchmarks/bench_scale.py {}".format(
            torch.get_num_threads(), " ".join(sys.argv[1:])
        )
        header = (
            f"Command: `{command}`\n\nBackend {args.backend}, {torch.get_num_threads()} threads, "
            f"model built in {build_s:.0f} s (the process's RSS grew {built_rss / GIB:.2f} GiB). "
            f"Load (`uptime` at the end): {load}\n\n"
        )
        args.out.write_text(header + measured_markdown(measurements, weights), encoding="utf-8")


if __name__ == "__main__":
    main()
