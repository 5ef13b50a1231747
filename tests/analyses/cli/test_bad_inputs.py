"""Every bad input a user would plausibly type is caught before any model loads: exit code 2,
one line on stderr, no traceback, and the words of the fix."""

from __future__ import annotations

import sys

import pytest
import torch

from analyses import cli
from analyses.cli.settings import Settings
from probes.backend import models

GOOD_WORDS = "concept,en,fr,zh\ncloud,cloud,nuage,云\nriver,river,rivière,河\n"
COMPLETION_HEADER = "id,model,completion,task,source,language\n"


class ModelLoadReached(Exception):
    """Raised instead of loading a model: every check has passed."""


def files(tmp: object) -> dict[str, str]:
    """The bad (and good) files the table refers to, written under ``tmp``."""
    written = {
        "words_bom": "\ufeff" + GOOD_WORDS,
        "words_empty": "",
        "words_header": "word,en,fr\ncloud,cloud,nuage\n",
        "words_ragged": GOOD_WORDS + "sun,sun,soleil\n",
        "words_multiline": 'concept,en,fr,zh\ncloud,"cl\nou\nd",nuage,云\nriver,river\n',
        "words_duplicate": GOOD_WORDS + "cloud,cloud,nuage,云\n",
        "words_emptycell": GOOD_WORDS + "sun,,soleil,太阳\n",
        "words_badlang": "concept,en,xx\ncloud,cloud,nuage\n",
        "completions_xx": COMPLETION_HEADER + "1,m,hello there friend of mine,monolingual,okapi,xx\n",
        "completions_columns": "id,model,completion\n1,m,hello\n",
        "completions_big": COMPLETION_HEADER + f'1,m,"{"a" * 1_000_000}",monolingual,okapi,fr\n',
        "completions_emptylang": COMPLETION_HEADER + "1,m,hello,monolingual,okapi, \n",
        "a_file": "not a folder\n",
    }
    paths = {}
    for name, text in written.items():
        path = tmp / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
        paths[name] = str(path)
    latin1 = tmp / "words_latin1.csv"
    latin1.write_bytes(
        "concept,en,fr,zh\ncloud,cloud,nuage,云\nriver,river,rivière,河\n".encode().replace(
            "rivière".encode(), "rivière".encode("latin-1")
        )
    )
    paths["words_latin1"] = str(latin1)
    for name, content in {
        "only_config": {"config.json": "{}"},
        "bad_config": {"config.json": "{oops", "model.safetensors": ""},
        "no_config": {},
    }.items():
        folder = tmp / name
        folder.mkdir()
        for file, text in content.items():
            (folder / file).write_text(text)
        paths[name] = str(folder)
    return paths


