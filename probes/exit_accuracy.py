"""Layer-wise exit accuracy and AdaInfer's stopping features (Fan et al. 2024, AdaInfer; docs/methods/early-exit.md).

For every item and every layer ``l``, the logit lens decodes the residual stream at the answer
position (the prompt's last token) with the model's own final norm and unembedding, giving
``p_l``. From it:

* the top-1 token over the full vocabulary and whether it is the gold answer token (``correct``,
  AdaInfer's label ``y_l = 1`` iff the layer's top-1 token is the gold one);
* the top-1 among the task's answer tokens only (``correct_options``: the usual restricted
  evaluation of classification and multiple choice);
* AdaInfer's features over the full vocabulary, as in the paper: ``top_prob = max_i p_l[i]``
  and ``gap = p_l[(1)] - p_l[(2)]``; and the same two over the answer options with ``p_l``
  renormalised on them (``top_prob_options``, ``gap_options``).

At the last layer the lens is the model's output, so that layer's accuracy is the model's own.
"""

from __future__ import annotations

import pandas as pd
import torch

from probes.backend import Backend, LensRequest
from probes.backend.base import common_prefix
from probes.backend.lenses import LOGIT, Lens
from probes.backend.resume import collect
from probes.backend.store import ResultsStore, Run, provenance
from probes.inputs.tasks import Prompt, TaskData, TaskSpec, answer_token_ids, load_task, task_prompts
from probes.registry import register_probe

COLUMNS = {
    "model": "model display name",
    "task": "task name (sentiment, topic, mcqa, ...)",
    "lang": "ISO 639-1 code of the prompt's language",
    "item": "item id (shared by the translations of an item)",
    "shots": "number of demonstrations in the prompt (K)",
    "demos": "fixed (the same K demonstrations open every prompt of the task and language) or per-item",
    "layer": "0-based block index; the last layer is the model's output",
    "lens": "lens that decoded the layer: logit, linear, tuned, ... (probes/backend/lenses.py)",
    "n_tokens": "prompt length in tokens (for FLOPs accounting)",
    "gold": "gold label",
    "gold_id": "token id of the gold answer",
    "pred_id": "top-1 token id over the full vocabulary",
    "pred": "top-1 token over the full vocabulary, as text",
    "pred_option": "label whose answer token is most probable among the options",
    "correct": "top-1 token over the full vocabulary is the gold answer token (AdaInfer's label)",
    "correct_options": "pred_option is the gold label",
    "gap": "top-1 minus top-2 probability over the full vocabulary (AdaInfer feature)",
    "top_prob": "top-1 probability over the full vocabulary (AdaInfer feature)",
    "gap_options": "top-1 minus top-2 probability among the options, renormalised over them",
    "top_prob_options": "top-1 probability among the options, renormalised over them",
    "p_gold": "probability of the gold answer token (full vocabulary)",
    "p_options": "total probability of the answer tokens (full vocabulary)",
}


def readout_rows(
    prompts: list[Prompt], n_tokens: list[int], readout, labels: list[str], answer_ids: list[int], decode
) -> pd.DataFrame:
    """Tidy rows ``(item, layer)`` of one batch from a lens readout at the answer position."""
    top_ids = readout.top_ids[:, :, 0].cpu()  # [layer, batch, 2]
    top_probs = readout.top_probs[:, :, 0].double().cpu()
    option_probs = readout.probs_at_ids[:, :, 0].double().cpu()  # [layer, batch, n_options]
    p_options = option_probs.sum(-1)
    renorm = option_probs / p_options.unsqueeze(-1).clamp(min=torch.finfo(torch.float64).tiny)
    top2 = renorm.topk(2, dim=-1).values
    best_option = option_probs.argmax(-1)
    gold_index = torch.tensor([labels.index(p.gold) for p in prompts])
    gold_ids = torch.tensor(answer_ids)[gold_index]
    n_layers, batch = top_ids.shape[:2]
    frame = pd.DataFrame(
        {
            "item": [p.item for p in prompts] * n_layers,
            "layer": torch.tensor(readout.layers).repeat_interleave(batch).tolist(),
            "n_tokens": n_tokens * n_layers,
            "gold": [p.gold for p in prompts] * n_layers,
            "gold_id": gold_ids.repeat(n_layers).tolist(),
            "pred_id": top_ids[..., 0].reshape(-1).tolist(),
            "pred_option": [labels[i] for i in best_option.reshape(-1).tolist()],
            "gap": (top_probs[..., 0] - top_probs[..., 1]).reshape(-1).tolist(),
            "top_prob": top_probs[..., 0].reshape(-1).tolist(),
            "gap_options": (top2[..., 0] - top2[..., 1]).reshape(-1).tolist(),
            "top_prob_options": top2[..., 0].reshape(-1).tolist(),
            "p_gold": option_probs.gather(-1, gold_index.expand(n_layers, -1).unsqueeze(-1))[..., 0]
            .reshape(-1)
            .tolist(),
            "p_options": p_options.reshape(-1).tolist(),
        }
    )
    frame["pred"] = frame["pred_id"].map(decode)
    frame["correct"] = frame["pred_id"] == frame["gold_id"]
    frame["correct_options"] = frame["pred_option"] == frame["gold"]
    return frame


