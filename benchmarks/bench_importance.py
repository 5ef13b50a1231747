"""Cost of Taylor-importance accumulation (probes/importance.py) against a bare forward+backward
over the same batches, in time and in peak memory beyond the loaded model.

bare (all)        : plain transformers forward + loss + backward, every parameter trainable
bare (layers)     : the same with only the block parameters trainable (the importance scope)
loss_and_grads    : the Backend primitive on the block parameters (every gradient copied out)
importance        : accumulate_importance, sum_then_abs (spec 4.1) and abs_per_batch

Each row runs in its own process (so one row's freed memory cannot hide another's peak), with
glibc's mmap threshold fixed so that freed tensors leave the resident set: load the model,
record the resident set size (RSS), then run the batches twice while a thread samples RSS every
2 ms. Time is the second pass, as CPU seconds of the process (stable on a shared machine) and
wall seconds; memory is the peak over both passes minus the RSS after loading, also in units of
one float32 copy of the block parameters ("copies").
Usage: python benchmarks/bench_importance.py [--model M] [--n N] [--batch-size B]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from typing import Self

import torch
from rich.console import Console
from rich.table import Table

MODES = ("bare (all)", "bare (layers)", "loss_and_grads", "importance sum_then_abs", "importance abs_per_batch")
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


class PeakRSS:
    """Peak resident set size while the block runs, sampled every 2 ms in a thread."""

    def __enter__(self) -> Self:
        self.peak, self._stop = rss(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


def run_mode(mode: str, model_name: str, n: int, batch_size: int) -> dict[str, float]:
    import gc

    from probes.backend import load
    from probes.importance import accumulate_importance, scope_names
    from probes.inputs.lm_corpus import lm_batches, load_corpus

    backend = load(model_name)
    texts = load_corpus().texts("en", "accumulation")[:n]
    batches = list(lm_batches(backend, texts, batch_size=batch_size, max_tokens=48))
    names = scope_names(backend, "layers")
    params = backend.named_parameters()
    scoped_bytes = sum(params[n].numel() * 4 for n in names)
    model = backend._hf_model()

    def bare(only_layers: bool) -> None:
        for p_name, p in params.items():
            p.requires_grad_(p_name in names or not only_layers)
        for batch in batches:
            logits = model(**batch.enc.model_inputs()).logits
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(), batch.labels[:, 1:].reshape(-1), ignore_index=-100
            )
            loss.backward()
            del logits, loss
            for p in params.values():
                p.grad = None
        for p in params.values():
            p.requires_grad_(True)

    def primitive() -> None:
        with backend.frozen_except(names):
            for batch in batches:
                backend.loss_and_grads(batch.enc, batch.labels, params=names)

    work = {
        "bare (all)": lambda: bare(False),
        "bare (layers)": lambda: bare(True),
        "loss_and_grads": primitive,
        "importance sum_then_abs": lambda: accumulate_importance(
            backend, texts, batch_size=batch_size, max_tokens=48, progress=False
        ),
        "importance abs_per_batch": lambda: accumulate_importance(
            backend, texts, batch_size=batch_size, max_tokens=48, mode="abs_per_batch", progress=False
        ),
    }[mode]
    gc.collect()
    base = rss()
    with PeakRSS() as peak:
        work()
        gc.collect()
        start, cpu_start = time.perf_counter(), time.process_time()
        work()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "seconds": seconds,
        "cpu": cpu,
        "peak_beyond_model": peak.peak - base,
        "scoped_bytes": scoped_bytes,
        "tokens": sum(b.n_tokens for b in batches),
        "n_params_scoped": scoped_bytes // 4,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--n", type=int, default=16, help="English sentences (accumulation part)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--mode", default=None, help=argparse.SUPPRESS)  # internal: one row in a child process
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.model, args.n, args.batch_size)))
        return
    results = {}
    for mode in MODES:
        command = [
            sys.executable,
            __file__,
            "--model",
            args.model,
            "--n",
            str(args.n),
            "--batch-size",
            str(args.batch_size),
            "--mode",
            mode,
        ]
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}  # large frees return memory to the OS
        output = (
            subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout.strip().splitlines()[-1]
        )
        results[mode] = json.loads(output)
    scoped = results[MODES[0]]["scoped_bytes"]
    table = Table(
        title=f"importance accumulation vs bare forward+backward: {args.model}, {args.n} sentences, "
        f"batch {args.batch_size}, {results[MODES[0]]['tokens']} tokens; block parameters "
        f"{results[MODES[0]]['n_params_scoped'] / 1e6:.1f} M = {scoped / 2**20:.0f} MB in float32"
    )
    for column in (
        "method",
        "CPU s",
        "wall s",
        "CPU ratio vs bare (all)",
        "CPU ratio vs bare (layers)",
        "peak beyond model (MB)",
        "= float32 copies",
        "extra copies vs bare (layers)",
    ):
        table.add_column(column)
    for mode, row in results.items():
        table.add_row(
            mode,
            f"{row['cpu']:.1f}",
            f"{row['seconds']:.1f}",
            f"{row['cpu'] / results['bare (all)']['cpu']:.2f}",
            f"{row['cpu'] / results['bare (layers)']['cpu']:.2f}",
            f"{row['peak_beyond_model'] / 2**20:.0f}",
            f"{row['peak_beyond_model'] / scoped:.2f}",
            f"{(row['peak_beyond_model'] - results['bare (layers)']['peak_beyond_model']) / scoped:+.2f}",
        )
    Console(width=200).print(table)  # wide enough for every column when piped to a file


if __name__ == "__main__":
    main()
