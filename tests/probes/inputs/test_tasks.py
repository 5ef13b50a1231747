"""Task loaders (authored CSVs and SST-2 / AG News / MMLU in the hub layout) and prompt building."""

from __future__ import annotations

import pandas as pd
import pytest

from probes.backend.errors import DataFormatError, UnknownLanguageError
from probes.inputs.tasks import (
    TASKS,
    TASKS_DIR,
    answer_token_ids,
    load_hub_task,
    load_task,
    select_items,
    task_prompts,
)
from tests.conftest import EMBEDDED_MODELS, embedded

HUB = "tests/fixtures/hub"


def test_sst2_layout_maps_to_sentiment():
    data = load_hub_task("sentiment", f"{HUB}/sst2.parquet")
    raw = pd.read_parquet(f"{HUB}/sst2.parquet")
    assert list(data.frame[["item", "lang", "text", "label"]].columns) == ["item", "lang", "text", "label"]
    assert data.frame["label"].tolist() == [["negative", "positive"][i] for i in raw["label"]]
    assert data.frame["item"].tolist() == [f"sst2-{i}" for i in raw["idx"]]
    assert (data.frame["lang"] == "en").all() and data.files == [f"{HUB}/sst2.parquet"]


def test_ag_news_layout_maps_to_topic():
    data = load_hub_task("topic", f"{HUB}/ag_news.parquet")
    raw = pd.read_parquet(f"{HUB}/ag_news.parquet")
    names = ["world", "sports", "business", "science"]  # World, Sports, Business, Sci/Tech
    assert data.frame["label"].tolist() == [names[i] for i in raw["label"]]
    assert data.frame["text"].tolist() == raw["text"].tolist()


def test_mmlu_layout_maps_to_mcqa():
    data = load_hub_task("mcqa", f"{HUB}/mmlu.parquet")
    raw = pd.read_parquet(f"{HUB}/mmlu.parquet")
    first = data.frame.iloc[1]
    assert [first[c] for c in "ABCD"] == list(raw["choices"].iloc[1])
    assert data.frame["answer"].tolist() == ["ABCD"[i] for i in raw["answer"]]
    assert data.frame["label"].tolist() == data.frame["answer"].tolist()


def test_unlabelled_split_is_refused(tmp_path):
    raw = pd.read_parquet(f"{HUB}/sst2.parquet").assign(label=-1)
    raw.to_parquet(tmp_path / "test.parquet")
    with pytest.raises(DataFormatError, match="unlabelled"):
        load_hub_task("sentiment", tmp_path / "test.parquet")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns=["label"]), "missing columns"),
        (lambda f: f.assign(label=["positive", "neutral", "negative"]), "line 3: label 'neutral'"),
        (lambda f: f.assign(item=["1", "1", "2"]), "line 3: item '1' appears twice"),
        (lambda f: f.assign(text=["good", "", "bad"]), "line 3: column 'text' is empty"),
    ],
)
def test_malformed_task_files_name_the_line(tmp_path, edit, message):
    frame = pd.DataFrame(
        {
            "item": ["1", "2", "3"],
            "lang": "en",
            "text": ["good", "fine", "bad"],
            "label": ["positive", "positive", "negative"],
        }
    )
    path = tmp_path / "sentiment.csv"
    edit(frame).to_csv(path, index=False)
    with pytest.raises(DataFormatError, match=message):
        load_task("sentiment", path)


def _parallel_csv(tmp_path):
    rows = [
        {"item": f"{i:03d}", "lang": lang, "text": f"{lang} text {i}", "label": ["positive", "negative"][i % 2]}
        for i in range(12)
        for lang in ("en", "fr")
    ]
    path = tmp_path / "sentiment.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return load_task("sentiment", path)


