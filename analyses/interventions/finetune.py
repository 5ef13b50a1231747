"""Instruction fine-tuning on the ``transformers`` Trainer, with a plain or PROM's pivoted objective
(Lee et al., Sec. 2.2 and 3.1), LoRA (merged at the end) or full fine-tuning.

* ``plain``: every (prompt, response) pair is an ordinary example, loss at the model's output on
  the response tokens; pairs that carry a pivot-language counterpart contribute it as one more
  ordinary example (PROM's "t+e" baseline, xLLaMA2).
* ``pivoted``: each example is a target pair and its pivot (English) counterpart; one step's
  loss is ``lam · L_{n,e} + L_{N,t}`` (:func:`analyses.interventions.pivoted_loss.pivoted_loss`).

Output folder: the fine-tuned model and its tokenizer (``AutoModelForCausalLM.from_pretrained``
and ``probes.backend.load`` take it), ``training_log.csv`` (``step, loss, lr, grad_norm, epoch,
loss_target, loss_pivot``, written as training goes), ``checkpoints/`` (an interrupted run
resumes from the last one) and ``finetune.json`` (settings, written last: its presence means
done). Later data recipes and freezing callbacks plug in through ``examples`` and
``callbacks``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from transformers import PreTrainedModel, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from analyses.interventions.pivoted_loss import PivotedObjective, PivotHead, pivoted_loss
from probes.backend import models
from probes.backend.errors import DataFormatError
from probes.backend.gradients import lens_loss, unwrap
from probes.backend.store import code_version, write_text_atomic
from probes.inputs.instruction_data import (
    Template,
    TokenizedExample,
    collate,
    pad_id,
    pairs_for,
    parallel_ids,
    tokenize_pair,
)

OBJECTIVES: tuple[str, ...] = ("plain", "pivoted")
METHODS: tuple[str, ...] = ("lora", "full")
LOG_COLUMNS = ("step", "loss", "lr", "grad_norm", "epoch", "loss_target", "loss_pivot")
DONE_FILE = "finetune.json"
LOG_FILE = "training_log.csv"


@dataclass(frozen=True)
class Example:
    """A target-language pair and, optionally, its pivot-language (English) counterpart."""

    prompt: str
    response: str
    pivot_prompt: str | None = None
    pivot_response: str | None = None

    @property
    def has_pivot(self) -> bool:
        return self.pivot_prompt is not None and self.pivot_response is not None

    def pivot_pair(self) -> tuple[str, str]:
        """``(pivot_prompt, pivot_response)`` of an example that :attr:`has_pivot`."""
        if self.pivot_prompt is None or self.pivot_response is None:
            raise DataFormatError(f"the example {self.prompt[:40]!r} has no pivot counterpart")
        return self.pivot_prompt, self.pivot_response


@dataclass(frozen=True)
class FinetuneConfig:
    """Training settings. PROM (Sec. 3.1) fine-tunes fully with lr 2e-5, 3% warm-up, batch 32;
    the defaults here are for a few hundred CPU steps with LoRA on a small model."""

    objective: str = "plain"
    method: str = "lora"
    max_steps: int = 300
    batch_size: int = 4
    grad_accum: int = 1
    learning_rate: float = 2e-4
    warmup_ratio: float = 0.03
    scheduler: str = "cosine"
    weight_decay: float = 0.0
    seed: int = 0
    max_length: int = 256
    template: Template = "auto"
    pivot: PivotedObjective = field(default_factory=PivotedObjective)
    pivot_head: str = "own"  # "own": the model's final norm + head; "separate": a trainable copy
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: str | tuple[str, ...] = "all-linear"
    logging_steps: int = 10
    save_steps: int = 50
    save_total_limit: int = 2
    device: str = "cpu"
    dtype: str = "float32"

    def check(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; use one of {', '.join(OBJECTIVES)}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.pivot_head not in ("own", "separate"):
            raise ValueError(f"unknown pivot head {self.pivot_head!r}; use 'own' or 'separate'")
        if self.max_steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("max_steps, batch_size and grad_accum must be at least 1")


@dataclass
class FinetuneResult:
    model_dir: Path
    log: pd.DataFrame
    seconds: float
    resumed_from: str | None


# ---- data -------------------------------------------------------------------------------------
def as_examples(items: Iterable[Example | Sequence[str]]) -> list[Example]:
    """Examples from :class:`Example` objects or tuples ``(prompt, response[, pivot_prompt, pivot_response])``."""
    out = []
    for index, item in enumerate(items):
        if isinstance(item, Example):
            out.append(item)
        elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) in (2, 4):
            out.append(Example(*item))
        else:
            raise TypeError(
                f"item {index}: expected an Example or a (prompt, response[, pivot_prompt, pivot_response]) tuple"
            )
    if not out:
        raise ValueError("no training examples")
    return out


def load_jsonl(path: str | Path) -> list[Example]:
    """Examples from a JSONL file: one object per line with ``prompt`` and ``response``, and
    optionally ``pivot_prompt`` and ``pivot_response``; errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file; pass a JSONL file with prompt and response fields")
    examples = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{path}:{line_no}, column {exc.colno}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise DataFormatError(f"{path}:{line_no}: expected a JSON object with prompt and response")
            for key in ("prompt", "response"):
                if not isinstance(record.get(key), str) or not record[key].strip():
                    raise DataFormatError(f"{path}:{line_no}: field {key!r} is missing or empty")
            pivot = [record.get("pivot_prompt"), record.get("pivot_response")]
            if (pivot[0] is None) != (pivot[1] is None):
                raise DataFormatError(f"{path}:{line_no}: give both pivot_prompt and pivot_response, or neither")
            examples.append(Example(record["prompt"], record["response"], *pivot))
    if not examples:
        raise DataFormatError(f"{path}: no examples")
    return examples


