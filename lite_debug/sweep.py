"""The preprocessing sweep: run the model once per candidate preprocessing, and score each.

When the model does not say which value range it was trained on, or which resize filter made
its training images, the way to find out on the user's own data is to try: a handful of runs,
each a few milliseconds. Each candidate is a set of picks for the open choices (value range ×
resize filter), fixed with ``fix_all`` exactly as "Apply all fixes" would with those picks, run
in a worker, and given a plain score of how confident the outputs look: a classifier's top
probability, a detector's highest score. The score is evidence for a person, not a verdict: a
confident model is not always a right one, and outputs that are neither a classifier's nor a
detector's get no score at all.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .choices import choices as find_choices, pending_fixes
from .diagnosis import fix_all
from .records import Choice, Feed, Fix, ModelSpec, OutputTensor, RunResult

__all__ = ["Candidate", "Score", "candidates", "run_sweep", "score_outputs"]

# OpenCV's INTER_LINEAR samples where tf.image.resize does: on float data the two agree to
# 1e-5, so the sweep tries TensorFlow's filter and Pillow's (which antialiases), not all three.
_SWEPT_METHODS = ("tf", "pillow")
MAX_CANDIDATES = 12


@dataclass(frozen=True)
class Score:
    """How confident a run's outputs look. ``value`` is in [0, 1] (higher: more confident), or
    None when no output is a classifier's or a detector's; ``basis`` says what was measured."""

    value: float | None
    basis: str
    summary: str


@dataclass(frozen=True, eq=False)
class Candidate:
    """One preprocessing tried: the picks, the fixes they led to, the run, and its score."""

    picks: Mapping[str, str]
    label: str
    fixes: tuple[Fix, ...]
    result: RunResult | None
    score: Score
    best: bool = False
    problem: str = ""

    def row(self) -> dict[str, Any]:
        """A table row: the candidate, its score and what the score says."""
        status = self.problem or (self.result.status if self.result is not None else "not run")
        return {
            "candidate": self.label,
            "score": "" if self.score.value is None else round(self.score.value, 4),
            "what it shows": self.score.summary if self.result is not None and self.result.ok else status,
            "best": "←" if self.best else "",
        }

    def to_dict(self) -> dict[str, Any]:
        from .report import run_to_dict

        return {
            "picks": dict(self.picks),
            "label": self.label,
            "fixes": [f.to_dict() for f in self.fixes],
            "status": self.result.status if self.result is not None else "skipped",
            "score": self.score.value,
            "score_basis": self.score.basis,
            "summary": self.score.summary,
            "best": self.best,
            "problem": self.problem or None,
            "run": run_to_dict(self.result) if self.result is not None and not self.result.ok else None,
        }


def candidates(found: Sequence[Choice]) -> list[dict[str, str]]:
    """The picks to try: every value range on offer × TensorFlow's and Pillow's resize filter,
    each the same for every input; at most ``MAX_CANDIDATES``. Empty when nothing is open."""
    ranges = [c for c in found if c.topic == "value range"]
    methods = [c for c in found if c.topic == "resize method"]
    axes: list[list[dict[str, str]]] = []
    if ranges:
        options = [k for k, _ in ranges[0].options]
        axes.append([{c.key: o for c in ranges if o in {k for k, _ in c.options}} for o in options])
    if methods:
        axes.append([{c.key: m for c in methods} for m in _SWEPT_METHODS])
    if not axes:
        return []
    return [dict(kv for part in combo for kv in part.items()) for combo in itertools.product(*axes)][:MAX_CANDIDATES]


def _label(picks: Mapping[str, str], found: Sequence[Choice]) -> str:
    parts = []
    for c in found:
        if c.key in picks and not any(p.startswith(f"{c.topic}:") for p in parts):
            parts.append(f"{c.topic}: {picks[c.key]}")
    return ", ".join(parts)


def run_sweep(
    model_bytes: bytes,
    spec: ModelSpec,
    original: Feed,
    signature: str | None = None,
    *,
    pool: Any = None,
    choices: Sequence[Choice] | None = None,
    progress: Callable[[int, int], None] | None = None,
    owner: Any = None,
) -> list[Candidate]:
    """Fix ``original`` (the data as given) once per candidate, run each, score each.

    Uses the worker ``pool`` (the default pool when None). The candidate with the highest score
    among the runs that succeeded is marked ``best``. Returns [] when no choice is open.
    """
    from .running import default_pool

    pool = pool or default_pool()
    base = {c.key: c.chosen for c in choices if c.source == "preference"} if choices else {}
    found = list(choices) if choices is not None else find_choices(spec, original, signature, model_bytes=model_bytes)
    todo = candidates(found)
    done: list[Candidate] = []
    for i, picks in enumerate(todo):
        if progress is not None:
            progress(i, len(todo))
        mine = find_choices(spec, original, signature, {**base, **picks}, model_bytes=model_bytes)
        outcome = fix_all(spec, original, signature, choices=mine, extra=pending_fixes(mine, ()))
        errors = [m for m in outcome.remaining if m.severity == "error"]
        if errors:
            done.append(Candidate(picks, _label(picks, found), outcome.applied, None, Score(None, "", ""),
                                  problem=f"not run: {errors[0].message}"))
            continue
        result = pool.run(model_bytes, spec, outcome.feed, signature, owner=owner, expect_more=i + 1 < len(todo))
        score = score_outputs(result.outputs) if result.ok else Score(None, "", "")
        done.append(Candidate(picks, _label(picks, found), outcome.applied, result, score))
    if progress is not None:
        progress(len(todo), len(todo))
    scored = [c for c in done if c.result is not None and c.result.ok and c.score.value is not None]
    if scored:
        best = max(scored, key=lambda c: c.score.value)  # type: ignore[arg-type, return-value]
        done = [Candidate(c.picks, c.label, c.fixes, c.result, c.score, best=c is best, problem=c.problem) for c in done]
    return done


def _softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max())
    return e / e.sum()


def _is_probabilities(v: np.ndarray) -> bool:
    return bool(v.min() >= 0 and abs(float(v.sum()) - 1.0) < 1e-3)


def score_outputs(outputs: Sequence[OutputTensor]) -> Score:
    """A plain confidence score of one run's outputs (see ``Score``).

    Detectors first: anchor logits ``[1, N, 1]`` (sigmoid) or post-processed scores ``[1, N]``
    beside ``[1, N, 4]`` boxes; then classifiers: a ``[1, C]`` vector (softmax unless it
    already sums to 1). Anything else gets no score.
    """
    by_shape = {tuple(o.shape) for o in outputs}
    for o in outputs:
        v = np.asarray(o.values, dtype=np.float64)
        if not v.size or not np.isfinite(v).all():
            continue
        if v.ndim == 3 and v.shape[0] == 1 and v.shape[2] == 1 and v.shape[1] > 1:
            p = v if v.min() >= 0 and v.max() <= 1 else 0.5 * (1.0 + np.tanh(v / 2.0))  # sigmoid, no overflow
            k = int(p.argmax())
            return Score(float(p.max()), "highest detection score",
                         f"highest of {v.shape[1]} anchor scores {p.max():.3f} (anchor {k}); {(p > 0.5).sum()} above 0.5")
        if v.ndim == 2 and v.shape[0] == 1 and (1, v.shape[1], 4) in by_shape and v.min() >= 0 and v.max() <= 1:
            return Score(float(v.max()), "highest detection score", f"highest of {v.shape[1]} detection scores {v.max():.3f}")
    for o in outputs:
        v = np.asarray(o.values, dtype=np.float64)
        if not v.size or not np.isfinite(v).all():
            continue
        if v.ndim in (1, 2) and v.shape[-1] >= 2 and v.size == v.shape[-1]:
            row = v.ravel()
            p = row if _is_probabilities(row) else _softmax(row)
            entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
            k = int(p.argmax())
            return Score(float(p.max()), "top class probability",
                         f"class {k} with p = {p.max():.3f}; entropy {entropy:.2f} of {np.log2(len(p)):.2f} bits")
    return Score(None, "none", "no score: the outputs are neither a classifier's nor a detector's")
