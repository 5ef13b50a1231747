"""What every peer runner shares: the job file it reads, the thread setting, the summed word
probabilities it reports, and the result file it writes.

A peer runs in its own virtual environment (``make bench-peers`` builds them), so this module
imports nothing of pivotlens: only torch and the standard library.

Job file (JSON): ``model_path``, ``threads``, ``batches`` (lists of equal-length token-id rows,
so no peer has to pad), ``target_sets`` and ``latent_sets`` (one token-id list per prompt, in
batch order). Result file (JSON): ``seconds`` (all batches after one warm-up batch),
``p_target`` and ``p_latent`` (``[prompt][layer]``), and ``note``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import torch


def read_job() -> tuple[dict, str]:
    job_path, out_path = sys.argv[1], sys.argv[2]
    with open(job_path, encoding="utf-8") as handle:
        job = json.load(handle)
    torch.set_num_threads(int(job["threads"]))
    torch.set_grad_enabled(False)
    return job, out_path


def set_sums(probs: torch.Tensor, sets: list[list[int]]) -> list[list[float]]:
    """``probs`` ``[batch, layer, vocab]`` -> per prompt and layer, the summed probability of its set."""
    return [probs[b][:, ids].sum(-1).tolist() for b, ids in enumerate(sets)]


def run_batches(job: dict, per_batch: Callable[[torch.Tensor], torch.Tensor]) -> tuple[float, list, list]:
    """Time ``per_batch`` (ids ``[batch, seq]`` -> probabilities ``[batch, layer, vocab]`` at the last
    position) over every batch after one warm-up, and sum each prompt's sets."""
    batches = [torch.tensor(rows) for rows in job["batches"]]
    per_batch(batches[0])  # warm-up
    p_target, p_latent, start, seconds = [], [], 0, 0.0
    for ids in batches:
        tick = time.perf_counter()
        probs = per_batch(ids)
        seconds += time.perf_counter() - tick
        stop = start + len(ids)
        p_target += set_sums(probs, job["target_sets"][start:stop])
        p_latent += set_sums(probs, job["latent_sets"][start:stop])
        start = stop
    return seconds, p_target, p_latent


def write_result(out_path: str, seconds: float, p_target: list, p_latent: list, note: str = "") -> None:
    with open(out_path, "w", encoding="utf-8") as handle:
        json.dump({"seconds": seconds, "p_target": p_target, "p_latent": p_latent, "note": note}, handle)
