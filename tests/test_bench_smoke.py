"""The benchmark suite imports, renders its table, and measures one cheap figure (no speed asserted)."""

from __future__ import annotations

import math

import pytest

import bench.__main__ as bench_main
from bench import figures, report


def test_every_figure_is_registered_with_a_target():
    assert set(figures.FIGURES) == set(bench_main.TARGETS)
    ns = bench_main._parse(["--quick", "--only", "inspect,memory"])
    assert ns.names == ["inspect", "memory"] and ns.reps == 3
    with pytest.raises(SystemExit):
        bench_main._parse(["--only", "no-such-figure"])


def test_table_renders_rows_and_the_machine():
    rows = [
        report.Row("a figure", 2.0, 1.0, "ms", 2.0, "≤ 1.25×", False, note="why"),
        report.Row("not measured", None, None, "samples/s", None, "≥ 0.90× throughput", None, note="not available"),
    ]
    text = report.markdown(rows, report.machine(3))
    assert "| a figure | 2.000 ms | 1.000 ms | 2.00× | ≤ 1.25× | **FAIL** |" in text
    assert "| not measured | — | — | — | ≥ 0.90× throughput | n/a |" in text
    assert "ai-edge-litert" in text and "cores" in text


@pytest.mark.slow
def test_inspect_figure_on_the_smallest_model_gives_sensible_numbers():
    pytest.importorskip("tensorflow", reason="the bench models are built with TensorFlow's converter")
    (row,) = figures.inspect_diagnose(1, True, names=("dense_10k",))
    assert row.unit == "ms" and row.passed is not None
    assert 0 < row.ours < 10_000 and 0 < row.baseline < 10_000
    assert math.isclose(row.ratio, row.ours / row.baseline)
    assert 5_000 < row.details["model_bytes"] < 20_000
    assert row.details["traced_peak_bytes"] > 0


def test_swapping_cpus_cancels_a_slow_cpu():
    # CPU 1 runs at half speed: with the worker there ours doubles, with the benchmark there the
    # baseline doubles. The geometric mean over the two placements gives the true ratio, 1.2.
    o, b, per_place = figures._combine([[2.4, 2.5, 2.4], [1.2, 1.2]], [[1.0, 1.0, 0.9], [2.0, 2.0]])
    assert math.isclose(o / b, 1.2) and per_place == [2.4, 0.6]
    o, b, per_place = figures._combine([[3.0, 1.0, 2.0]], [[1.0, 1.0, 1.0]])  # nothing pinned
    assert (o, b, per_place) == (2.0, 1.0, [2.0])


def test_the_bench_writes_the_projects_bytecode_before_measuring(tmp_path):
    """As an install does: without it every worker compiles each module it imports, each time."""
    for d in ("lite_debug", "pages"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "m.py").write_text("X = 1\n")
    said = bench_main._compile_bytecode(tmp_path)
    assert said.startswith("compiled before measuring")
    for d in ("lite_debug", "pages"):
        assert list((tmp_path / d / "__pycache__").glob("m.*.pyc"))
    (tmp_path / "pages" / "bad.py").write_text("def (\n")
    assert bench_main._compile_bytecode(tmp_path).startswith("compiling failed")
