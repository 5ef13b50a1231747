"""The exit probe: its last layer is the model's own prediction, batched and resumable."""

from __future__ import annotations

import functools

import pandas as pd
import pytest
import torch

from probes.backend.errors import TokenizerVocabularyError
from probes.backend.models import load_hf
from probes.backend.store import ResultsStore
from probes.exit_accuracy import COLUMNS, exit_accuracy, exit_run
from probes.inputs.tasks import (
    TASKS,
    TaskData,
    TaskSpec,
    Template,
    answer_token_ids,
    load_hub_task,
    task_prompts,
    validate,
)
from probes.registry import PROBES
from tests.conftest import embedded, tiny_backend, tiny_hf_model, tiny_tokenizer

HUB_FIXTURES = "tests/fixtures/hub"

# answers that are single tokens of the tiny test tokenizer
TINY_SPEC = TaskSpec(
    "tiny", "classify", {"a": " the", "b": " river", "c": " white"}, {"en": Template("Pick a word.", "Text", "Label")}
)
TINY_TEXTS = [
    "the cloud is white",
    "le nuage est blanc",
    "die Wolke ist weiß",
    "облако белое",
    "云是白色的",
    "the river is long",
    "la rivière est longue",
    "der Fluss ist lang",
    "река длинная",
]


def tiny_data() -> TaskData:
    frame = pd.DataFrame(
        {
            "item": [f"x{i}" for i in range(len(TINY_TEXTS))],
            "lang": "en",
            "text": TINY_TEXTS,
            "label": [["a", "b", "c"][i % 3] for i in range(len(TINY_TEXTS))],
        }
    )
    return TaskData(TINY_SPEC, validate(TINY_SPEC, frame, "tiny"), "tiny")


def own_predictions(model, tokenizer, prompts, answer_ids: list[int], labels: list[str]) -> pd.DataFrame:
    """The model's own answer per prompt: a plain Hugging Face forward pass, one unpadded prompt at a time."""
    rows = []
    for prompt in prompts:
        ids = torch.tensor([tokenizer(prompt.text)["input_ids"]])
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=ids).logits[0, -1].float(), -1)
        top = probs.topk(2)
        option = labels[int(probs[answer_ids].argmax())]
        rows.append(
            {
                "item": prompt.item,
                "pred_id": int(top.indices[0]),
                "top_prob": float(top.values[0]),
                "gap": float(top.values[0] - top.values[1]),
                "pred_option": option,
                "correct": int(top.indices[0]) == answer_ids[labels.index(prompt.gold)],
                "correct_options": option == prompt.gold,
            }
        )
    return pd.DataFrame(rows).set_index("item")


def assert_last_layer_is_the_model(table: pd.DataFrame, reference: pd.DataFrame, atol: float = 1e-4) -> None:
    last = table[table["layer"] == table["layer"].max()].set_index("item").loc[reference.index]
    assert (last["pred_id"] == reference["pred_id"]).all()
    assert (last["pred_option"] == reference["pred_option"]).all()
    assert last["correct"].mean() == reference["correct"].mean()  # the model's own accuracy
    assert last["correct_options"].mean() == reference["correct_options"].mean()
    assert last["gap"].to_numpy() == pytest.approx(reference["gap"].to_numpy(), abs=atol)
    assert last["top_prob"].to_numpy() == pytest.approx(reference["top_prob"].to_numpy(), abs=atol)


@pytest.mark.parametrize(("backend_name", "demos"), [("transformer-lens", "fixed"), ("nnsight", "per-item")])
def test_last_layer_accuracy_is_the_models_own(tiny_kind, backend_name, demos):
    backend = tiny_backend(tiny_kind, backend=backend_name)
    data = tiny_data()
    table = exit_accuracy(backend, "tiny", "en", shots=2, n=None, data=data, batch_size=4, progress=False, demos=demos)
    assert list(table.columns) == list(COLUMNS)
    asked = len(TINY_TEXTS) - (2 if demos == "fixed" else 0)  # fixed demonstrations are never asked
    assert len(table) == asked * backend.n_layers and set(table["demos"]) == {demos}
    labels = TINY_SPEC.labels
    answer_ids = [answer_token_ids(TINY_SPEC, tiny_tokenizer(), "en")[label] for label in labels]
    prompts = task_prompts(data, "en", shots=2, seed=0, demos=demos)
    reference = own_predictions(tiny_hf_model(tiny_kind), tiny_tokenizer(), prompts, answer_ids, labels)
    assert_last_layer_is_the_model(table, reference)


def test_features_are_consistent():
    table = exit_accuracy(tiny_backend("llama"), "tiny", "en", shots=1, data=tiny_data(), progress=False)
    assert ((table["gap"] >= 0) & (table["gap"] <= table["top_prob"])).all()
    assert ((table["gap_options"] >= 0) & (table["top_prob_options"] >= 1 / 3 - 1e-9)).all()
    assert (table["p_gold"] <= table["p_options"] + 1e-12).all() and (table["p_options"] <= 1 + 1e-9).all()
    assert (table["correct"] == (table["pred_id"] == table["gold_id"])).all()
    assert PROBES.get("exit").run is exit_accuracy


