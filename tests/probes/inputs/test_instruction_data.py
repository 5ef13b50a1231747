"""Loader errors (file, line, column), the held-out split, and (prompt, response) -> input ids and labels."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from probes.backend.errors import DataFormatError
from probes.inputs.instruction_data import (
    INSTRUCTIONS,
    SENTENCES,
    collate,
    load_instructions,
    load_sentences,
    pairs_for,
    parallel_ids,
    split_held_out,
    tokenize_pair,
)
from tests import FIXTURES
from tests.conftest import tiny_tokenizer

FIXTURE = FIXTURES / "parallel_instructions.csv"
CHAT = (
    "{% for m in messages %}<bos>{{ m['role'] }}: {{ m['content'] }}<eos>{% endfor %}"
    "{% if add_generation_prompt %}<bos>assistant: {% endif %}"
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_fixture_loads_with_line_numbers_and_parallel_ids():
    table = load_instructions(FIXTURE)
    assert list(table.columns) == ["id", "lang", "instruction", "response", "line"]
    assert table["line"].iloc[0] == 2 and table["line"].iloc[-1] == 73
    assert parallel_ids(table, ["en", "fr"]) == [str(i) for i in range(24)]
    assert pairs_for(table, "fr", ["1"]) == [("Décris la rivière.", "La rivière est long, et la maison est blanc.")]


@pytest.mark.parametrize(
    "text, message",
    [
        ("id,lang,prompt,response\n", r"data.csv:1: the header must be id,lang,instruction,response"),
        ("id,lang,instruction,response\n0,en,Hi\n", r"data.csv:2: 3 fields"),
        ("id,lang,instruction,response\n0,en,Hi,\n", r"data.csv:2, column 4 \(response\): empty cell"),
        ("id,lang,instruction,response\n0,xx,Hi,Ho\n", r"data.csv:2, column 2 \(lang\): .*xx"),
        ("id,lang,instruction,response\n0,en,Hi,Ho\n0,en,Hi,Ho\n", r"data.csv:3: id '0' in 'en' already on line 2"),
        # a quoted cell over two lines: the error names the line where the next record starts
        ('id,lang,instruction,response\n0,en,"Hi\nthere",Ho\n1,en,,Ho\n', r"data.csv:4, column 3 \(instruction\)"),
    ],
)
def test_malformed_files_name_file_line_and_column(tmp_path, text, message):
    with pytest.raises(DataFormatError, match=message):
        load_instructions(_write(tmp_path, text))


def test_missing_file_and_missing_language_are_clear_errors(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        load_sentences(tmp_path / "nope.csv")
    with pytest.raises(DataFormatError, match=r"no rows in \['sw'\]"):
        load_instructions(FIXTURE, langs=["en", "sw"])


def test_held_out_are_the_last_ids_in_file_order():
    train, held = split_held_out(load_instructions(FIXTURE), n_held_out=4)
    assert sorted(set(held["id"]), key=int) == ["20", "21", "22", "23"]
    assert set(train["id"]).isdisjoint(held["id"]) and len(train) + len(held) == 72


def test_plain_format_scores_only_the_response():
    tok = tiny_tokenizer()
    example = tokenize_pair(tok, "the cloud", "is white", template="auto")  # the tiny tokenizer has no chat template
    prompt_ids = tok("the cloud\n\n")["input_ids"]
    response_ids = tok("is white", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert example.input_ids == prompt_ids + response_ids
    assert example.labels == [-100] * len(prompt_ids) + response_ids
    with_prompt = tokenize_pair(tok, "the cloud", "is white", loss_on_prompt=True)
    assert with_prompt.labels == with_prompt.input_ids


def test_chat_template_is_used_when_the_tokenizer_has_one():
    tok = copy.deepcopy(tiny_tokenizer())
    tok.chat_template = CHAT
    example = tokenize_pair(tok, "the cloud", "is white")
    head = tok("<bos>user: the cloud<eos><bos>assistant: ", add_special_tokens=False)["input_ids"]
    tail = tok("is white<eos>", add_special_tokens=False)["input_ids"]
    assert example.input_ids == head + tail
    assert example.labels == [-100] * len(head) + tail
    assert tokenize_pair(tok, "the cloud", "is white", template="plain").input_ids[-1] == tok.eos_token_id
    with pytest.raises(DataFormatError, match="no chat template"):
        tokenize_pair(tiny_tokenizer(), "a", "b", template="chat")


def test_truncation_keeps_a_response_token_or_fails_clearly():
    tok = tiny_tokenizer()
    full = tokenize_pair(tok, "the cloud", "is white and the river is long")
    cut = tokenize_pair(tok, "the cloud", "is white and the river is long", max_length=len(full.input_ids) - 2)
    assert cut.input_ids == full.input_ids[:-2] and cut.labels == full.labels[:-2]
    with pytest.raises(ValueError, match="raise max_length"):
        tokenize_pair(tok, "the cloud is white and the river is long", "x", max_length=2)


def test_collate_left_pads_inputs_and_labels():
    tok = tiny_tokenizer()
    rows = [
        tokenize_pair(tok, "the cloud", "is white"),
        tokenize_pair(tok, "le nuage est", "blanc et la rivière est longue"),
    ]
    enc, labels = collate(rows, pad=0)
    width = max(len(r.input_ids) for r in rows)
    assert enc.input_ids.shape == labels.shape == (2, width)
    short = 0 if len(rows[0].input_ids) < width else 1
    n_pad = width - len(rows[short].input_ids)
    assert (labels[short, :n_pad] == -100).all() and (enc.attention_mask[short, :n_pad] == 0).all()
    assert labels[short, n_pad:].tolist() == rows[short].labels
    assert enc.position_ids[short, n_pad] == 0


@pytest.mark.skipif(not INSTRUCTIONS.is_file() or not SENTENCES.is_file(), reason="data files not present")
def test_shipped_data_loads_and_is_parallel():
    table = load_instructions()
    sizes = table.groupby("lang")["id"].nunique()
    full = sorted(sizes[sizes >= 100].index)  # the other languages hold the first ids only (data/INSTRUCTIONS.md)
    assert len(full) >= 10 and len(parallel_ids(table, full)) >= 100
    assert all(
        set(table[table["lang"] == lang]["id"]) <= set(table[table["lang"] == "en"]["id"]) for lang in sizes.index
    )
    train, held = split_held_out(table)
    assert held["id"].nunique() == 20 and train["id"].nunique() >= 100
    assert load_sentences()["id"].nunique() >= 200
