"""Region selection, core and monolingual regions, mask storage and dimensional structure
(Zhang et al. 2024; spec 4.2-4.3) on constructed data with known answers."""

from __future__ import annotations

import pytest
import torch

from analyses.stats.regions import (
    core_scores,
    dimension_counts,
    dimension_region,
    load_masks,
    mask_density,
    monolingual,
    random_like,
    region_table,
    residual_axis,
    row_column_counts,
    save_masks,
    select,
    select_tensor,
    structured_region,
    top_dimensions,
)

SHAPES = {"a.weight": (37, 53), "b.weight": (640,), "c.weight": (3, 7), "d.weight": (128, 64)}


def _scores(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=generator) for name, shape in SHAPES.items()}


@pytest.mark.parametrize("selection", ["top", "bottom", "random"])
@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.3])
def test_every_tensor_gets_exactly_int_k_numel_entries(selection, fraction):
    masks = select(_scores(), fraction, selection, seed=3)
    for name, mask in masks.items():
        assert mask.dtype == torch.bool and mask.shape == SHAPES[name]
        assert int(mask.sum()) == int(fraction * mask.numel())


def test_exact_counts_hold_with_ties():
    scores = {"flat.weight": torch.zeros(10, 10), "half.weight": torch.cat([torch.ones(50), torch.zeros(50)])}
    for selection in ("top", "bottom"):
        masks = select(scores, 0.07, selection)
        assert [int(m.sum()) for m in masks.values()] == [7, 7]


def test_top_and_bottom_take_the_extremes_of_each_tensor():
    scores = _scores()
    top, bottom = select(scores, 0.1, "top"), select(scores, 0.1, "bottom")
    for name, values in scores.items():
        if top[name].any():
            assert values[top[name]].min() >= values[~top[name]].max()
            assert values[bottom[name]].max() <= values[~bottom[name]].min()


def test_random_selection_is_seeded_and_independent_of_the_other_tensors():
    scores = _scores()
    one, again, other = (
        select(scores, 0.1, "random", seed=1),
        select(scores, 0.1, "random", seed=1),
        select(scores, 0.1, "random", seed=2),
    )
    assert all(torch.equal(one[n], again[n]) for n in scores)
    assert not torch.equal(one["a.weight"], other["a.weight"])
    alone = select({"a.weight": scores["a.weight"]}, 0.1, "random", seed=1)
    assert torch.equal(alone["a.weight"], one["a.weight"])
    assert torch.equal(select_tensor(scores["a.weight"], 0.1, "random", seed=1, name="a.weight"), one["a.weight"])


def test_global_selection_ranks_all_entries_together():
    scores = {"small.weight": torch.arange(10.0), "large.weight": torch.arange(10.0, 110.0).reshape(10, 10)}
    masks = select(scores, 0.1, "top", per="global")
    assert int(masks["small.weight"].sum()) == 0 and int(masks["large.weight"].sum()) == 11  # int(0.1 * 110)
    bottom = select(scores, 0.1, "bottom", per="global")
    assert int(bottom["small.weight"].sum()) == 10 and int(bottom["large.weight"].sum()) == 1
    random = select(scores, 0.1, "random", per="global", seed=0)
    assert sum(int(m.sum()) for m in random.values()) == 11


def test_bad_fraction_and_selection_fail_clearly():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        select(_scores(), 1.0, "top")
    with pytest.raises(ValueError, match="selection must be"):
        select(_scores(), 0.1, "largest")  # type: ignore[arg-type]


def test_core_score_sums_absolute_importance_per_language():
    first = {"w": torch.tensor([1.0, -2.0, 3.0])}
    second = {"w": torch.tensor([-1.0, -1.0, 0.5])}
    assert torch.equal(core_scores([first, second])["w"], torch.tensor([2.0, 3.0, 3.5]))
    assert torch.equal(first["w"], torch.tensor([1.0, -2.0, 3.0]))  # inputs untouched