def test_interrupted_run_resumes_with_the_missing_items(tmp_path, monkeypatch):
    data = tiny_data()
    fresh = exit_accuracy(tiny_backend("llama"), "tiny", "en", shots=1, data=data, batch_size=3, progress=False)
    backend = tiny_backend("llama")
    store = ResultsStore(tmp_path)

    def run():
        return exit_run(store, backend, data, "en", shots=1, n=100, seed=0)

    calls = {"n": 0}
    lens = backend.lens

    def failing_lens(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return lens(*args, **kwargs)

    monkeypatch.setattr(backend, "lens", failing_lens)
    with pytest.raises(KeyboardInterrupt):
        exit_accuracy(backend, "tiny", "en", shots=1, data=data, batch_size=3, run=run(), progress=False)
    calls["n"] = 10  # no more failures; count the batches of the second run
    resumed = exit_accuracy(backend, "tiny", "en", shots=1, data=data, batch_size=3, run=run(), progress=False)
    assert calls["n"] == 10 + 2  # 9 items in batches of 3: one was stored, two remained
    pd.testing.assert_frame_equal(
        resumed.drop(columns=["n_tokens"]), fresh.drop(columns=["n_tokens"]), check_dtype=False
    )
    again = exit_accuracy(backend, "tiny", "en", shots=1, data=data, batch_size=3, run=run(), progress=False)
    assert calls["n"] == 12 and len(again) == len(fresh)


def test_multi_token_answers_are_refused_with_a_clear_error():
    frame = load_hub_task("sentiment", f"{HUB_FIXTURES}/sst2.parquet")
    with pytest.raises(TokenizerVocabularyError, match="not a single token"):
        exit_accuracy(tiny_backend("llama"), "sentiment", "en", data=frame, progress=False)


@functools.cache
def plain_gemma():
    return load_hf("gemma-3-270m")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sentiment", "mcqa"])
def test_last_layer_accuracy_is_the_models_own_on_gemma(task):
    backend = embedded("gemma-3-270m")
    fixture = {"sentiment": "sst2", "mcqa": "mmlu"}[task]
    data = load_hub_task(task, f"{HUB_FIXTURES}/{fixture}.parquet")
    table = exit_accuracy(backend, task, "en", shots=2, data=data, batch_size=4, progress=False)
    assert table["layer"].nunique() == backend.n_layers == 18
    model, tokenizer, _, _ = plain_gemma()
    spec = TASKS[task]
    answer_ids = [answer_token_ids(spec, tokenizer, "en")[label] for label in spec.labels]
    reference = own_predictions(model, tokenizer, task_prompts(data, "en", shots=2), answer_ids, spec.labels)
    assert_last_layer_is_the_model(table, reference, atol=1e-3)


NUMERIC = ["gap", "top_prob", "gap_options", "top_prob_options", "p_gold", "p_options"]


def assert_same_exit_table(cached: pd.DataFrame, uncached: pd.DataFrame, atol: float = 1e-5) -> None:
    """The prefix cache changes no table value beyond ``atol``, and no discrete one at all."""
    exact = [column for column in COLUMNS if column not in NUMERIC]
    pd.testing.assert_frame_equal(cached[exact], uncached[exact])
    assert (cached[NUMERIC] - uncached[NUMERIC]).abs().to_numpy().max() <= atol


def exit_with_and_without_the_prefix_cache(backend, monkeypatch, *args, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The exit table with the shared instruction's KV cache reused (checked to be), and encoded in full."""
    made = []
    shared_prefix = backend.shared_prefix

    def recorded(ids):
        made.append(shared_prefix(ids))
        return made[-1]

    monkeypatch.setattr(backend, "shared_prefix", recorded)
    cached = exit_accuracy(backend, *args, progress=False, **kwargs)
    assert len(made[0].ids) > 0 and made[0].cache is not None
    monkeypatch.setattr(backend, "reuses_prefix_cache", False)
    uncached = exit_accuracy(backend, *args, progress=False, **kwargs)
    assert made[1].cache is None
    return cached, uncached


@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
def test_the_shared_instructions_cache_leaves_the_table_unchanged(tiny_kind, backend_name, monkeypatch):
    backend = tiny_backend(tiny_kind, backend=backend_name)
    cached, uncached = exit_with_and_without_the_prefix_cache(
        backend, monkeypatch, "tiny", "en", shots=2, n=None, data=tiny_data(), batch_size=4
    )
    assert_same_exit_table(cached, uncached)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gemma-3-270m", "smollm2-135m"])
def test_the_shared_instructions_cache_leaves_the_table_unchanged_on_embedded_models(name, monkeypatch):
    backend = embedded(name)
    cached, uncached = exit_with_and_without_the_prefix_cache(
        backend, monkeypatch, "sentiment", "ru", n=6, batch_size=3
    )
    assert_same_exit_table(cached, uncached)