def examples_from_instructions(table: pd.DataFrame, target: str, pivot: str | None = None) -> list[Example]:
    """Examples of ``target`` from the parallel instruction table, each with its ``pivot``
    counterpart when ``pivot`` is given (ids present in both languages)."""
    langs = [target] + ([pivot] if pivot else [])
    ids = parallel_ids(table, langs)
    if not ids:
        raise DataFormatError(f"no instruction id has rows in all of {langs}")
    target_pairs = pairs_for(table, target, ids)
    pivot_pairs = pairs_for(table, pivot, ids) if pivot else [(None, None)] * len(ids)
    return [Example(p, r, pp, pr) for (p, r), (pp, pr) in zip(target_pairs, pivot_pairs)]


class _Rows(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict[str, TokenizedExample]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, TokenizedExample]:
        return self.rows[index]


def build_rows(tokenizer, examples: Sequence[Example], config: FinetuneConfig) -> list[dict[str, TokenizedExample]]:
    """Tokenized training rows: ``{"target": ...}`` (plain) or ``{"target", "pivot"}`` (pivoted)."""
    options = {"template": config.template, "max_length": config.max_length}
    if config.objective == "pivoted":
        missing = [i for i, e in enumerate(examples) if not e.has_pivot]
        if missing:
            raise DataFormatError(
                f"the pivoted objective needs a pivot counterpart in every example; examples {missing[:5]} lack one"
            )
        return [
            {
                "target": tokenize_pair(tokenizer, e.prompt, e.response, **options),
                "pivot": tokenize_pair(tokenizer, *e.pivot_pair(), **options),
            }
            for e in examples
        ]
    rows = [{"target": tokenize_pair(tokenizer, e.prompt, e.response, **options)} for e in examples]
    rows += [{"target": tokenize_pair(tokenizer, *e.pivot_pair(), **options)} for e in examples if e.has_pivot]
    return rows


