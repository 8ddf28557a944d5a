"""The ``text-parse`` figure: CSV and JSON through ``load_data`` against pandas' bare C reader.

Issue 15 measured, within the 64 MiB text cap, a one-row CSV at 27 s and 1.26 GB, a
16.5 M-row CSV at 79 s of CPU and a 64 MiB JSON list at about 9 s and 1.5 GB. Each row here
parses 16 MiB of one of those shapes with ``load_data`` (every check, the narrow dtypes, the
messages' bookkeeping) and, alternating with it, reads the same numbers one a line with a
single ``pandas.read_csv`` call and no checks at all: the cheapest way to turn that much text
into a float array here. Targets: at most 2× that baseline's time, and Python's traced peak
(``tracemalloc``, run once apart from the timing) under 5× the file.
"""

from __future__ import annotations

import io
import statistics
import time
import tracemalloc
from typing import Callable

import numpy as np

from .report import Row

MB = 1 << 20
SIZE = 16 * MB


def _cases() -> dict[str, tuple[str, bytes]]:
    values = SIZE // 4
    return {
        "one-row CSV": ("row.csv", (b"0.5," * values)[:-1]),
        "many-row CSV": ("rows.csv", b"0.5\n" * values),
        "JSON list": ("list.json", b"[" + b"0.5," * (values - 1) + b"0.5]"),
    }


def _baseline(values: int) -> Callable[[], object]:
    import pandas as pd

    flat = b"0.5\n" * values

    def read() -> object:
        return pd.read_csv(io.BytesIO(flat), header=None, engine="c", dtype=np.float32)[0].to_numpy()

    return read


def text_parse(reps: int, quick: bool) -> list[Row]:
    from lite_debug.loading import load_data

    rows: list[Row] = []
    load_data("warm.csv", b"1,2\n3,4\n")  # pandas' import is not the parse's cost
    for figure, (name, data) in _cases().items():
        baseline = _baseline(SIZE // 4)

        def ours(name: str = name, data: bytes = data) -> object:
            return load_data(name, data)

        ours_t: list[float] = []
        base_t: list[float] = []
        for i in range(reps if not quick else max(1, reps - 1)):
            pair = ((ours, ours_t), (baseline, base_t)) if i % 2 == 0 else ((baseline, base_t), (ours, ours_t))
            for fn, times in pair:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        tracemalloc.start()
        ours()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        o, b = statistics.median(ours_t), statistics.median(base_t)
        ratio = o / b
        rows.append(
            Row(
                figure=f"text-parse: {figure}, 16 MiB",
                ours=o * 1000,
                baseline=b * 1000,
                unit="ms",
                ratio=ratio,
                target="≤ 2.0×, peak < 5× the file",
                passed=ratio <= 2.0 and peak < 5 * len(data),
                note=f"traced peak {peak / len(data):.1f}× the file; baseline: one pandas.read_csv of the same numbers one a line",
                details={"ours_s": ours_t, "baseline_s": base_t, "peak_bytes": peak, "file_bytes": len(data)},
            )
        )
    return rows