def test_k_shot_prompts_draw_other_items_with_a_seed(tmp_path):
    data = _parallel_csv(tmp_path)
    prompts = task_prompts(data, "fr", shots=3, n=5, seed=1, demos="per-item")
    assert len(prompts) == 5
    for prompt in prompts:
        assert len(prompt.demos) == 3 and prompt.item not in prompt.demos
        assert prompt.text.startswith(TASKS["sentiment"].templates["fr"].instruction)
        assert prompt.text.count("\nSentiment: ") == 3 and prompt.text.endswith("\nSentiment:")
        assert f"Avis: fr text {int(prompt.item)}\nSentiment:" in prompt.text
        assert "en text" not in prompt.text
    assert prompts == task_prompts(data, "fr", shots=3, n=5, seed=1, demos="per-item")
    assert [p.demos for p in prompts] != [
        p.demos for p in task_prompts(data, "fr", shots=3, n=5, seed=2, demos="per-item")
    ]
    # the same items in every language of a parallel data set
    assert [p.item for p in prompts] == [
        p.item for p in task_prompts(data, "en", shots=3, n=5, seed=1, demos="per-item")
    ]
    # a prompt does not depend on which other items run
    subset = {p.item: p for p in task_prompts(data, "fr", shots=3, n=None, seed=1, demos="per-item")}
    assert all(subset[p.item] == p for p in prompts)


def test_fixed_demonstrations_open_every_prompt_and_are_never_asked(tmp_path):
    data = _parallel_csv(tmp_path)
    prompts = task_prompts(data, "fr", shots=2, n=None, seed=1)
    demos = {p.demos for p in prompts}
    assert len(demos) == 1
    (shown,) = demos
    assert len(shown) == 2 and not set(shown) & {p.item for p in prompts}
    assert len(prompts) == len(data.rows("fr")) - 2
    gold = data.rows("fr").set_index("item")["label"]
    assert gold[list(shown)].nunique() == 2  # one demonstration of each label
    prefix = prompts[0].text.rsplit("\n\n", 1)[0]
    assert all(p.text.rsplit("\n\n", 1)[0] == prefix for p in prompts)  # one shared prefix
    # the same demonstrations (translated) in every language of a parallel set, another set for another seed
    assert task_prompts(data, "en", shots=2, n=None, seed=1)[0].demos == shown
    assert task_prompts(data, "fr", shots=2, n=None, seed=2)[0].demos != shown
    # a prompt does not depend on which other items run
    subset = {p.item: p for p in prompts}
    assert all(subset[p.item] == p for p in task_prompts(data, "fr", shots=2, n=4, seed=1))
    with pytest.raises(ValueError, match="demos must be one of fixed, per-item"):
        task_prompts(data, "fr", shots=2, demos="shared")


def test_zero_shot_prompt_and_mcqa_layout():
    data = load_hub_task("mcqa", f"{HUB}/mmlu.parquet")
    prompt = task_prompts(data, "en", shots=0)[1]
    assert prompt.demos == ()
    assert prompt.text == (
        "Answer each multiple-choice question with the letter of the correct option.\n\n"
        "Question: What is the capital of France?\nA. Berlin\nB. Madrid\nC. Paris\nD. Rome\nAnswer:"
    )


def test_bad_requests_are_refused(tmp_path):
    data = _parallel_csv(tmp_path)
    with pytest.raises(DataFormatError, match="no sentiment items in 'de'"):
        task_prompts(data, "de")
    with pytest.raises(UnknownLanguageError):
        task_prompts(data, "xx")
    with pytest.raises(DataFormatError, match="no prompt template for 'fa'"):
        TASKS["sentiment"].template("fa")  # registered, but no data language
    with pytest.raises(ValueError, match="shots must be between 0 and 11"):
        task_prompts(data, "en", shots=12)
    assert len(select_items(data, "en", 100)) == 12


@pytest.mark.slow
@pytest.mark.parametrize("model", EMBEDDED_MODELS)
def test_answers_are_single_tokens_in_both_embedded_tokenizers(model):
    tokenizer = embedded(model).tokenizer
    for spec in TASKS.values():
        for lang in spec.templates:
            ids = answer_token_ids(spec, tokenizer, lang)
            assert len(set(ids.values())) == len(spec.answers)


def test_authored_tasks_load_with_templates_for_every_language():
    for name, spec in TASKS.items():
        data = load_task(name)
        assert data.source == str(TASKS_DIR / spec.file)
        counts = data.frame.groupby("lang").size()
        assert set(counts.index) <= set(spec.templates), f"{name}: languages without a template"
        # six languages hold every item; the others a balanced subset of at least 16 (data/tasks/TASKS.md)
        assert (counts >= 16).all() and (counts >= 100).sum() >= 6, counts.to_dict()
        for lang in counts.index:
            assert len(task_prompts(data, lang, shots=3, n=3)) == 3
