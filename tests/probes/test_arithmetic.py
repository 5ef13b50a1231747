"""Arithmetic word problems: generation from seeds, the shipped files, grammar helpers, number
extraction and the greedy-accuracy probe."""

from __future__ import annotations

import pandas as pd
import pytest

from probes.arithmetic import run_arithmetic
from probes.backend.errors import DataFormatError
from probes.inputs.arithmetic import (
    EVAL,
    KINDS,
    LANGS,
    TRAIN,
    Problem,
    _ru_plural,
    extract_number,
    generate_problems,
    load_problems,
    problem_key,
    render,
    write_data,
)
from tests.conftest import tiny_backend


def test_shipped_files_are_the_generator_output(tmp_path):
    train, evaluation = write_data(tmp_path)
    assert pd.read_csv(train).equals(pd.read_csv(TRAIN))
    assert pd.read_csv(evaluation).equals(pd.read_csv(EVAL))


def test_eval_is_parallel_and_disjoint_from_training():
    evaluation, train = pd.read_csv(EVAL), pd.read_csv(TRAIN)
    assert set(evaluation["lang"]) == set(LANGS) and set(train["lang"]) == {"en"}
    per_lang = evaluation.groupby("lang")["id"].apply(list)
    assert all(ids == per_lang["en"] for ids in per_lang)  # the same problems in every language
    answers = evaluation.pivot(index="id", columns="lang", values="answer")
    assert (answers.nunique(axis=1) == 1).all()
    assert train["kind"].value_counts().to_dict() == {kind: len(train) // len(KINDS) for kind in KINDS}
    # no evaluation question, in English, occurs in training
    assert not set(evaluation.loc[evaluation["lang"] == "en", "question"]) & set(train["question"])


def test_generation_is_seeded_and_answers_follow_the_kind():
    first, again = generate_problems(40, 3), generate_problems(40, 3)
    assert first == again and generate_problems(40, 4) != first
    for problem in first:
        a, b, *rest = problem.numbers
        expected = {
            "add": a + b,
            "class": a + b,
            "pages": a + b,
            "sub": a - b,
            "mul": a * b,
            "div": a / b,
            "two_step": a + b - (rest[0] if rest else 0),
            "bags": a * b + (rest[0] if rest else 0),
        }[problem.kind]
        assert problem.answer == expected and problem.answer >= 0
        assert f"The answer is {problem.answer}." in problem.chain()
        assert all(n % 10 != 1 or n % 100 == 11 for n in problem.numbers)
    excluded = {problem_key(p) for p in first}
    assert not {problem_key(p) for p in generate_problems(40, 3, exclude=excluded)} & excluded


def test_every_language_renders_every_number():
    problem = Problem("bags", (3, 4, 5), "books", 2)
    for lang in LANGS:
        text = render(problem, lang)
        assert all(str(n) in text for n in problem.numbers), (lang, text)
    assert "vingapi" in render(problem, "sw") and "冊" in render(problem, "ja") and "本" in render(problem, "zh")
    assert "Cuántos libros" in render(Problem("add", (3, 4), "books", 0), "es")
    assert "Cuántas manzanas" in render(Problem("add", (3, 4), "apples", 0), "es")
    with pytest.raises(DataFormatError, match="no arithmetic templates"):
        render(problem, "xx")


@pytest.mark.parametrize(
    "n,form",
    [
        (2, "яблока"),
        (4, "яблока"),
        (5, "яблок"),
        (11, "яблок"),
        (12, "яблок"),
        (22, "яблока"),
        (21, "яблоко"),
        (111, "яблок"),
    ],
)
def test_russian_plural(n, form):
    assert _ru_plural(n, ("яблоко", "яблока", "яблок")) == form


@pytest.mark.parametrize(
    "text,number",
    [
        ("25 + 2 = 27, 27 - 18 = 9. The answer is 9.", 9.0),
        ("答えは１２個です。", 12.0),
        ("Jibu ni 14.\n\nSwali jingine: 3 + 3", 14.0),
        ("\n\nThe total is 1,200 apples.", 1200.0),
        ("It is 2.5 each", 2.5),
        ("no digits here", None),
        ("", None),
    ],
)
def test_extract_number(text, number):
    assert extract_number(text) == number


def test_probe_runs_on_a_tiny_model_and_resumes(tmp_path):
    from probes.backend.store import ResultsStore, provenance

    backend = tiny_backend("llama", backend="nnsight")
    problems = load_problems(EVAL, langs=["en", "ja"], limit=3)
    store = ResultsStore(tmp_path)
    run = store.run(provenance("arithmetic", {"test": 1}, backend.describe()))
    table = run_arithmetic(backend, problems, batch_size=2, max_new_tokens=4, run=run, progress=False)
    assert len(table) == 6 and set(table["lang"]) == {"en", "ja"}
    assert (table["n_new_tokens"] <= 4).all()
    expected = table["output"].map(extract_number)
    assert (table["correct"] == [p is not None and p == a for p, a in zip(expected, table["answer"])]).all()
    again = run_arithmetic(backend, problems, batch_size=2, max_new_tokens=4, run=store.run(run.prov), progress=False)
    pd.testing.assert_frame_equal(
        again.sort_values("item").reset_index(drop=True), table.sort_values("item").reset_index(drop=True)
    )


def test_load_problems_errors(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        load_problems(tmp_path / "missing.csv")
    with pytest.raises(DataFormatError, match="no problems in"):
        load_problems(EVAL, langs=["te"])
