"""benchmarks/bench_scale.py on its small shape (the code path of the 7B run) and its projection."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from analyses.stats.flops import DecoderShape
from benchmarks import bench_scale

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_backend():
    return bench_scale.random_backend("small")


def test_small_shape_measurements(small_backend):
    assert small_backend.dtype == torch.bfloat16
    assert (small_backend.n_layers, small_backend.d_model, small_backend.vocab_size) == (4, 512, 32000)
    measurements = bench_scale.run_measurements(small_backend, grad_layers=2)
    assert [m.probe for m in measurements] == ["lens"] * 4 + ["gradient-cosine pair", "generation"]
    assert all(m.peak_beyond_bytes >= 0 and m.wall_s > 0 for m in measurements)
    lens_16 = measurements[2]
    assert lens_16.setting.startswith("16 prompts") and 0 < lens_16.peak_beyond_bytes < bench_scale.GIB
    # side A's gradient of two blocks' matrices is kept while side B's is made: at least that much
    pair = measurements[4]
    assert pair.peak_beyond_bytes >= 2 * bench_scale.block_params(DecoderShape.from_config(small_backend.config))
    table = bench_scale.measured_markdown(measurements, weights_bytes=bench_scale.GIB)
    assert table.count("\n| lens |") == 4 and "| generation |" in table


def test_parameter_counts_are_llama2s():
    counts = {size: bench_scale.n_params(bench_scale.llama2_shape(size)) for size in bench_scale.LLAMA2}
    assert counts == {"7B": 6_738_415_616, "13B": 13_015_864_320, "70B": 68_976_648_192}


def test_projection_grows_with_the_model():
    rows = bench_scale.projected_rows()
    assert {row.size for row in rows} == {"7B", "13B", "70B"}
    for setting in {row.setting for row in rows}:
        by_size = [row for row in rows if row.setting == setting]
        assert [row.size for row in by_size] == ["7B", "13B", "70B"]
        for small, large in zip(by_size, by_size[1:]):
            assert large.total_gb > small.total_gb and large.seconds > small.seconds
            assert large.gpus_80 >= small.gpus_80 and large.gpus_40 >= small.gpus_40
    assert all(row.gpus_40 >= row.gpus_80 >= 1 for row in rows)


def test_docs_show_the_projection_it_makes():
    page = (ROOT / "docs" / "scale.md").read_text(encoding="utf-8")
    assert bench_scale.projected_markdown() in page
    assert bench_scale.formula_at_measured_markdown() in page