# (arguments with {placeholders} for the files above, words the one-line message must hold)
CASES = [
    ("--backend tl lens --target zh", "use one of transformer-lens, nnsight"),
    ("--backend nnsite lambda", "use one of transformer-lens, nnsight"),
    ("--dtype float8 lens --target zh", "use one of float32"),
    ("--dtype fp64 lambda", "use one of float32"),
    ("--device gpu lens --target zh", "use cpu, cuda, cuda:N or mps"),
    ("--device cuda:x lambda", "use cpu, cuda, cuda:N or mps"),
    ("--device mps lambda", "use --device cpu"),
    ("--model ./no-such-model lens --target zh", "check the path"),
    ("--model models/mine/checkpoint-3 lambda", "check the path"),
    ("--model ~/no-such-model lambda", "check the path"),
    ("--model gemma-3-270M lambda", "pivotlens models"),
    ("--model {only_config} lambda", "save the model there with save_pretrained"),
    ("--model {no_config} lambda", "point --model at a folder written by save_pretrained"),
    ("--model {bad_config} lambda", "write the folder again with save_pretrained"),
    ("--model {a_file} lambda", "point --model at the folder save_pretrained wrote"),
    ("--out {a_file} lambda", "choose another --out"),
    ("--out {a_file}/sub lambda", "choose another --out"),
    ("--results {a_file} lambda", "choose another --results"),
    ("--batch-size 0 lambda", "should be greater than or equal to 1"),
    ("--batch-size many lambda", "should be a valid integer"),
    ("lens", "Missing option '--target'"),
    ("lens --target xx", "add one to probes/backend/languages.py"),
    ("lens --target ZH", "pivotlens knows the ISO 639-1 codes"),
    ("lens --target zh --task translate", "use one of cloze, translation, repetition"),
    ("lens --target zh --word-prob whole", "use one of auto, prefix, chain"),
    ("lens --target zh --latent english", "pivotlens knows the ISO 639-1 codes"),
    ("lens --target zh --source qq", "pivotlens knows the ISO 639-1 codes"),
    ("lens --target zh --target-lang zh", "No such option"),
    ("lens --target fa", "choose among those or add the column"),
    ("lens --target zh --words {a_file}/missing.csv", "no such file; pass a CSV with a 'concept' column"),
    ("lens --target zh --words {words_latin1}", ":3: byte 0xe8 is not UTF-8; save the file as UTF-8"),
    ("lens --target zh --words {words_empty}", "needs a header row"),
    ("lens --target zh --words {words_header}", ":1: the first column must be 'concept'"),
    ("lens --target zh --words {words_ragged}", ":4: 3 fields, the header has 4"),
    ("lens --target zh --words {words_multiline}", ":5: 2 fields, the header has 4"),
    ("lens --target zh --words {words_duplicate}", ":4: concept 'cloud' already on line 2"),
    ("lens --target zh --words {words_emptycell}", ":4, column 2 (en): empty cell"),
    ("lens --target zh --words {words_badlang}", "add one to probes/backend/languages.py"),
    ("lens --target de --words {words_bom}", "has no column for de"),
    ("lambda --langs ''", "give comma-separated language codes"),
    ("lambda --langs ,", "give comma-separated language codes"),
    ("lambda --langs zh,xx", "pivotlens knows the ISO 639-1 codes"),
    ("lambda --langs fr,he", "choose among those or add the column"),
    ("lambda --limit 0", "should be greater than or equal to 1"),
    ("lambda --limit -1", "should be greater than or equal to 1"),
    ("lambda --layer 99", "use 0 to 17"),
    ("lambda --layer -1", "use 0 to 17"),
    ("--model smollm2-135m lambda --layer 30", "use 0 to 29"),
    ("lambda --task close", "use one of cloze, translation, repetition"),
    ("importance --scope blocks", "use one of layers, all"),
    ("lambda --lambda0 high", "should be a valid number"),
    ("interference --layer 99", "use 0 to 17"),
    ("finetune --layer 99", "use 0 to 17"),
    ("prom-fig3 --layer -1", "use 0 to 17"),
    ("interference --params some", "use one of all, blocks, matrices"),
    ("interference --reduction median", "use one of token_mean, sequence_mean"),
    ("interference-fig2 --split dev", "use one of all, train, held_out"),
    ("importance --langs ,", "give comma-separated language codes"),
    ("importance --mode sum", "use one of sum_then_abs, abs_per_batch"),
    ("regions --fraction 2", "strictly between 0 and 1"),
    ("lense --target zh", "No such command 'lense'"),
    ("lens --target zh --lens logit,linear", "this command reads the layers with one lens"),
    ("exit --lens linear,tuned", "this command reads the layers with one lens"),
    ("confusion --langs fr --prompt-format json", "use qa (Q:/A: turns) or chat (chat template)"),
    ("confusion-sweep --langs fr --prompt-format json", "use qa (Q:/A: turns) or chat (chat template)"),
    ("confusion-metrics --completions {a_file}/missing.csv", "no such file; pass a CSV of completions"),
    ("confusion-metrics --completions {completions_xx}", "use one of ar, de, en"),
    ("confusion-metrics --completions {completions_columns}", "missing column(s) task, source, language"),
    ("confusion-metrics --completions {completions_big}", "check the quoting or shorten the field"),
    ("confusion-metrics --completions {completions_emptylang}", "column 6 (language): empty cell"),
    ("confusion-metrics --completions {words_latin1}", "save the file as UTF-8"),
    ("--out {a_file}/sub confusion-metrics --completions {completions_xx}", "choose another --out"),
]
if not torch.cuda.is_available():
    CASES += [("--device cuda lens --target zh", "use --device cpu"), ("--device cuda:1 lambda", "use --device cpu")]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    sys.argv = ["pivotlens", *argv]
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return exit_info.value.code, capsys.readouterr().err


@pytest.fixture
def no_model_loads(monkeypatch):
    """Every model load reaches :func:`probes.backend.models.load_hf` (or ``load_meta``, for
    remote runs), which reads the weights (or the config); both refuse here. The loading code
    calls them through their module, so a module first imported under the patch keeps no
    fake loader (checked after the test)."""

    def refuse(*args, **kwargs):
        raise ModelLoadReached

    monkeypatch.setattr(models, "load_hf", refuse)
    monkeypatch.setattr(models, "load_meta", refuse)
    yield
    kept = [
        f"{name}.{attribute}"
        for name, module in list(sys.modules.items())
        for attribute, value in list(getattr(module, "__dict__", {}).items())
        if value is refuse
    ]
    assert kept == [models.__name__ + ".load_hf", models.__name__ + ".load_meta"], kept


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize(("args", "fix"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_with_the_fix_and_exit_2(args, fix, tmp_path, capsys, monkeypatch, no_model_loads):
    import shlex

    monkeypatch.chdir(tmp_path)
    argv = shlex.split(args.format(**files(tmp_path)))
    code, err = run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert fix in lines[0], lines[0]


def test_a_bom_and_repeated_languages_pass_the_checks_with_a_warning(tmp_path, capsys, monkeypatch, no_model_loads):
    paths = files(tmp_path)
    with pytest.raises(ModelLoadReached):
        sys.argv = [
            "pivotlens",
            "--out",
            str(tmp_path / "out"),
            "lambda",
            "--langs",
            "zh,zh,fr",
            "--words",
            paths["words_bom"],
        ]
        cli.main()
    assert "each repeated language counted once (zh,fr)" in capsys.readouterr().err


def test_an_unexpected_error_keeps_its_traceback(monkeypatch, tmp_path):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(Settings, "load_backend", bug)
    sys.argv = ["pivotlens", "--out", str(tmp_path), "lambda"]
    with pytest.raises(ZeroDivisionError):
        cli.main()