def exit_run(
    store: ResultsStore,
    backend: Backend,
    data: TaskData,
    lang: str,
    *,
    shots: int = 3,
    n: int | None = 100,
    seed: int = 0,
    lens: Lens = LOGIT,
    demos: str = "fixed",
) -> Run:
    """The results-store run of :func:`exit_accuracy` with these settings (its key covers the task's
    template and the answer token ids, so a changed template or tokenizer is a new run, and a fitted
    lens' name and fit id; the logit lens keeps the key it always had)."""
    spec = data.spec
    params = {
        "task": spec.name,
        "lang": lang,
        "shots": shots,
        "demos": demos,
        "n": n,
        "seed": seed,
        "source": data.source,
        "template": spec.template_sha(lang),
        "answers": _answer_ids(backend, spec, lang),
    }
    if lens is not LOGIT:
        params.update(lens.key())
    return store.run(provenance("exit", params, backend.describe(), data.files, seed))


def _answer_ids(backend: Backend, spec: TaskSpec, lang: str) -> list[int]:
    return [answer_token_ids(spec, backend.tokenizer, lang)[label] for label in spec.labels]


@register_probe("exit", paper="Fan et al. 2024, AdaInfer (Fig. 1, features of Sec. 3)", columns=COLUMNS, version=2)
def exit_accuracy(
    backend: Backend,
    task: str = "sentiment",
    lang: str = "en",
    *,
    shots: int = 3,
    n: int | None = 100,
    seed: int = 0,
    data: TaskData | None = None,
    batch_size: int = 8,
    run: Run | None = None,
    progress: bool = True,
    lens: Lens = LOGIT,
    demos: str = "fixed",
) -> pd.DataFrame:
    """Per item and layer, decoded by ``lens`` (logit by default): lens top-1 (full vocabulary and
    among the options), correctness, gap, top_prob.

    ``data`` defaults to the authored task ``data/tasks/<task>.csv``; ``n`` items are drawn with
    ``seed`` (all when None), each with ``shots`` demonstrations, the same ones in every prompt
    (``demos="fixed"``) or drawn per item (``"per-item"``; :func:`~probes.inputs.tasks.task_prompts`).
    With ``run`` (from :func:`exit_run`), finished batches are kept and a re-run computes only the missing items.
    """
    data = data if data is not None else load_task(task)
    spec = data.spec
    labels = spec.labels
    answer_ids = _answer_ids(backend, spec, lang)
    prompts = task_prompts(data, lang, shots=shots, n=n, seed=seed, demos=demos)
    tokens = {p.item: backend.tokenize(p.text) for p in prompts}
    longest_first = sorted(prompts, key=lambda p: -len(tokens[p.item]))
    # the instruction (and any demonstrations every prompt shares) is encoded once, its KV cache reused
    prefix = backend.shared_prefix(common_prefix(list(tokens.values())))
    decoded: dict[int, str] = {}

    def decode(token_id: int) -> str:
        if token_id not in decoded:
            decoded[token_id] = backend.tokenizer.decode([token_id])
        return decoded[token_id]

    def compute(batch: list[Prompt]) -> pd.DataFrame:
        rows = [tokens[p.item] for p in batch]
        enc = backend.encode_after(prefix, [row[len(prefix.ids) :] for row in rows])
        option_ids = torch.tensor(answer_ids).unsqueeze(0).expand(len(batch), -1)
        readout = backend.lens(enc, LensRequest(token_ids=option_ids, top_k=2), layers=None, positions=(-1,), lens=lens)
        frame = readout_rows(batch, [len(r) for r in rows], readout, labels, answer_ids, decode)
        frame.insert(0, "model", backend.model_name)
        frame.insert(1, "task", spec.name)
        frame.insert(2, "lang", lang)
        frame.insert(4, "shots", shots)
        frame.insert(5, "demos", demos)
        frame["lens"] = lens.name
        return frame[list(COLUMNS)]

    table = collect(
        longest_first,
        compute,
        key=lambda p: p.item,
        columns=list(COLUMNS),
        run=run,
        batch_size=batch_size,
        desc=f"exit {spec.name}/{lang}",
        unit="item",
        progress=progress,
    )
    return _ordered(table)


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(["item", "layer"], kind="stable").reset_index(drop=True)
