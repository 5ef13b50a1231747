"""Freeze demonstration (Zhang et al. 2024, Sec. 3.5; spec 4.3): further training on one
language with and without the core region frozen by restore, and perplexity of every language
before and after (catastrophic forgetting of the others).

Training goes through the fine-tuning driver (:func:`analyses.interventions.finetune.finetune`,
full fine-tuning, ``plain`` template): each training sentence is split into a prompt (its first
third of words, or characters for scripts without spaces) and a response (the rest) scored by
the next-token loss, so the model is trained on text of the one language. The freeze is the
:class:`~analyses.interventions.regions.RegionFreezeCallback`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from analyses.interventions.finetune import Example, FinetuneConfig, finetune
from analyses.interventions.regions import RegionFreezeCallback
from analyses.stats.regions import Masks
from probes.backend import load
from probes.perplexity import run_perplexity


@dataclass(frozen=True)
class FreezeDemoConfig:
    steps: int = 30
    batch_size: int = 8
    learning_rate: float = 2e-4
    max_tokens: int = 48
    seed: int = 0


def training_examples(texts: Sequence[str]) -> list[Example]:
    """Each sentence as (prompt = its first third, response = the rest)."""
    examples = []
    for text in texts:
        words = text.split()
        if len(words) >= 3:
            cut = len(words) // 3
            examples.append(Example(" ".join(words[:cut]), " ".join(words[cut:])))
        elif len(text) >= 6:
            cut = len(text) // 3
            examples.append(Example(text[:cut], text[cut:]))
    if not examples:
        raise ValueError("no training sentence is long enough to split into a prompt and a response")
    return examples


def _region_drift(model_dir: Path, reference: Mapping[str, torch.Tensor], masks: Masks) -> float:
    """Largest absolute change of a region entry (``reference``: its values before training) in
    the saved model; 0 when the freeze held. Norms are left free by the freeze, so skipped."""
    from safetensors import safe_open

    drift = 0.0
    for file in model_dir.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open is not iterable)
                if name in masks and "norm" not in name and masks[name].any():
                    after = handle.get_tensor(name)[masks[name]]
                    drift = max(drift, float((after - reference[name]).abs().max()))
    return drift


def freeze_demo(
    model: str,
    train_lang: str,
    train_texts: Sequence[str],
    heldout: Mapping[str, Sequence[str]],
    masks: Masks,
    work_dir: Path,
    config: FreezeDemoConfig = FreezeDemoConfig(),
    *,
    eval_batch_size: int = 8,
    progress: bool = True,
) -> pd.DataFrame:
    """Rows ``stage (before/free/frozen), train_lang, lang, perplexity, ...`` plus the region's
    largest drift after training (``region_drift``: 0 for the frozen run)."""
    examples = training_examples(train_texts)
    base = load(model)
    reference = {n: p.detach()[masks[n]].clone() for n, p in base.named_parameters().items() if n in masks}
    frames = [
        run_perplexity(base, heldout, batch_size=eval_batch_size, max_tokens=config.max_tokens, progress=False).assign(
            stage="before", region_drift=0.0, train_seconds=0.0
        )
    ]
    del base
    settings = FinetuneConfig(
        method="full",
        template="plain",
        max_steps=config.steps,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        max_length=config.max_tokens,
        seed=config.seed,
        logging_steps=5,
        save_steps=10 * config.steps,
    )
    for stage, callbacks in (("free", []), ("frozen", [RegionFreezeCallback(masks)])):
        result = finetune(model, examples, work_dir / stage, settings, callbacks=callbacks, progress=progress)
        trained = load(result.model_dir)
        table = run_perplexity(
            trained, heldout, batch_size=eval_batch_size, max_tokens=config.max_tokens, progress=False
        )
        frames.append(
            table.assign(
                stage=stage,
                region_drift=_region_drift(result.model_dir, reference, masks),
                train_seconds=result.seconds,
            )
        )
        del trained
    out = pd.concat(frames, ignore_index=True).assign(
        train_lang=train_lang,
        n_train=len(examples),
        n_frozen=int(sum(int(m.sum()) for n, m in masks.items() if "norm" not in n)),
        **{k: v for k, v in asdict(config).items()},
    )
    return out.drop(columns=["item"])