def test_monolingual_region_is_own_top_minus_every_other_languages_top():
    generator = torch.Generator().manual_seed(0)
    tops = {
        lang: {n: torch.rand(shape, generator=generator) < 0.3 for n, shape in SHAPES.items()}
        for lang in ("ar", "ru", "zh")
    }
    for lang in tops:
        mono = monolingual(tops, lang)
        for name in SHAPES:
            own = set(tops[lang][name].reshape(-1).nonzero().squeeze(1).tolist())
            others = set().union(
                *(set(tops[o][name].reshape(-1).nonzero().squeeze(1).tolist()) for o in tops if o != lang)
            )
            assert set(mono[name].reshape(-1).nonzero().squeeze(1).tolist()) == own - others
    with pytest.raises(KeyError, match="regions exist for"):
        monolingual(tops, "ko")


def test_monolingual_on_hand_made_masks():
    tops = {
        "a": {"w": torch.tensor([1, 1, 1, 0, 0], dtype=torch.bool)},
        "b": {"w": torch.tensor([0, 1, 0, 1, 0], dtype=torch.bool)},
        "c": {"w": torch.tensor([0, 0, 1, 0, 1], dtype=torch.bool)},
    }
    assert monolingual(tops, "a")["w"].tolist() == [True, False, False, False, False]
    assert monolingual(tops, "b")["w"].tolist() == [False, False, False, True, False]
    assert monolingual(tops, "c")["w"].tolist() == [False, False, False, False, True]


def test_random_like_keeps_each_tensors_count():
    region = select(_scores(), 0.2, "top")
    control = random_like(region, seed=5)
    assert all(int(control[n].sum()) == int(region[n].sum()) for n in region)
    assert not torch.equal(control["a.weight"], region["a.weight"])
    table = region_table({"top": region, "random": control})
    assert (table.groupby("param")["selected"].nunique() == 1).all()


def test_masks_round_trip_through_packed_bits(tmp_path):
    masks = select(_scores(), 0.05, "random", seed=0)
    masks["empty.weight"] = torch.zeros(5, 3, dtype=torch.bool)
    path = save_masks(tmp_path / "m.safetensors", masks, {"fraction": 0.05, "langs": ["ar", "ru"]})
    back, meta = load_masks(path)
    assert meta == {"fraction": 0.05, "langs": ["ar", "ru"]}
    assert set(back) == set(masks) and all(torch.equal(back[n], masks[n]) for n in masks)
    numel = sum(m.numel() for m in masks.values())
    assert path.stat().st_size < numel / 8 + 4096  # one bit per entry plus the header


def test_row_and_column_counts_and_the_reference_helper():
    mask = torch.zeros(6, 5, dtype=torch.bool)
    mask[2, :] = True  # a full row
    mask[:, 4] = True  # a full column
    rows, cols = row_column_counts(mask)
    assert rows.tolist() == [1, 1, 5, 1, 1, 1] and cols.tolist() == [1, 1, 1, 1, 6]
    found = top_dimensions(mask, 1)
    assert found["top_rows"] == [2] and found["top_cols"] == [4]
    assert found["bottom_rows"][0] != 2 and found["bottom_cols"][0] != 4


def test_residual_axis_follows_reading_and_writing_modules():
    d = 640
    assert residual_axis("model.layers.0.self_attn.q_proj.weight", (1024, 640), d) == 1
    assert residual_axis("model.layers.0.self_attn.o_proj.weight", (640, 1024), d) == 0
    assert residual_axis("model.layers.0.mlp.down_proj.weight", (640, 2048), d) == 0
    assert residual_axis("model.layers.0.mlp.up_proj.weight", (2048, 640), d) == 1
    assert residual_axis("model.layers.0.input_layernorm.weight", (640,), d) == 0
    assert residual_axis("model.layers.0.self_attn.q_norm.weight", (256,), d) is None
    assert residual_axis("model.layers.0.self_attn.q_proj.weight", (576, 576), 576) == 1  # square: by name
    assert residual_axis("model.layers.0.self_attn.o_proj.weight", (576, 576), 576) == 0