class Collator:
    """Left-padded batches (the padding policy of every backend); pivot rows get a ``pivot_`` prefix."""

    def __init__(self, pad: int) -> None:
        self.pad = pad

    def __call__(self, rows: list[dict[str, TokenizedExample]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for side, prefix in (("target", ""), ("pivot", "pivot_")):
            if side in rows[0]:
                enc, labels = collate([r[side] for r in rows], self.pad)
                batch.update({f"{prefix}{k}": v for k, v in enc.model_inputs().items()})
                batch[f"{prefix}labels"] = labels
        return batch


# ---- trainers ---------------------------------------------------------------------------------
class PlainTrainer(Trainer):
    """Next-token loss on the response tokens at the model's output (token mean, as the
    interference probe's default loss)."""

    loss_is_scaled_for_ga = False  # compute_loss returns a mean: the Trainer divides by accumulation steps

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._terms: dict[str, list[float]] = {}

    def _record(self, **terms: torch.Tensor) -> None:
        if self.model is not None and self.model.training:
            for name, value in terms.items():
                self._terms.setdefault(name, []).append(float(value.detach()))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        target = {k: v for k, v in inputs.items() if not k.startswith("pivot_")}
        labels = target.pop("labels")
        loss = lens_loss(model, target, labels)
        self._record(loss_target=loss)
        return (loss, None) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            for name, values in self._terms.items():
                logs[name] = sum(values) / len(values)
            self._terms = {}
        super().log(logs, start_time)


class PivotedTrainer(PlainTrainer):
    """PROM's pivoted objective ``lam · L_{n,e} + L_{N,t}`` (Eq. 3) on parallel batches."""

    def __init__(self, *args, objective: PivotedObjective, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.objective = objective

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        target = {k: v for k, v in inputs.items() if not k.startswith("pivot_")}
        pivot = {k.removeprefix("pivot_"): v for k, v in inputs.items() if k.startswith("pivot_")}
        head = getattr(unwrap(model), "pivot_head", None)
        out = pivoted_loss(model, target, pivot, self.objective, head=head)
        self._record(loss_target=out.target, loss_pivot=out.pivot)
        return (out.total, None) if return_outputs else out.total


class CsvLog(TrainerCallback):
    """Rewrites the tidy training log from the Trainer's history at every log event (the
    history survives a resume, so the file always holds every logged step)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        write_text_atomic(training_log(state.log_history).to_csv(index=False), self.path)


def training_log(history: list[dict[str, float]]) -> pd.DataFrame:
    """Tidy ``step, loss, lr, grad_norm, epoch, loss_target, loss_pivot`` from a Trainer history."""
    rows = [
        {
            "step": h["step"],
            "loss": h["loss"],
            "lr": h.get("learning_rate"),
            "grad_norm": h.get("grad_norm"),
            "epoch": h.get("epoch"),
            "loss_target": h.get("loss_target"),
            "loss_pivot": h.get("loss_pivot"),
        }
        for h in history
        if "loss" in h
    ]
    return pd.DataFrame(rows, columns=list(LOG_COLUMNS)).drop_duplicates("step", keep="last")


# ---- driver -----------------------------------------------------------------------------------
def _prepare_model(model, config: FinetuneConfig):
    if config.objective == "pivoted" and config.pivot_head == "separate":
        model.add_module("pivot_head", PivotHead(model))
    if config.method == "full":
        return model
    from peft import LoraConfig, get_peft_model

    targets = config.lora_targets if isinstance(config.lora_targets, str) else list(config.lora_targets)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
        modules_to_save=["pivot_head"] if hasattr(model, "pivot_head") else None,
    )
    return get_peft_model(model, lora)


def _final_model(model) -> PreTrainedModel:
    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    if hasattr(merged, "pivot_head"):
        del merged.pivot_head
    return merged


def finetune(
    model: str | Path,
    examples: Iterable[Example | Sequence[str]],
    out: str | Path,
    config: FinetuneConfig = FinetuneConfig(),
    *,
    resume: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune ``model`` (embedded name, folder or hub id) on ``examples`` and write the model
    folder ``out`` (see the module docstring). With ``resume``, a finished run is returned as is
    and an interrupted one continues from its last checkpoint; without it, ``out`` is rebuilt."""
    config.check()
    out = Path(out)
    if not resume and out.exists():
        shutil.rmtree(out)
    if resume and (out / DONE_FILE).is_file():
        return FinetuneResult(out, pd.read_csv(out / LOG_FILE), 0.0, None)
    examples = as_examples(examples)
    set_seed(config.seed)
    hf_model, tokenizer, name, source = models.load_hf(model, device=config.device, dtype=config.dtype)
    rows = build_rows(tokenizer, examples, config)
    trainable = _prepare_model(hf_model, config)
    checkpoints = out / "checkpoints"
    args = TrainingArguments(
        output_dir=str(checkpoints),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        warmup_steps=math.ceil(config.warmup_ratio * config.max_steps),
        lr_scheduler_type=config.scheduler,
        weight_decay=config.weight_decay,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        use_cpu=config.device == "cpu",
        remove_unused_columns=False,
        dataloader_pin_memory=False,
        disable_tqdm=not progress,
    )
    trainer_cls = PivotedTrainer if config.objective == "pivoted" else PlainTrainer
    extra = {"objective": config.pivot} if config.objective == "pivoted" else {}
    trainer = trainer_cls(
        model=trainable,
        args=args,
        train_dataset=_Rows(rows),
        data_collator=Collator(pad_id(tokenizer)),
        callbacks=[CsvLog(out / LOG_FILE), *callbacks],
        **extra,
    )
    last = get_last_checkpoint(str(checkpoints)) if resume and checkpoints.is_dir() else None
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start
    final = _final_model(trainer.model)
    final.eval()
    final.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    log = training_log(trainer.state.log_history)
    write_text_atomic(log.to_csv(index=False), out / LOG_FILE)
    record = {
        "base_model": name,
        "base_source": source,
        "n_examples": len(examples),
        "n_rows": len(rows),
        "config": asdict(config),
        "resumed_from": last,
        "train_seconds": seconds,
        "code": code_version(),
    }
    write_text_atomic(json.dumps(record, indent=2, default=str), out / DONE_FILE)
    return FinetuneResult(out, log, seconds, last)
