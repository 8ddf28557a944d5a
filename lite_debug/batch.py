"""Batches: many samples in one file, run one at a time through a model that takes one.

A batch is an ``.npy``/``.npz`` whose leading dimension holds samples for a model whose batch
dimension is 1 (or another fixed size). The whole batch goes to the worker in one request and
the worker loops over it, so a batch costs what a raw ``set_tensor``/``invoke`` loop costs; the
outcome of every sample and summary statistics of every output come back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np

from .binding import bind
from .records import Explanation, Feed, ModelSpec
from . import _protocol
from .running import QueueStatus, WorkerPool, _output, _output_names, default_pool

__all__ = ["BatchResult", "batch_plan", "fix_batch", "run_batch", "sample", "stacked_samples"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class BatchResult:
    """What happened to every sample of a batch.

    ``status`` is ``ok`` (every sample ran), ``partial`` (some failed), or the status of the
    run that ended the whole batch (``error``, ``crashed``, ``timeout``, ``skipped``).
    ``outputs`` stacks each output's dequantized values over the samples (a failed sample's
    rows are zeros); ``errors`` maps a sample's index to the interpreter's message.
    """

    status: str
    count: int
    chunk: int = 1
    outputs: Mapping[str, np.ndarray] = field(default_factory=dict)
    raw: Mapping[str, np.ndarray] = field(default_factory=dict)
    errors: Mapping[int, str] = field(default_factory=dict)
    invoke_ms: Sequence[float] = ()
    total_ms: float = 0.0
    detail: str = ""
    explanation: Explanation | None = None

    @property
    def ok_count(self) -> int:
        return self.count - len(self.errors) * self.chunk if self.outputs else 0

    @property
    def statuses(self) -> list[str]:
        """``"ok"`` or the error message, per sample."""
        if not self.outputs and not self.errors and self.status != "ok":  # the whole batch failed to start
            return [self.status] * self.count
        return [self.errors.get(i - i % self.chunk, "ok") for i in range(self.count)]

    def summary(self) -> list[dict[str, Any]]:
        """Per output: shape per sample and statistics over the samples that ran.

        Statistics are over finite values; how many were NaN or infinite is counted. The most
        frequent class is given only for outputs whose rows read as probabilities (non-negative,
        summing to 1), where "class" means something.
        """
        rows = []
        failed = sorted(self.errors)
        for name, values in self.outputs.items():
            keep = np.ones(values.shape[0], dtype=bool)
            for i in failed:
                keep[i : i + self.chunk] = False
            v = values[keep].astype(np.float64) if values.dtype.kind in "biuf" else None
            row: dict[str, Any] = {"output": name, "per sample": list(values.shape[1:]), "samples": int(keep.sum())}
            if v is not None and v.size:
                finite = v[np.isfinite(v)]
                if finite.size:
                    row.update(min=float(finite.min()), max=float(finite.max()), mean=float(finite.mean()), std=float(finite.std()))
                if finite.size < v.size:
                    row["NaN/Inf"] = int(v.size - finite.size)
                if v.ndim == 2 and v.shape[1] > 1 and finite.size == v.size and _probabilities(v):
                    row["most frequent class"] = int(np.bincount(np.argmax(v, axis=1)).argmax())
            rows.append(row)
        return rows


def _probabilities(rows: np.ndarray) -> bool:
    return bool(rows.min() >= 0 and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3))


def batch_plan(spec: ModelSpec, data: Feed | Mapping[str, np.ndarray] | Sequence[np.ndarray], signature: str | None = None) -> tuple[int, int] | None:
    """``(samples, chunk)`` when ``data`` is a batch the model can run as it is, else ``None``.

    Every input (of rank 2 or more: a rank-1 input has no batch axis) must have data of the
    input's rank whose leading dimension is a multiple (above 1) of the model's batch dimension,
    with the rest of the shape matching the model's. A dynamic input resized to the data's
    leading dimension (``Feed.resize``) takes the whole stack in one run: that is no batch.
    """
    feed = bind(spec, data, signature)
    inputs, _ = spec.io(signature)
    if not inputs or any(t.name not in feed.arrays for t in inputs):
        return None
    counts = set()
    chunk = None
    for t in inputs:
        x = np.asarray(feed.arrays[t.name])
        expected = tuple(int(d) for d in feed.resize.get(t.name, t.shape))
        if len(expected) < 2 or x.ndim != len(expected) or tuple(x.shape[1:]) != expected[1:]:
            return None
        b = max(1, expected[0])
        if x.shape[0] <= b or x.shape[0] % b:
            return None
        counts.add(int(x.shape[0]))
        chunk = b if chunk is None else chunk
        if chunk != b:
            return None
    if len(counts) != 1:
        return None
    return counts.pop(), int(chunk or 1)


def run_batch(
    model_bytes: bytes,
    spec: ModelSpec,
    arrays: Feed | Mapping[str, np.ndarray] | Sequence[np.ndarray],
    *,
    signature: str | None = None,
    pool: WorkerPool | None = None,
    progress: Progress | None = None,
    owner: Hashable = None,
    keep_state: bool = False,
    on_wait: Callable[[QueueStatus], None] | None = None,
) -> BatchResult:
    """Run every sample of a batch in a worker process, reporting progress as ``progress(done, total)``.

    Each sample starts from a fresh state unless ``keep_state`` (a model with variables then
    carries them from one sample to the next, in order). ``owner`` and ``on_wait`` are the pool's
    (``WorkerPool.acquire``): when other sessions wait, a batch that has had its worker for the
    run limit gives it up between two blocks of samples and queues again for the rest.

    Raises ``ValueError`` with a sentence when ``arrays`` is not a batch for this model (see
    ``batch_plan``); the interpreter's own failures come back in the result.
    """
    feed = bind(spec, arrays, signature)
    plan = batch_plan(spec, feed, signature)
    if plan is None:
        raise ValueError(
            "The data is not a batch for this model: every input needs its samples stacked along the "
            "first dimension, with the rest of the shape as the model expects."
        )
    n, chunk = plan
    inputs, _ = spec.io(signature)
    columns = [
        (t.name if signature is not None else t.index, np.ascontiguousarray(feed.arrays[t.name])) for t in inputs
    ]
    n_chunks = (n + chunk - 1) // chunk
    t0 = time.perf_counter()
    pool = pool or default_pool()
    parts: list[_protocol.BatchDone] = []
    done = 0  # chunks done
    while done < n_chunks:
        start = done * chunk
        request = _protocol.Batch(
            n=n - start,
            chunk=chunk,
            signature=signature,
            keep_state=keep_state,
            arrays=[(key, x[start:] if start else x) for key, x in columns],
        )
        reporter = None if progress is None else (lambda k, total, start=start: progress(start + k, n))
        worker = pool.acquire(spec.sha256, owner=owner, on_wait=on_wait)
        try:
            failed, reply = worker.run_batch(model_bytes, spec, request, reporter, owner=owner)
        finally:
            pool.release(worker)
        if failed is not None:
            return BatchResult(
                status=failed.status, count=n, chunk=chunk, total_ms=(time.perf_counter() - t0) * 1000.0,
                detail=failed.detail, explanation=failed.explanation,
            )
        parts.append(replace(reply, failed={k + done: v for k, v in reply.failed.items()}))
        done += reply.done
    total_ms = (time.perf_counter() - t0) * 1000.0
    names = _output_names(spec, signature)
    values, raws = {}, {}
    for pieces in zip(*(p.outputs for p in parts)):
        stack = pieces[0].value if len(pieces) == 1 else np.concatenate([p.value for p in pieces])
        out = _output(replace(pieces[0], value=stack), names)
        # Chunks stacked on a new axis: fold it into the samples' axis.
        raws[out.name] = out.raw.reshape((-1,) + out.raw.shape[2:]) if out.raw.ndim >= 2 else out.raw
        values[out.name] = out.values.reshape((-1,) + out.values.shape[2:]) if out.values.ndim >= 2 else out.values
    failed_chunks = {k: v for p in parts for k, v in p.failed.items()}
    times = tuple((np.concatenate([p.times for p in parts]) * 1000.0).tolist()) if parts else ()
    errors = {k * chunk: msg for k, msg in sorted(failed_chunks.items())}
    explanation = None
    if errors:
        from .explain import explain

        explanation = explain(next(iter(errors.values())))
    if progress is not None:
        progress(n, n)
    notes = " ".join(dict.fromkeys(note for p in parts for note in p.notes))
    return BatchResult(
        status="ok" if not errors else "partial" if len(errors) < n_chunks else "error",
        count=n,
        chunk=chunk,
        outputs=values,
        raw=raws,
        errors=errors,
        invoke_ms=times,
        total_ms=total_ms,
        detail=" ".join(x for x in (f"{len(errors)} of {n_chunks} runs failed." if errors else "", notes) if x),
        explanation=explanation,
    )




def sample(feed: Feed, index: int, chunk: int = 1) -> Feed:
    """One sample (``chunk`` rows from ``index``) of a batch, as a feed the model takes as is."""
    return Feed({k: np.asarray(v)[index : index + chunk] for k, v in feed.arrays.items()}, resize=dict(feed.resize))


def fix_batch(
    spec: ModelSpec,
    data: Feed | Mapping[str, np.ndarray] | Sequence[np.ndarray],
    signature: str | None = None,
    *,
    choices=None,
    click: int = 0,
):
    """Fix every sample of a batch the way ``fix_all`` fixes its first one.

    The first sample is diagnosed and fixed; the same fixes (those that do not change how many
    samples there are) are then applied to the whole stack at once. A stack with one axis more
    than the input (``[n, 1, H, W, C]`` for ``[1, H, W, C]``) is first folded into one of the
    input's rank. Returns a ``FixOutcome`` whose ``remaining`` is the diagnosis of the fixed
    first sample. Raises ``ValueError`` when the data is not a batch for the model.
    """
    from .diagnosis import FixOutcome, diagnose, fix_all
    from .fixes import REGISTRY, apply_fix, make_fix
    from .records import Step

    feed = bind(spec, data, signature)
    found = stacked_samples(spec, feed, signature, choices=choices)
    if found is None:
        raise ValueError(
            "The data is not a batch for this model: a batch stacks samples on a first axis of its own, and each "
            "sample must fit the input once fixed."
        )
    _, chunk, fold = found
    steps: list[Step] = []
    inputs, _ = spec.io(signature)
    if fold:
        for t in inputs:
            x = np.asarray(feed.arrays[t.name])
            fix = make_fix("reshape", t.name, shape=[x.shape[0] * x.shape[1], *x.shape[2:]])
            feed = apply_fix(feed, fix)
            steps.append(Step(fix=fix, answered=None, feed=feed, click=click))
    first = fix_all(spec, sample(feed, 0, chunk), signature, choices=choices, click=click)
    for step in first.steps:
        if REGISTRY[step.fix.kind].changes_samples:
            continue
        feed = apply_fix(feed, step.fix)
        steps.append(Step(fix=step.fix, answered=step.answered, feed=feed, click=click))
    return FixOutcome(feed=feed, steps=tuple(steps), remaining=tuple(diagnose(spec, sample(feed, 0, chunk), signature, choices=choices)))


def stacked_samples(
    spec: ModelSpec, feed: Feed, signature: str | None = None, *, choices=None
) -> tuple[int, int, bool] | None:
    """``(samples, chunk, fold)`` when the data stacks several samples on a first axis of its
    own, whatever else still needs fixing in each; ``None`` otherwise.

    The rule, so that a photo is never read as a batch of its rows: every input's data has the
    input's rank (samples on the batch axis, ``fold`` False) or one more (a sample axis in front
    of samples of the input's own shape, ``fold`` True), with a leading dimension above the
    model's batch size, the same for every input; and its first sample fits the input once the
    usual fixes are applied. Data of one rank less than the input is one sample missing its
    batch axis, not a batch. An input whose batch axis was resized to the data's takes it whole.
    """
    from .diagnosis import fix_all

    inputs, _ = spec.io(signature)
    if not inputs or any(t.name not in feed.arrays for t in inputs):
        return None
    counts, folds = set(), set()
    for t in inputs:
        x = np.asarray(feed.arrays[t.name])
        expected = tuple(int(d) for d in feed.resize.get(t.name, t.shape))
        if len(expected) < 2 or x.ndim not in (len(expected), len(expected) + 1):
            return None
        fold = x.ndim == len(expected) + 1
        if fold and x.shape[1] != expected[0]:
            return None
        b = max(1, expected[0])
        if fold and x.shape[0] < 2:
            return None
        if not fold and (x.shape[0] <= b or x.shape[0] % b):
            return None
        counts.add(int(x.shape[0]))
        folds.add(fold)
    if len(counts) != 1 or len(folds) != 1:
        return None
    count, fold = counts.pop(), folds.pop()
    chunk = max(1, int(inputs[0].shape[0]))
    first = Feed(
        {t.name: np.asarray(feed.arrays[t.name])[0] if fold else np.asarray(feed.arrays[t.name])[0:chunk] for t in inputs},
        resize=dict(feed.resize),
    )
    outcome = fix_all(spec, first, signature, choices=choices)
    if any(m.severity == "error" for m in outcome.remaining):
        return None
    return (count * chunk if fold else count), chunk, fold