def test_dimension_counts_sum_reads_writes_and_norms():
    d = 4
    masks = {
        "l.0.self_attn.q_proj.weight": torch.zeros(6, d, dtype=torch.bool),
        "l.0.self_attn.o_proj.weight": torch.zeros(d, 6, dtype=torch.bool),
        "l.0.input_layernorm.weight": torch.zeros(d, dtype=torch.bool),
    }
    masks["l.0.self_attn.q_proj.weight"][:, 1] = True  # column 1: 6 entries on dimension 1
    masks["l.0.self_attn.o_proj.weight"][3, :2] = True  # row 3: 2 entries on dimension 3
    masks["l.0.input_layernorm.weight"][1] = True
    table = dimension_counts(masks, d)
    assert table["count"].tolist() == [0, 7, 0, 2]
    assert table["share"].sum() == pytest.approx(1.0)


def test_structured_region_takes_whole_slices_with_the_most_entries():
    d = 8
    region = {
        "m.self_attn.q_proj.weight": torch.zeros(5, d, dtype=torch.bool),
        "m.mlp.down_proj.weight": torch.zeros(d, 12, dtype=torch.bool),
        "m.input_layernorm.weight": torch.zeros(d, dtype=torch.bool),
    }
    region["m.self_attn.q_proj.weight"][:, 6] = True
    region["m.self_attn.q_proj.weight"][:2, 2] = True
    region["m.mlp.down_proj.weight"][5, :] = True
    top = structured_region(region, 2, "top", d)
    assert set(top) == {"m.self_attn.q_proj.weight", "m.mlp.down_proj.weight"}  # matrices only
    assert top["m.self_attn.q_proj.weight"].all(dim=0).nonzero().squeeze(1).tolist() == [2, 6]
    assert int(top["m.self_attn.q_proj.weight"].sum()) == 2 * 5
    assert 5 in top["m.mlp.down_proj.weight"].all(dim=1).nonzero().squeeze(1).tolist()
    random = structured_region(region, 3, "random", d, seed=1)
    assert int(random["m.mlp.down_proj.weight"].sum()) == 3 * 12
    other = structured_region(region, 1, "top", d, axis="other")
    assert int(other["m.self_attn.q_proj.weight"].sum()) == d  # one whole row


def test_dimension_region_marks_one_hidden_dimension_everywhere():
    d = 8
    template = {
        "m.0.self_attn.q_proj.weight": torch.zeros(5, d),
        "m.0.self_attn.o_proj.weight": torch.zeros(d, 5),
        "m.0.post_attention_layernorm.weight": torch.zeros(d),
        "m.0.self_attn.q_norm.weight": torch.zeros(3),
    }
    masks = dimension_region(template, [3], d)
    assert set(masks) == {
        "m.0.self_attn.q_proj.weight",
        "m.0.self_attn.o_proj.weight",
        "m.0.post_attention_layernorm.weight",
    }
    assert masks["m.0.self_attn.q_proj.weight"][:, 3].all() and int(masks["m.0.self_attn.q_proj.weight"].sum()) == 5
    assert masks["m.0.self_attn.o_proj.weight"][3, :].all() and int(masks["m.0.self_attn.o_proj.weight"].sum()) == 5
    assert masks["m.0.post_attention_layernorm.weight"].nonzero().squeeze(1).tolist() == [3]
    with pytest.raises(IndexError, match="outside"):
        dimension_region(template, [d], d)


def test_mask_density_averages_blocks():
    mask = torch.zeros(256, 512, dtype=torch.bool)
    mask[:, :4] = True  # at 128 x 128 bins the first block of columns (4 wide) is full, the rest empty
    table = mask_density(mask, bins=128)
    assert len(table) == 128 * 128
    assert table.loc[table["col_bin"] == 0, "density"].tolist() == pytest.approx([1.0] * 128)
    assert table.loc[table["col_bin"] == 1, "density"].tolist() == pytest.approx([0.0] * 128)
    assert table["density"].mean() == pytest.approx(float(mask.float().mean()))
