"""The confusion probe: confusion-point rule on constructed token sequences, per-step statistics
checked against an independent teacher-forced forward pass, the results store, and (slow)
generation on gemma-3-270m."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from probes.backend.store import ResultsStore, provenance
from probes.confusion import (
    CONFUSION_COLUMNS,
    completion_extent,
    confusion_point,
    render,
    run_confusion,
    run_confusion_lens,
)
from probes.inputs.confusion_data import ConfusionPrompt, load_authored, select
from tests.conftest import embedded, tiny_backend, tiny_hf_model


@pytest.mark.parametrize(
    ("pieces", "lang", "expected", "why"),
    [
        (["天空", "是", "，", " blue", "的"], "zh", 3, "zh: the first token starting with an ASCII letter"),
        (["天空", "2", "Python"], "zh", 2, "zh: any ASCII-letter token, English or not"),
        ([" Le", " ciel", " est", " However"], "fr", 3, "Le is French to fastText, However is English"),
        ([" Небо", " -", " ", "–", " important"], "ru", 4, "punctuation and empty pieces are skipped"),
        ([" Python", " the"], "ru", 1, "Python scores <= 0.3 (unknown), 'the' is English"),
        ([" Небо", " голубое"], "ru", None, "no English token"),
        ([" 空", "ー", "とても"], "ja", None, "no ASCII letter at all"),
    ],
)
def test_confusion_point_rule(pieces, lang, expected, why):
    assert confusion_point(pieces, lang) == expected, why


PROMPTS = [
    ConfusionPrompt("monolingual", "t", "zh", "云是白色的", 0),
    ConfusionPrompt("monolingual", "t", "fr", "le nuage est blanc", 0),
    ConfusionPrompt(
        "crosslingual", "t", "ru", "the cloud is white. Reply in Russian.", 0, "End", "reply in {language}"
    ),
]


@pytest.fixture(scope="module")
def tiny():
    return tiny_backend("llama")


@pytest.fixture(scope="module")
def greedy_steps(tiny) -> pd.DataFrame:
    return run_confusion(tiny, PROMPTS, max_new_tokens=12, temperature=0.0, progress=False, batch_size=2)


def test_table_has_the_documented_columns_and_one_row_per_step(greedy_steps):
    assert list(greedy_steps.columns) == list(CONFUSION_COLUMNS)
    for _, steps in greedy_steps.groupby("item"):
        assert steps["step"].tolist() == list(range(len(steps)))
        inside = steps["in_completion"].tolist()
        assert inside == sorted(inside, reverse=True)  # a prefix of the steps
        assert steps["is_confusion_point"].sum() == int(steps["has_cp"].iloc[0])
        assert steps["completion"].nunique() == 1


def test_greedy_tokens_are_the_recorded_top_tokens(greedy_steps):
    assert (greedy_steps["p_token"] == greedy_steps["top_prob"]).all()


def test_step_statistics_match_a_teacher_forced_forward_pass(tiny, greedy_steps):
    reference = tiny_hf_model("llama")  # same seed, separate copy
    vocab = reference.config.vocab_size
    for prompt in PROMPTS:
        steps = greedy_steps[greedy_steps["item"] == prompt.item].sort_values("step")
        prompt_ids = render(tiny, prompt).ids
        ids = torch.tensor([prompt_ids + steps["token_id"].tolist()])
        with torch.no_grad():
            logits = reference(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1]
        probs = torch.softmax(logits.float(), -1)
        entropy = -(probs * probs.log2()).sum(-1)
        nucleus = (probs.sort(-1, descending=True).values.cumsum(-1) < 0.75).sum(-1) + 1
        assert torch.allclose(torch.tensor(steps["entropy_bits"].to_numpy(), dtype=torch.float32), entropy, atol=2e-3)
        assert steps["nucleus_size"].tolist() == nucleus.tolist()
        assert steps["token_id"].tolist() == probs.argmax(-1).tolist()
        assert ((steps["entropy_bits"] >= 0) & (steps["entropy_bits"] <= math.log2(vocab) + 1e-4)).all()


def test_beam_search_rows_hold_the_returned_beams_statistics(tiny):
    steps = run_confusion(tiny, PROMPTS[:2], max_new_tokens=8, temperature=0.0, num_beams=3, progress=False)
    assert list(steps.columns) == list(CONFUSION_COLUMNS)
    inside = steps[steps["in_completion"]]
    assert inside["entropy_bits"].notna().all() and (inside["nucleus_size"] >= 1).all()
    # the chosen token is among the recorded top tokens of its own beam's distribution, with its probability
    assert ((inside["p_token"] > 0) & (inside["p_token"] <= inside["top_prob"] + 1e-6)).all()


def test_confusion_points_follow_the_rule_on_the_generated_pieces(tiny):
    steps = run_confusion(
        tiny,
        PROMPTS,
        max_new_tokens=16,
        temperature=1.0,
        top_p=1.0,
        seed=3,
        cp_error_types=("full_error", "partial_error", "word_error", "skipped", "correct"),
        progress=False,
    )
    for item, rows in steps.groupby("item"):
        rows = rows.sort_values("step")
        expected = confusion_point(rows[rows["in_completion"]]["token"].tolist(), rows["lang"].iloc[0])
        got = rows.index[rows["is_confusion_point"]]
        assert (rows.loc[got, "step"].tolist() or [None]) == [expected], item


def test_only_the_chosen_error_types_get_confusion_points(tiny):
    steps = run_confusion(
        tiny, PROMPTS, max_new_tokens=16, temperature=1.0, top_p=1.0, seed=3, cp_error_types=(), progress=False
    )
    assert not steps["is_confusion_point"].any() and not steps["has_cp"].any()


def test_completion_ends_at_eos_and_at_the_next_question(tiny):
    tok = tiny.tokenizer
    answer, question = tok("le nuage")["input_ids"], tok("\nQ: the")["input_ids"]
    completion, generated, kept = completion_extent(tiny, answer + question + [tok.eos_token_id] + answer)
    assert completion == "le nuage\nQ: the"
    assert generated == len(answer) + len(question) + 1  # through the EOS
    assert tok.decode(answer + question[: kept - len(answer)]).find("\nQ:") == -1
    assert kept >= len(answer) and tok.decode((answer + question)[: kept + 1]).startswith("le nuage\n")


def test_runs_resume_from_the_store(tmp_path, tiny, monkeypatch):
    store = ResultsStore(tmp_path)
    prov = provenance("confusion", {"max_new_tokens": 6}, tiny.describe())
    first = run_confusion(tiny, PROMPTS[:2], max_new_tokens=6, run=store.run(prov), progress=False)
    calls = []
    original = tiny.generate
    monkeypatch.setattr(tiny, "generate", lambda enc, **kw: calls.append(enc.batch_size) or original(enc, **kw))
    both = run_confusion(tiny, PROMPTS, max_new_tokens=6, run=store.run(prov), progress=False)
    assert calls == [1]  # only the new prompt is generated
    assert set(both["item"]) == {p.item for p in PROMPTS}
    again = run_confusion(tiny, PROMPTS[:1], max_new_tokens=6, run=store.run(prov), progress=False)
    assert calls == [1] and set(again["item"]) == {PROMPTS[0].item}  # the table holds the prompts asked for
    pd.testing.assert_frame_equal(
        first[first["item"] == PROMPTS[0].item].reset_index(drop=True), again.reset_index(drop=True)
    )


def test_lens_at_confusion_points_matches_a_direct_forward(tiny, greedy_steps):
    steps = greedy_steps.copy()
    item = PROMPTS[1].item
    cp_row = steps.index[(steps["item"] == item) & (steps["step"] == 3)][0]
    steps["is_confusion_point"] = steps.index == cp_row  # a constructed confusion point
    lens = run_confusion_lens(tiny, steps, top_k=3, progress=False)
    assert sorted(lens["layer"]) == list(range(tiny.n_layers)) and (lens["step"] == 3).all()
    prefix = steps[steps["item"] == item].sort_values("step")["token_id"].tolist()[:3]
    ids = torch.tensor([render(tiny, PROMPTS[1]).ids + prefix])
    with torch.no_grad():
        probs = torch.softmax(tiny_hf_model("llama")(input_ids=ids).logits[0, -1].float(), -1)
    cp_token = int(steps.loc[cp_row, "token_id"])
    last = lens[lens["layer"] == tiny.n_layers - 1].iloc[0]
    assert last["p_cp_token"] == pytest.approx(float(probs[cp_token]), abs=1e-5)
    assert last["cp_token_rank"] == int((probs > probs[cp_token]).sum())
    assert last["p_cp_token"] == pytest.approx(steps.loc[cp_row, "p_token"], abs=1e-5)  # = the generation's own


@pytest.mark.slow
def test_gemma_generation_statistics_and_lens_agree():
    backend = embedded("gemma-3-270m")
    prompts = select(load_authored("monolingual"), ["zh"], 1) + select(load_authored("crosslingual"), ["fr", "ja"], 1)
    steps = run_confusion(backend, prompts, max_new_tokens=24, temperature=0.0, progress=False)
    assert set(steps["item"]) == {p.item for p in prompts}
    assert (steps["p_token"] == steps["top_prob"]).all()
    first = steps.groupby("item").first()
    assert first.loc[prompts[0].item, "completion"].strip()  # greedy output is not empty
    # the confusion points' lens readout at the last layer is the distribution generation sampled from
    if steps["is_confusion_point"].any():
        lens = run_confusion_lens(backend, steps, progress=False)
        last = lens[lens["layer"] == backend.n_layers - 1].set_index("item")["p_cp_token"]
        recorded = steps[steps["is_confusion_point"]].set_index("item")["p_token"]
        assert (last - recorded.reindex(last.index)).abs().max() < 1e-3
    # generation through the backend equals plain greedy generation of the same weights and batch
    from probes.backend.models import load_hf

    plain, *_ = load_hf("gemma-3-270m")
    rendered = sorted((render(backend, p) for p in prompts), key=lambda r: (len(r.ids), r.prompt.item))
    enc = backend.encode([r.ids for r in rendered])
    with torch.no_grad():
        out = plain.generate(**enc.model_inputs(), max_new_tokens=24, do_sample=False, pad_token_id=backend.pad_id)
    for b, r in enumerate(rendered):
        got = steps[steps["item"] == r.prompt.item].sort_values("step")["token_id"].tolist()
        assert got == out[b, enc.input_ids.shape[1] :].tolist()[: len(got)], r.prompt.item
