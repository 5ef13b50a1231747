"""Layer swapping and soups through mergekit, checked against an independent tensor-by-tensor
reading of Bandarkar et al.'s Algorithm 1 (line 5 with "and")."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from analyses.interventions.layer_swap import (
    MERGEKIT_YAML,
    RECORD,
    SwapConfig,
    SwapConfigError,
    depth_scaled,
    layer_zone,
    soup,
    swap,
    zones,
)
from probes.backend.checkpoint import CheckpointMismatchError
from probes.backend.errors import ModelNotFoundError, PivotlensError
from tests.conftest import tiny_hf_model, tiny_tokenizer

N_LAYERS = 6


# ---- the reference: Algorithm 1, read literally (line 5 corrected), one tensor at a time -------------


def algorithm1_origin(layer: int, L: int, b: int, u: int, tb: int, tu: int) -> str:
    """'lang', 'task' or 'avg' for block ``layer``, transcribed from the slide."""
    if layer < b or layer > L - 1 - u:  # line 3
        return "lang"
    if layer > b - 1 + tb and layer < L - u - tu:  # line 5, "or" -> "and"
        return "task"
    # line 8
    return "avg"


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        out.update(load_file(shard))
    return out


def reference_swap(task: Path, lang: Path, L: int, cfg: SwapConfig) -> dict[str, torch.Tensor]:
    theta_task, theta_lang = _tensors(task), _tensors(lang)
    merged = {}
    for name, t in theta_task.items():
        match = re.search(r"\.layers\.(\d+)\.", name)
        if match is None:  # embeddings, final norm, head
            w_t, w_l = {"average": (cfg.w_task, cfg.w_lang), "task": (1.0, 0.0), "lang": (0.0, 1.0)}[cfg.non_layer]
        else:
            origin = algorithm1_origin(
                int(match.group(1)), L, cfg.bottom, cfg.top, cfg.transition_bottom, cfg.transition_top
            )
            w_t, w_l = {"lang": (0.0, 1.0), "task": (1.0, 0.0), "avg": (cfg.w_task, cfg.w_lang)}[origin]
        merged[name] = (
            t if w_l == 0 else theta_lang[name] if w_t == 0 else (w_t * t + w_l * theta_lang[name]) / (w_t + w_l)
        )
    return merged


def _save(model, folder: Path) -> Path:
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def experts(request, tmp_path_factory) -> tuple[Path, Path, str]:
    """Two differently initialised models of one architecture (llama: separate head; gemma3: tied)."""
    root = tmp_path_factory.mktemp(f"experts-{request.param}")
    task = _save(tiny_hf_model(request.param, n_layers=N_LAYERS, seed=1), root / "task")
    lang = _save(tiny_hf_model(request.param, n_layers=N_LAYERS, seed=2), root / "lang")
    return task, lang, request.param


# ---- zones ---------------------------------------------------------------------------------------------

CASES = [  # (L, b, u, t_b, t_u)
    (18, 0, 0, 0, 0),
    (18, 2, 1, 1, 1),
    (18, 0, 2, 1, 0),
    (18, 3, 0, 0, 2),
    (18, 0, 0, 2, 2),
    (32, 4, 1, 1, 1),
    (32, 5, 2, 2, 2),
    (8, 2, 2, 2, 2),
    (8, 3, 3, 1, 1),
    (8, 4, 4, 0, 0),
    (4, 4, 0, 0, 0),
    (6, 1, 1, 2, 2),
    (1, 0, 0, 0, 0),
    (1, 1, 0, 0, 0),
]


@pytest.mark.parametrize("L,b,u,tb,tu", CASES)
def test_zones_follow_algorithm_1(L, b, u, tb, tu):
    cfg = SwapConfig(b, u, tb, tu)
    plan = zones(L, cfg)
    assert plan[0].start == 0 and plan[-1].end == L
    assert all(z.end == nxt.start for z, nxt in itertools.pairwise(plan))  # contiguous, no gaps
    for zone in plan:
        for layer in range(zone.start, zone.end):
            expected = algorithm1_origin(layer, L, b, u, tb, tu)
            assert {"lang_bottom": "lang", "lang_top": "lang", "task": "task"}.get(zone.name, "avg") == expected
    sizes = {
        name: sum(z.end - z.start for z in plan if z.name == name)
        for name in ("lang_bottom", "transition_bottom", "task", "transition_top", "lang_top")
    }
    assert sizes == {
        "lang_bottom": b,
        "transition_bottom": tb,
        "task": L - b - u - tb - tu,
        "transition_top": tu,
        "lang_top": u,
    }


def test_zone_boundaries_by_hand():
    names = {"lang_bottom": "L", "transition_bottom": "t", "task": "T", "transition_top": "t", "lang_top": "L"}

    def row(L, *args):
        return "".join(names[layer_zone(layer, L, SwapConfig(*args))] for layer in range(L))

    assert row(18, 2, 1, 1, 1) == "LLtTTTTTTTTTTTTTtL"
    assert row(18, 0, 0, 0, 0) == "T" * 18
    assert row(18, 0, 0, 1, 1) == "t" + "T" * 16 + "t"
    assert row(18, 0, 2, 0, 0) == "T" * 16 + "LL"
    assert row(8, 2, 2, 2, 2) == "LLttttLL"  # transition zones touch: no task layer left
    assert row(8, 3, 3, 0, 0) == "LLLTTLLL"
    assert row(8, 4, 4, 0, 0) == "LLLLLLLL"  # bottom and top zones touch


def test_the_slides_or_would_drop_the_transitions():
    """With line 5 read as 'or', every non-swapped block goes to the task expert: the reason for the correction."""
    L, b, u, tb, tu = 18, 2, 1, 1, 1
    literal = [
        "task" if (layer > b - 1 + tb or layer < L - u - tu) else "avg"
        for layer in range(L)
        if not (layer < b or layer > L - 1 - u)
    ]
    assert "avg" not in literal
    assert sum(layer_zone(layer, L, SwapConfig(b, u, tb, tu)).startswith("transition") for layer in range(L)) == 2


def test_depth_scaling():
    assert depth_scaled(32) == SwapConfig(4, 1, 1, 1)
    assert depth_scaled(18) == SwapConfig(2, 1, 1, 1)  # 4·18/32 = 2.25, 1·18/32 = 0.56
    assert depth_scaled(18, bottom=5, top=2) == SwapConfig(3, 1, 1, 1)
    assert depth_scaled(30, bottom=3, top=0, transition_bottom=0, transition_top=2) == SwapConfig(3, 0, 0, 2)


@pytest.mark.parametrize(
    "cfg,needle",
    [
        (SwapConfig(10, 5, 2, 2), "overlap or exceed the depth"),
        (SwapConfig(19, 0), "overlap or exceed the depth"),
        (SwapConfig(-1, 0), "bottom must be a whole number"),
        (SwapConfig(2, 1, 1, 1, w_task=0, w_lang=0), "positive sum"),
        (SwapConfig(2, 1, non_layer="embeddings"), "non_layer must be one of"),
    ],
)
def test_bad_zones_give_one_line_errors(cfg, needle):
    with pytest.raises(SwapConfigError) as err:
        zones(18, cfg)
    assert needle in str(err.value) and "\n" not in str(err.value)


# ---- the merge against the reference --------------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg",
    [
        SwapConfig(1, 1, 1, 1, w_task=2.0, w_lang=1.0),
        SwapConfig(2, 0, 0, 2, non_layer="lang"),
        SwapConfig(0, 1, 2, 0, w_task=1.0, w_lang=3.0, non_layer="task"),
        SwapConfig(2, 2, 1, 1),  # zones touch: no task layer
    ],
)
def test_merge_matches_algorithm_1(experts, cfg, tmp_path):
    task, lang, _ = experts
    out = swap(task, lang, tmp_path / "merged", cfg, progress=False)
    merged, expected = _tensors(out), reference_swap(task, lang, N_LAYERS, cfg)
    assert set(merged) == set(expected)
    for name, want in expected.items():
        got = merged[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7, msg=name)


def test_no_swap_gives_the_task_expert_exactly(experts, tmp_path):
    task, lang, _ = experts
    theta_task = _tensors(task)
    exact = _tensors(swap(task, lang, tmp_path / "task_only", SwapConfig(0, 0, non_layer="task"), progress=False))
    assert set(exact) == set(theta_task)
    assert all(torch.equal(exact[n], theta_task[n]) for n in theta_task)
    averaged = _tensors(swap(task, lang, tmp_path / "avg_outside", SwapConfig(0, 0), progress=False))
    theta_lang = _tensors(lang)
    for name, t in theta_task.items():
        if ".layers." in name:
            assert torch.equal(averaged[name], t), name  # every block bit-identical to the task expert
        else:
            torch.testing.assert_close(averaged[name], (t + theta_lang[name]) / 2)


def test_transition_tensors_are_the_weighted_average(experts, tmp_path):
    task, lang, _ = experts
    cfg = SwapConfig(1, 1, 2, 1, w_task=3.0, w_lang=1.0)
    merged, theta_task, theta_lang = (
        _tensors(swap(task, lang, tmp_path / "m", cfg, progress=False)),
        _tensors(task),
        _tensors(lang),
    )
    transition_layers = [1, 2, 4]
    names = [
        n
        for n in merged
        if re.search(r"\.layers\.(\d+)\.", n) and int(re.search(r"\.layers\.(\d+)\.", n).group(1)) in transition_layers
    ]
    assert len(names) > 10
    for name in names:
        torch.testing.assert_close(merged[name], 0.75 * theta_task[name] + 0.25 * theta_lang[name])
        assert not torch.equal(merged[name], theta_task[name]) or torch.equal(theta_task[name], theta_lang[name])


def test_merged_folder_reloads_runs_and_is_recorded(experts, tmp_path):
    task, lang, kind = experts
    cfg = SwapConfig(1, 1, 1, 1, w_task=2.0, w_lang=1.0)
    out = swap(task, lang, tmp_path / "merged", cfg, progress=False)
    model = AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = torch.tensor([tokenizer("the cloud is white")["input_ids"]])
    reference = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(task), attn_implementation="eager").eval()
    reference.load_state_dict(reference_swap(task, lang, N_LAYERS, cfg), strict=False)
    if kind == "gemma3":
        reference.tie_weights()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=1e-5, atol=1e-5)
    record = json.loads((out / RECORD).read_text())
    assert record["config"]["bottom"] == 1 and record["n_layers"] == N_LAYERS
    assert [r["zone"] for r in record["layers"]] == [
        "lang_bottom",
        "transition_bottom",
        "task",
        "task",
        "transition_top",
        "lang_top",
    ]
    assert record["layers"][1]["share_task"] == pytest.approx(2 / 3)
    assert record["non_layer"]["share_lang"] == pytest.approx(1 / 3)
    config = yaml.safe_load((out / MERGEKIT_YAML).read_text())
    assert config["merge_method"] == "linear" and len(config["slices"]) == 5
    assert [len(s["sources"]) for s in config["slices"]] == [2, 2, 1, 2, 2]


def test_soup_is_the_weighted_average(experts, tmp_path):
    task, lang, kind = experts
    third = _save(tiny_hf_model(kind, n_layers=N_LAYERS, seed=3), tmp_path / "third")
    out = soup([task, lang, third], tmp_path / "soup", weights=[1.0, 2.0, 1.0], progress=False)
    merged = _tensors(out)
    a, b, c = _tensors(task), _tensors(lang), _tensors(third)
    assert set(merged) == set(a)
    for name in a:
        torch.testing.assert_close(merged[name], (a[name] + 2 * b[name] + c[name]) / 4, rtol=1e-6, atol=1e-7)
    assert json.loads((out / RECORD).read_text())["models"][1]["share"] == 0.5


# ---- bad inputs -----------------------------------------------------------------------------------------


def _one_line(err: pytest.ExceptionInfo, *needles: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message


def test_bad_experts_give_one_line_errors(tmp_path):
    llama = _save(tiny_hf_model("llama", n_layers=4, seed=1), tmp_path / "llama")
    gemma = _save(tiny_hf_model("gemma3", n_layers=4, seed=1), tmp_path / "gemma")
    deeper = _save(tiny_hf_model("llama", n_layers=5, seed=1), tmp_path / "deeper")
    config = AutoConfig.from_pretrained(llama)
    config.intermediate_size = 96
    wider_model = AutoModelForCausalLM.from_config(config)
    wider_model.config.architectures = ["LlamaForCausalLM"]
    wider = _save(wider_model, tmp_path / "wider")
    with pytest.raises(CheckpointMismatchError) as err:
        swap(llama, gemma, tmp_path / "x", SwapConfig(1, 1))
    _one_line(err, "different architectures", "LlamaForCausalLM", "Gemma3ForCausalLM")
    with pytest.raises(CheckpointMismatchError) as err:
        swap(llama, deeper, tmp_path / "x", SwapConfig(1, 1))
    _one_line(err, "different depths", "4 layers", "5")
    with pytest.raises(CheckpointMismatchError) as err:
        swap(llama, wider, tmp_path / "x", SwapConfig(1, 1))
    _one_line(err, "different shapes", "mlp")
    with pytest.raises(CheckpointMismatchError) as err:
        swap(llama, llama, tmp_path / "x", SwapConfig(1, 1))
    _one_line(err, "given twice")
    with pytest.raises(ModelNotFoundError) as err:
        swap(llama, tmp_path / "nowhere", tmp_path / "x", SwapConfig(1, 1))
    _one_line(err, "nowhere")
    empty = tmp_path / "no_weights"
    empty.mkdir()
    (empty / "config.json").write_text((llama / "config.json").read_text())
    with pytest.raises(ModelNotFoundError) as err:
        swap(llama, empty, tmp_path / "x", SwapConfig(1, 1))
    _one_line(err, "no weights (*.safetensors or *.bin)")
    with pytest.raises(SwapConfigError) as err:
        swap(
            llama,
            _save(tiny_hf_model("llama", n_layers=4, seed=2), tmp_path / "other"),
            tmp_path / "x",
            SwapConfig(3, 1, 1, 0),
        )
    _one_line(err, "overlap or exceed", "> 4 layers")
    with pytest.raises(PivotlensError) as err:
        soup([llama], tmp_path / "x")
    _one_line(err, "at least two")
    assert not (tmp_path / "x").exists()


def test_refuses_to_overwrite_a_foreign_folder(experts, tmp_path):
    task, lang, _ = experts
    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(PivotlensError, match="not a merge output"):
        swap(task, lang, foreign, SwapConfig(1, 1))
    assert (foreign / "notes.txt").is_file()
    out = swap(task, lang, tmp_path / "again", SwapConfig(1, 1), progress=False)
    swap(task, lang, out, SwapConfig(2, 1), progress=False)  # a previous merge output is replaced
    assert json.loads((out / RECORD).read_text())["config"]["bottom"] == 2


# ---- command line ---------------------------------------------------------------------------------------


def test_swap_and_soup_commands(experts, tmp_path):
    from typer.testing import CliRunner

    from analyses.cli import app

    task, lang, _ = experts
    runner = CliRunner()
    args = [
        "--out",
        str(tmp_path / "swapped"),
        "swap",
        "--task-expert",
        str(task),
        "--lang-expert",
        str(lang),
        "--bottom",
        "1",
        "--top",
        "1",
        "--transition-bottom",
        "1",
        "--w-task",
        "3",
        "--non-layer",
        "task",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cfg = SwapConfig(1, 1, 1, 0, w_task=3.0, non_layer="task")
    merged, expected = _tensors(tmp_path / "swapped"), reference_swap(task, lang, N_LAYERS, cfg)
    for name, want in expected.items():
        torch.testing.assert_close(merged[name], want, rtol=1e-6, atol=1e-7)
    result = runner.invoke(app, ["--out", str(tmp_path / "souped"), "soup", str(task), str(lang), "--weights", "1,3"])
    assert result.exit_code == 0, result.output
    souped, a, b = _tensors(tmp_path / "souped"), _tensors(task), _tensors(lang)
    for name in a:
        torch.testing.assert_close(souped[name], (a[name] + 3 * b[name]) / 4, rtol=1e-6, atol=1e-7)
    result = runner.invoke(app, ["--out", str(tmp_path / "bad"), "soup", str(task), str(lang), "--weights", "1,x"])
    assert isinstance(result.exception, PivotlensError) and "comma-separated numbers" in str(result.exception)
    result = runner.invoke(app, ["--out", str(tmp_path / "deep"), *args[2:], "--top", "9"])
    assert isinstance(result.exception, SwapConfigError) and "overlap or exceed" in str(result.exception)
