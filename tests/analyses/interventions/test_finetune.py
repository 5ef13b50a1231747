"""The fine-tuning driver: it lowers the loss, resumes after an interruption, logs PROM's two terms,
writes a loadable model folder; data errors; the CLI."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, TrainerCallback
from typer.testing import CliRunner

from analyses.cli import app
from analyses.interventions.finetune import Example, FinetuneConfig, examples_from_instructions, finetune, load_jsonl
from analyses.interventions.pivoted_loss import PivotedObjective
from analyses.pipelines.prom_fig3 import write_figures
from probes.backend.errors import DataFormatError
from probes.inputs.instruction_data import collate, load_instructions, tokenize_pair
from tests import FIXTURES
from tests.analyses.redraw import assert_redraws_identically
from tests.conftest import tiny_hf_model, tiny_tokenizer

FIXTURE = FIXTURES / "parallel_instructions.csv"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-base")
    tiny_hf_model("llama").save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def _examples() -> list[Example]:
    return examples_from_instructions(load_instructions(FIXTURE), "fr", "en")[:16]


def _mean_loss(folder: Path, examples: list[Example]) -> float:
    """Response-token loss of a saved model on the target pairs, with plain transformers."""
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    enc, labels = collate([tokenize_pair(tiny_tokenizer(), e.prompt, e.response) for e in examples], pad=0)
    with torch.no_grad():
        return model(**enc.model_inputs(), labels=labels).loss.item()


class _Interrupt(Exception):
    pass


class _StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise _Interrupt


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_few_steps_lower_the_loss_and_write_a_loadable_folder(base, tmp_path, method):
    examples = _examples()
    config = FinetuneConfig(
        method=method,
        max_steps=12,
        batch_size=4,
        learning_rate=1e-2 if method == "lora" else 2e-3,
        logging_steps=4,
        save_steps=100,
    )
    result = finetune(base, examples, tmp_path / "out", config, progress=False)
    assert _mean_loss(result.model_dir, examples) < _mean_loss(base, examples) - 0.3
    log = result.log
    assert list(log.columns)[:3] == ["step", "loss", "lr"] and log["step"].max() == 12
    assert (tmp_path / "out" / "training_log.csv").is_file() and (tmp_path / "out" / "tokenizer_config.json").is_file()
    assert json.loads((tmp_path / "out" / "finetune.json").read_text())["config"]["method"] == method
    assert not any(
        k.startswith("base_model") or "lora" in k
        for k in AutoModelForCausalLM.from_pretrained(result.model_dir).state_dict()
    )


def test_an_interrupted_run_resumes_to_the_same_model(base, tmp_path):
    examples = _examples()
    config = FinetuneConfig(method="full", max_steps=8, batch_size=4, learning_rate=2e-3, logging_steps=1, save_steps=3)
    straight = finetune(base, examples, tmp_path / "straight", config, progress=False)
    with pytest.raises(_Interrupt):
        finetune(base, examples, tmp_path / "resumed", config, callbacks=[_StopAt(5)], progress=False)
    assert not (tmp_path / "resumed" / "finetune.json").exists()
    resumed = finetune(base, examples, tmp_path / "resumed", config, progress=False)
    assert resumed.resumed_from is not None and resumed.resumed_from.endswith("checkpoint-3")
    assert resumed.log["step"].tolist() == list(range(1, 9))
    a = AutoModelForCausalLM.from_pretrained(straight.model_dir).state_dict()
    b = AutoModelForCausalLM.from_pretrained(resumed.model_dir).state_dict()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name
    again = finetune(base, examples, tmp_path / "resumed", config, progress=False)  # finished: returned as is
    assert again.seconds == 0 and len(again.log) == 8


@pytest.mark.parametrize("pivot_head", ["own", "separate"])
def test_pivoted_run_logs_both_terms(base, tmp_path, pivot_head):
    config = FinetuneConfig(
        objective="pivoted",
        method="lora",
        max_steps=4,
        batch_size=2,
        learning_rate=1e-2,
        logging_steps=1,
        pivot=PivotedObjective(layer=1, alpha=0.1, lam=0.5),
        pivot_head=pivot_head,
    )
    result = finetune(base, _examples(), tmp_path / "out", config, progress=False)
    log = result.log
    assert log[["loss_target", "loss_pivot"]].notna().all().all()
    assert (log["loss"] - (0.5 * log["loss_pivot"] + log["loss_target"])).abs().max() < 1e-3
    state = AutoModelForCausalLM.from_pretrained(result.model_dir).state_dict()
    assert not any("pivot_head" in k for k in state)  # the separate head is training-only


def test_data_errors_are_clear(base, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a"}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad.jsonl:2: field 'response'"):
        load_jsonl(bad)
    bad.write_text('{"prompt": "a", "response": "b", "pivot_prompt": "c"}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match="both pivot_prompt and pivot_response"):
        load_jsonl(bad)
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad.jsonl:1, column 2"):
        load_jsonl(bad)
    with pytest.raises(DataFormatError, match="needs a pivot counterpart"):
        finetune(
            base, [("a prompt", "a response")], tmp_path / "x", FinetuneConfig(objective="pivoted"), progress=False
        )
    with pytest.raises(ValueError, match="unknown objective"):
        finetune(base, [("a", "b")], tmp_path / "y", FinetuneConfig(objective="pivot"), progress=False)


def test_cli_trains_from_a_jsonl_file(base, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(
                {
                    "prompt": e.prompt,
                    "response": e.response,
                    "pivot_prompt": e.pivot_prompt,
                    "pivot_response": e.pivot_response,
                }
            )
            for e in _examples()
        ),
        encoding="utf-8",
    )
    out = tmp_path / "model"
    result = CliRunner().invoke(
        app,
        [
            "--model",
            str(base),
            "--out",
            str(out),
            "finetune",
            "--data",
            str(data),
            "--objective",
            "pivoted",
            "--layer",
            "1",
            "--steps",
            "2",
            "--train-batch-size",
            "2",
            "--logging-steps",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "trained 2 steps" in result.output and (out / "config.json").is_file()


@pytest.mark.slow
def test_embedded_gemma_pivoted_lora_steps(tmp_path):
    """Two pivoted LoRA steps on gemma-3-270m (read-out at block 13 of 18); the folder loads."""
    from probes.backend import load

    examples = examples_from_instructions(load_instructions(), "sw", "en")[:4]
    config = FinetuneConfig(objective="pivoted", max_steps=2, batch_size=1, max_length=48, logging_steps=1)
    result = finetune("gemma-3-270m", examples, tmp_path / "gemma", config, progress=False)
    assert result.log["loss_pivot"].notna().all() and torch.isfinite(torch.tensor(result.log["loss"].to_numpy())).all()
    assert load(result.model_dir).n_layers == 18


def test_fig3_driver_trains_both_objectives_and_measures_three_models(base, tmp_path):
    from analyses.pipelines.prom_fig3 import run_fig3

    config = FinetuneConfig(
        max_steps=2, batch_size=2, learning_rate=1e-2, logging_steps=1, pivot=PivotedObjective(layer=1)
    )
    results = run_fig3(
        tmp_path / "fig3",
        base=str(base),
        data=FIXTURE,
        target="fr",
        pivot="en",
        config=config,
        k=1,
        batch_size=2,
        max_length=64,
        limit=8,
        progress=False,
    )
    assert results.summary["model"].tolist() == ["base", "after plain", "after pivoted"]
    assert results.curves["n"].between(1, 8).all()  # the lens on the first 8 prompts only
    assert set(results.logs["run"]) == {"plain", "pivoted"} and set(results.curves["model"]) == set(
        results.summary["model"]
    )
    for name in ("fig3_pivot_probability.html", "fig3_interference.html", "summary.csv", "pivoted/config.json"):
        assert (tmp_path / "fig3" / name).is_file(), name
    assert "n = 1" in (tmp_path / "fig3" / "fig3_interference.html").read_text()
    redraw = partial(write_figures, model=Path(base).name)
    assert_redraws_identically(tmp_path / "fig3", redraw, tmp_path / "scratch")
