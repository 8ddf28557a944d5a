"""The comparison's figure: two ~100-op models (a float model and its int8 conversion) compared
layer by layer on one sample, against the sum of their two plain runs.

A comparison here is everything ``lite_debug.compare.compare`` does for a caller with both
models loaded in a pool of two workers: the match of their tensors, a trace of each model (its
plain run, the traced run, statistics, every matched tensor's values fetched: 103 of each) in
the two workers at once, and the metrics of every pair in this process. The baseline is a plain
run of each model through the same warm pool, one after the other. The comparison runs new data
each time (two feeds alternate with the baseline's), so no trace reuses a plain run of its own data.
"""

from __future__ import annotations

import time

import numpy as np

from .models import ensure_models
from .report import Row

TARGET = 3.0


def compare_speed(reps: int, quick: bool) -> list[Row]:
    from lite_debug import Feed, WorkerPool, inspect_model
    from lite_debug.compare import Model, compare

    from .figures import _median, _paired, _repeat

    paths = ensure_models(["deep_100", "deep_100_int8"])
    models = []
    for name in ("deep_100", "deep_100_int8"):
        data = paths[name].read_bytes()
        models.append((name, data, inspect_model(data)))
    (rn, rb, rs), (cn, cb, cs) = models
    inp = rs.inputs[0]
    rng = np.random.default_rng(0)
    feeds = [Feed({inp.name: rng.uniform(-1, 1, inp.shape).astype(np.float32)}) for _ in range(2)]
    calls = 6 if quick else 15
    side: dict = {"k": 0}
    seen: dict = {}

    def ours() -> None:
        feed = feeds[side["k"] % 2]
        side["k"] += 1
        c = compare(Model(rn, rb, rs, feed), Model(cn, cb, cs, feed), pool=side["pool"])
        if not c.ran or len(c.tensors) < 100:
            raise RuntimeError(f"The comparison did not compare the layers: {c.notes}")
        seen.update(tensors=len(c.tensors), passes=c.passes, first=c.first_divergent.reference if c.first_divergent else None)

    def baseline() -> None:
        feed = feeds[side["k"] % 2]
        for data, spec in ((rb, rs), (cb, cs)):
            r = side["pool"].run(data, spec, feed)
            if not r.ok:
                raise RuntimeError(f"The plain run failed: {r.status} {r.detail}")

    def block() -> tuple[float, float]:
        side["pool"] = WorkerPool(size=2)
        try:
            ours()  # both models loaded, the marked copies built: the figure is a warm comparison's
            baseline()
            return _paired(ours, baseline, calls)
        finally:
            side["pool"].close()

    t0 = time.perf_counter()
    o, b = _repeat(reps, block)
    om, bm = _median(o) * 1000, _median(b) * 1000
    ratio = om / bm
    return [Row(
        figure=f"compare two {len(rs.graph.main.operators)}/{len(cs.graph.main.operators)}-op models layer by layer "
               "(float vs int8), one sample, models loaded",
        ours=round(om, 2), baseline=round(bm, 2), unit="ms", ratio=ratio, target=f"≤ {TARGET:.2f}×",
        passed=ratio <= TARGET,
        note=(f"vs the sum of the two plain runs; {seen.get('tensors')} matched tensors compared in "
              f"{seen.get('passes')} pass(es), two workers in parallel; {calls} calls × {reps}; "
              f"{time.perf_counter() - t0:.0f} s in all"),
        details={"ours_ms_per_rep": [t * 1000 for t in o], "baseline_ms_per_rep": [t * 1000 for t in b], **seen},
    )]
