"""pivotlens's latent-language lens against the tools researchers already use, side by side in
one run: the same prompts, the same model, the same token sets and the same thread count.

Each method computes, for every prompt and every layer, the next-token distribution at the last
position and the summed probability of the target word's and the English word's token sets
(Wendler et al. 2024's prefix rule, the sets pivotlens's lens probe uses):

pivotlens          : the lens probe ``run_lens`` (token sets, both word probabilities, ranks,
                     top tokens, a tidy table); batches sorted by length, left padding
transformer-lens   : transformer-lens 4.3's built-in ``logit_lens`` on the same ``TransformerBridge``
                     (accumulated residual stream, final norm, ``W_U``; reads the sets' ids only)
nnterp             : nnterp 1.3's ``logit_lens`` (full distributions), in its own environment
tuned-lens         : tuned-lens 0.2's ``LogitLens`` over ``output_hidden_states``, own environment
llm-latent-language: Wendler et al.'s code path: one prompt per forward with
                     ``output_hidden_states``, full logits at every layer and position

Where a prompt's prefix set does not identify its word (another concept of the language has the
same set), the lens probe scores both of its words by their chain probability instead, which no
peer computes; the difference columns cover the prompts scored alike, the caption the others.

Peers get the prompts grouped by token length, so no peer pads (transformer-lens's
``logit_lens`` takes no attention mask); pivotlens pads as it does for users. Peers in their own
environments run in a subprocess (``make bench-peers`` builds them under ``.bench/``); a peer
whose environment is missing is listed with the reason. Times exclude model loading and one
warm-up batch. Usage: python benchmarks/bench_peers.py [--model M] [--n N] [--threads T] [--peers P,...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from transformer_lens.tools.analysis.logit_lens import logit_lens

from probes.backend import load
from probes.backend.tokensets import overlapping, scoring_kind
from probes.inputs.prompts import lens_prompts
from probes.inputs.words import load_concepts
from probes.lens import run_lens

HERE = Path(__file__).resolve().parent
PEER_ENVS = {
    "nnterp 1.3 logit_lens": ("nnterp", HERE / "peers" / "run_nnterp.py"),
    "tuned-lens 0.2 LogitLens": ("tuned-lens", HERE / "peers" / "run_tuned_lens.py"),
}


PIVOTLENS = "pivotlens lens probe (run_lens)"
PEERS = ("transformer-lens", "nnterp", "tuned-lens", "llm-latent-language")


def kept_prompts(backend, n: int):
    """The first ``n`` zh translation prompts the lens probe keeps, with their token sets and how
    the lens probe scores them: ``prefix`` (the sets' sums, as every peer does) or ``chain`` (the
    whole words' chain probabilities, where a prefix set does not identify its word)."""
    sets, kept, concepts = backend.token_sets, [], load_concepts()
    units = {lang: sets.units(concepts[lang]) for lang in ("zh", "en")}
    for prompt in lens_prompts("translation", concepts, "zh"):
        target, latent = sets.ids(prompt.target_word), sets.ids(prompt.latent_word)
        if target and latent and not overlapping(target, latent):
            kind = scoring_kind(units["zh"][prompt.target_word.strip()], units["en"][prompt.latent_word.strip()])
            kept.append((prompt, backend.tokenize(prompt.text), sorted(target), sorted(latent), kind))
        if len(kept) == n:
            break
    return kept


def equal_length_batches(kept, size: int) -> list[list[int]]:
    """Indices of ``kept`` grouped by token length, at most ``size`` per batch."""
    by_length = defaultdict(list)
    for index, (_, ids, *_) in enumerate(kept):
        by_length[len(ids)].append(index)
    return [group[i : i + size] for _, group in sorted(by_length.items()) for i in range(0, len(group), size)]


def timed_batches(batches, per_batch) -> tuple[float, dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Run ``per_batch`` (indices -> ``[batch, layer]`` target and latent sums) after a warm-up."""
    per_batch(batches[0])
    p_target, p_latent, seconds = {}, {}, 0.0
    for batch in batches:
        tick = time.perf_counter()
        target, latent = per_batch(batch)
        seconds += time.perf_counter() - tick
        for row, index in enumerate(batch):
            p_target[index], p_latent[index] = target[row], latent[row]
    return seconds, p_target, p_latent


def tl_builtin(backend, kept):
    """transformer-lens's ``logit_lens``, reading only the ids of the batch's sets."""

    def per_batch(batch):
        ids = torch.tensor([kept[i][1] for i in batch])
        vocab = sorted({t for i in batch for t in kept[i][2] + kept[i][3]})
        column = {t: c for c, t in enumerate(vocab)}
        result = logit_lens(backend.bridge, ids, positions=-1, vocab=vocab, return_type="probs")
        probs = result.readout.values[1:].transpose(0, 1)  # [batch, layer, |vocab|]; entry 0 is the embedding

        def sums(which: int) -> np.ndarray:
            return np.stack(
                [probs[r][:, [column[t] for t in kept[i][which]]].sum(-1).numpy() for r, i in enumerate(batch)]
            )

        return sums(2), sums(3)

    return per_batch


def llm_latent_language(model, kept):
    """Wendler et al.'s path: one prompt per forward, full logits at every layer and position."""
    norm, head = model.get_decoder().norm, model.get_output_embeddings()

    def per_batch(batch):
        targets, latents = [], []
        for i in batch:
            out = model(input_ids=torch.tensor([kept[i][1]]), output_hidden_states=True)
            layers = [torch.softmax(head(norm(h)).float(), -1) for h in out.hidden_states[1:-1]]
            probs = torch.stack([*layers, torch.softmax(out.logits.float(), -1)])[:, 0, -1]  # [layer, vocab]
            targets.append(probs[:, kept[i][2]].sum(-1).numpy())
            latents.append(probs[:, kept[i][3]].sum(-1).numpy())
        return np.stack(targets), np.stack(latents)

    return per_batch


def run_peer_env(env: str, script: Path, job: dict, batches) -> tuple[float, dict, dict] | str:
    """Run a peer in its own virtual environment; returns its timings or why it did not run."""
    python = HERE.parent / ".bench" / env / "bin" / "python"
    if not python.exists():
        return f"not run: no environment at .bench/{env} (make bench-peers builds it)"
    with tempfile.TemporaryDirectory() as tmp:
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        done = subprocess.run(
            [str(python), str(script), str(job_path), str(out_path)], check=False, capture_output=True, text=True
        )
        if done.returncode != 0:
            return "failed: " + (done.stderr.strip().splitlines() or ["no output"])[-1]
        result = json.loads(out_path.read_text(encoding="utf-8"))
    order = [i for batch in batches for i in batch]
    p_target = {i: np.array(result["p_target"][k]) for k, i in enumerate(order)}
    p_latent = {i: np.array(result["p_latent"][k]) for k, i in enumerate(order)}
    return result["seconds"], p_target, p_latent


def pivotlens_probe(backend, kept, batch_size: int):
    prompts = [k[0] for k in kept]
    run_lens(backend, prompts[:batch_size], batch_size=batch_size, progress=False)  # warm-up
    tick = time.perf_counter()
    table = run_lens(backend, prompts, batch_size=batch_size, progress=False)
    seconds = time.perf_counter() - tick
    item = {k[0].item: i for i, k in enumerate(kept)}
    table = table.assign(index=table["item"].map(item)).sort_values(["index", "layer"])
    p_target = {i: g["p_target"].to_numpy() for i, g in table.groupby("index")}
    p_latent = {i: g["p_en"].to_numpy() for i, g in table.groupby("index")}
    return seconds, p_target, p_latent


def max_difference(a: dict, b: dict, indices: list[int]) -> float:
    return float(max((np.abs(a[i] - b[i]).max() for i in indices), default=float("nan")))


def generation_rows(backend, kept, new_tokens: int) -> dict[str, tuple[float, float]]:
    """Greedy generation of ``new_tokens`` with per-step entropy, nucleus size and top tokens:
    pivotlens's ``Backend.generate`` (statistics recorded during decoding) against Hugging Face
    ``generate(output_scores=True)`` with the same statistics computed from the returned scores.
    Returns seconds and the largest entropy difference (bits)."""
    enc = backend.encode([k[1] for k in kept[:8]])
    model = backend._hf_model()

    def ours():
        out = backend.generate(enc, max_new_tokens=new_tokens)
        return out.entropy_bits, out.nucleus_size, out.top_ids

    def hf():
        out = model.generate(
            input_ids=enc.input_ids,
            attention_mask=enc.attention_mask,
            max_new_tokens=new_tokens,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=backend.pad_id,
        )
        log_probs = torch.log_softmax(torch.stack(out.scores, 1).float(), -1)
        probs = log_probs.exp()
        entropy = -(probs * log_probs).sum(-1) / np.log(2)
        nucleus = (probs.sort(-1, descending=True).values.cumsum(-1) < 0.75).sum(-1) + 1
        return entropy, nucleus, probs.topk(5, -1)  # the statistics pivotlens records

    rows = {}
    for name, fn in (
        ("pivotlens Backend.generate (statistics while decoding)", ours),
        ("transformers generate(output_scores=True) + statistics", hf),
    ):
        fn()
        tick = time.perf_counter()
        stats = fn()
        rows[name] = (time.perf_counter() - tick, stats[0])
    reference = rows["pivotlens Backend.generate (statistics while decoding)"][1]
    return {name: (s, float((e - reference).abs().max())) for name, (s, e) in rows.items()}


def lens_table(title: str, rows: dict, kept) -> Table:
    """Time and the largest differences of P(target) and P(en) of every method against pivotlens's,
    over the prompts every method scores alike (prefix sets); the others in the caption."""
    alike = [i for i, k in enumerate(kept) if k[4] == "prefix"]  # scored as every peer scores them
    chained = [i for i, k in enumerate(kept) if k[4] == "chain"]
    ours, ours_target, ours_latent = rows[PIVOTLENS]
    table = Table(title=title)
    for column in ("method", "seconds", "prompts/s", "time / pivotlens", "max |dP(target)|", "max |dP(en)|"):
        table.add_column(column)
    for name, row in rows.items():
        if isinstance(row, str):
            table.add_row(name, row, "", "", "", "")
            continue
        seconds, p_target, p_latent = row
        table.add_row(
            name,
            f"{seconds:.2f}",
            f"{len(kept) / seconds:.1f}",
            f"{seconds / ours:.2f}",
            f"{max_difference(p_target, ours_target, alike):.1e}",
            f"{max_difference(p_latent, ours_latent, alike):.1e}",
        )
    measured = [row for name, row in rows.items() if not isinstance(row, str) and name != PIVOTLENS]
    if chained and measured:
        peer = measured[0]
        table.caption = (
            f"differences over the {len(alike)} prompts the lens probe scores by prefix sets, as every peer does; "
            f"{len(chained)} prompts' prefix sets do not identify their word (another zh concept has the same set), "
            "so the lens probe scores both words by their chain probability there, which no peer computes "
            f"(largest difference on them: {max_difference(peer[1], ours_target, chained):.1e} in P(target), "
            f"{max_difference(peer[2], ours_latent, chained):.1e} in P(en))"
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--new-tokens", type=int, default=20)
    parser.add_argument("--write", type=Path, help="also write the tables as Markdown to this file")
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help=f"comma-separated peers to run beside pivotlens (default all: {', '.join(PEERS)})",
    )
    args = parser.parse_args()
    peers = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        parser.error(f"unknown peers {unknown}; choose among {', '.join(PEERS)}")
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    backend = load(args.model)
    plain = load(args.model, backend="nnsight")._hf_model()  # its own copy: the bridge rewires its model
    kept = kept_prompts(backend, args.n)
    batches = equal_length_batches(kept, args.batch_size)
    job = {
        "model_path": backend.source,
        "threads": args.threads,
        "batches": [[kept[i][1] for i in batch] for batch in batches],
        "target_sets": [kept[i][2] for batch in batches for i in batch],
        "latent_sets": [kept[i][3] for batch in batches for i in batch],
    }
    rows = {PIVOTLENS: pivotlens_probe(backend, kept, args.batch_size)}
    if "transformer-lens" in peers:
        rows["transformer-lens 4.3 logit_lens"] = timed_batches(batches, tl_builtin(backend, kept))
    for name, (env, script) in PEER_ENVS.items():
        if env in peers:
            rows[name] = run_peer_env(env, script, job, batches)
    if "llm-latent-language" in peers:
        rows["llm-latent-language (per prompt, full logits)"] = timed_batches(batches, llm_latent_language(plain, kept))
    title = (
        f"logit lens, P(target) and P(en) per layer: {args.model}, {len(kept)} zh prompts, batch "
        f"{args.batch_size}, {args.threads} threads"
    )
    table = lens_table(title, rows, kept)
    generation = generation_rows(backend, kept, args.new_tokens)
    gen_table = Table(title=f"generation with per-step statistics: 8 prompts x {args.new_tokens} tokens")
    for column in ("method", "seconds", "time / pivotlens", "max |d entropy| (bits)"):
        gen_table.add_column(column)
    base = next(iter(generation.values()))[0]
    for name, (seconds, difference) in generation.items():
        gen_table.add_row(name, f"{seconds:.2f}", f"{seconds / base:.2f}", f"{difference:.1e}")
    console = Console(width=170, record=args.write is not None)
    console.print(table)
    console.print(gen_table)
    if args.write:
        chosen = "" if peers == list(PEERS) else f" --peers {','.join(peers)}"
        command = f"python benchmarks/bench_peers.py --model {args.model} --n {args.n} --threads {args.threads}{chosen}"
        args.write.write_text(f"`{command}`\n\n```\n{console.export_text()}```\n", encoding="utf-8")


if __name__ == "__main__":
    main()
