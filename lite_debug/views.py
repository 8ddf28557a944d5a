"""What each output of a run is, read from its shape, dtype, name, the model and the other outputs.

``interpret`` turns a run's outputs into one ``OutputView`` per output: a kind (class scores,
detections, anchor scores, a mask, keypoints, a feature vector, one value per sample, …), the
one sentence that states what was assumed and why, the other kinds the output could be read as,
and the reduced data a figure needs. The dashboard draws a view with ``figures.figure_for``, the
command line prints ``summary_line`` and ``--json`` carries ``OutputView.to_dict``.

Every reading here is a guess from the model's structure, so every assumption says so
("Assumed: …, because …"). A user who knows better picks another kind from ``alternatives``
and calls ``interpret`` again with ``choose``.

Pure engine: numpy only, no plotly, no streamlit. Nothing here raises for odd outputs (empty,
NaN, complex, strings, duplicate names): such an output gets a view that says what it holds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from .records import ModelSpec, OutputTensor

__all__ = [
    "KINDS",
    "OutputHint",
    "OutputView",
    "interpret",
    "summary_line",
]

# Every kind a view can have, with the words a selector shows for it.
KINDS: dict[str, str] = {
    "classification": "class scores (top-k)",
    "detections": "detections (boxes over the input)",
    "anchor_scores": "anchor scores",
    "anchor_boxes": "anchor box regressors",
    "mask": "mask over the input",
    "class_map": "class map over the input",
    "keypoints": "keypoints",
    "embedding": "feature vector",
    "per_sample": "one value per sample",
    "image": "image",
    "scalar": "one value",
    "array": "values (slice explorer)",
    "empty": "no values",
    "unreadable": "values as text",
}

TOP_K = 5
MAX_TOP_ANCHORS = 10
_MIN_ANCHORS = 16  # fewer rows than this is a small table, not a detector's anchors
_MIN_MASK_SIDE = 8
_MAX_CLASSES_GUESS = 1001  # a vector this long may be class scores even with no labels
_DETECTION_OP = "TFLite_Detection_PostProcess"
_POINTS_NAME = re.compile(r"landmark|keypoint|key_point|mesh|lips|eye|iris|pose|joint|points|kpt", re.I)
_CLASS_NAME = re.compile(r"prob|logit|class|score|pred|softmax|label", re.I)
_BOX_NAME = re.compile(r"box|regress|loc|bbox|coord", re.I)
_SCORE_NAME = re.compile(r"score|class|conf|logit|prob", re.I)
_FLAG_NAME = re.compile(r"flag|presence|score|prob|conf|logit", re.I)


@dataclass(frozen=True)
class OutputHint:
    """What a model's own metadata says about one output (from a metadata reader).

    ``kind`` is one of ``KINDS`` or ``None``; ``labels`` the output's associated label file;
    ``activation`` is ``"softmax"``, ``"sigmoid"`` or ``"none"`` when the metadata says whether
    the values still need one; ``description`` is shown as is (as text).
    """

    kind: str | None = None
    labels: tuple[str, ...] | None = None
    activation: str | None = None
    description: str = ""


@dataclass(frozen=True, eq=False)
class OutputView:
    """How one output is read and drawn.

    ``position`` is the output's place in the run (names may repeat or be empty);
    ``assumption`` is one sentence, starting "Assumed:" for a guess, "Chosen:" when the user
    picked the kind, "Metadata:" when the model's metadata said so; ``alternatives`` are the
    kinds the output can also be read as (this one first); ``data`` holds what the figure
    needs, already reduced (the full array only where a figure thins it itself); ``facts``
    holds small JSON-ready numbers for ``--json`` and the summary line.
    """

    name: str
    position: int
    kind: str
    assumption: str
    alternatives: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)
    facts: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""

    @property
    def title(self) -> str:
        return KINDS.get(self.kind, self.kind)

    def to_dict(self) -> dict[str, Any]:
        """The view as JSON-ready data: kind, assumption, alternatives, summary and facts."""
        return {
            "kind": self.kind,
            "assumption": self.assumption,
            "alternatives": list(self.alternatives),
            "summary": self.summary,
            "facts": _jsonable(dict(self.facts)),
        }


def summary_line(view: OutputView) -> str:
    """One line for a terminal: the output, what it was read as and what that shows.

    Control characters in the output's name are escaped (names come from the model file).
    """
    name = _printable(view.name) or f"output {view.position}"
    shape = "[" + ", ".join(str(d) for d in view.shape) + "]"
    return f"{name}: {view.dtype} {shape}: {view.summary}" if view.summary else f"{name}: {view.dtype} {shape}"


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


# -- the context an output is read in ------------------------------------------------------------


@dataclass
class _Out:
    position: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    values: np.ndarray | None  # real numbers (complex as magnitude), None when not numbers
    complex_: bool
    core: tuple[int, ...]  # the shape without leading size-1 axes (at least one axis)
    quantized: bool
    hint: OutputHint | None


@dataclass
class _Context:
    outs: list[_Out]
    labels: list[str] | None
    image_hw: tuple[int, int] | None  # the model's image input, (height, width)
    input_image: np.ndarray | None  # HxWx3 uint8 for drawing over
    batch: int | None
    has_detection_op: bool
    spec_given: bool = False  # the model's inputs are known (so image_hw None means: no image input)
    roles: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # group roles


def _core(shape: tuple[int, ...]) -> tuple[int, ...]:
    dims = list(shape)
    while len(dims) > 1 and dims[0] == 1:
        dims.pop(0)
    return tuple(dims) or (1,)


def _real(values: Any) -> tuple[np.ndarray | None, bool]:
    a = np.asarray(values)
    if a.dtype.kind == "b":
        return a.astype(np.uint8), False
    if a.dtype.kind == "c":
        return np.abs(a), True
    if a.dtype.kind in "iuf":
        return a, False
    return None, False


def _image_hw(spec: ModelSpec | None, signature: str | None, input_image: np.ndarray | None) -> tuple[int, int] | None:
    if spec is not None:
        try:
            inputs = spec.io(signature)[0]
        except KeyError:
            inputs = spec.inputs
        for t in inputs:
            s = t.shape
            if len(s) == 4 and s[3] in (1, 3, 4) and min(s[1], s[2]) >= 8:
                return int(s[1]), int(s[2])
            if len(s) == 4 and s[1] in (1, 3, 4) and min(s[2], s[3]) >= 8:
                return int(s[2]), int(s[3])
    if input_image is not None and np.ndim(input_image) >= 2:
        h, w = np.shape(input_image)[:2]
        return int(h), int(w)
    return None


def _hints(metadata: Any, outputs: Sequence[OutputTensor]) -> dict[int, OutputHint]:
    """Hints per output position from ``metadata``.

    Accepted: a mapping of output name (or position) to ``OutputHint``; or an object with an
    ``outputs`` sequence, in output order, whose items may have ``kind``, ``labels``,
    ``activation`` and ``description`` attributes (what a metadata reader returns). Anything
    else is ignored.
    """
    found: dict[int, OutputHint] = {}
    if metadata is None:
        return found
    if isinstance(metadata, Mapping):
        for pos, o in enumerate(outputs):
            hint = metadata.get(pos, metadata.get(o.name))
            if isinstance(hint, OutputHint):
                found[pos] = hint
        return found
    items = getattr(metadata, "outputs", None)
    if not isinstance(items, (list, tuple)):
        return found
    for pos, item in enumerate(items[: len(outputs)]):
        kind = getattr(item, "kind", None)
        labels = getattr(item, "labels", None)
        activation = getattr(item, "activation", None)
        found[pos] = OutputHint(
            kind=kind if kind in KINDS else None,
            labels=tuple(str(x) for x in labels) if labels else None,
            activation=activation if activation in ("softmax", "sigmoid", "none") else None,
            description=str(getattr(item, "description", "") or ""),
        )
    return found


# -- the entry point -----------------------------------------------------------------------------


def interpret(
    outputs: Sequence[OutputTensor],
    spec: ModelSpec | None = None,
    *,
    signature: str | None = None,
    labels: Sequence[str] | None = None,
    metadata: Any = None,
    input_image: np.ndarray | None = None,
    batch: int | None = None,
    choose: Mapping[int, str] | None = None,
) -> list[OutputView]:
    """One view per output, in order: what each output is taken to be, and why.

    ``spec`` gives the model's inputs (an image input lets maps and points be laid over it) and
    its operators (``TFLite_Detection_PostProcess`` marks post-processed detections);
    ``labels`` are class labels (a packed ``labels.txt``); ``metadata`` gives per-output hints
    (see ``_hints``); ``input_image`` (HxWx3 uint8) is what the model saw, for drawing over;
    ``batch`` is the number of samples the data held on its first axis, when more than one;
    ``choose`` maps an output's position to the kind the user picked (an inapplicable choice
    falls back to the guess, and says so). Keeps references to the outputs' arrays; copies at
    most what a reading computes (a mask's probabilities, a class map, a softmax), each the size
    of one output. Never raises for odd outputs.
    """
    has_op = False
    if spec is not None:
        try:
            has_op = any(op.name == _DETECTION_OP for op in spec.ops)
        except Exception:  # a corrupt op table: read the outputs by their shapes alone
            has_op = False
    hints = _hints(metadata, outputs)
    outs = []
    for pos, o in enumerate(outputs):
        values, is_complex = _real(o.values)
        shape = tuple(int(d) for d in np.shape(o.values))
        outs.append(
            _Out(
                position=pos,
                name=str(o.name),
                shape=shape,
                dtype=str(np.asarray(o.values).dtype) if not o.quantization.is_quantized else o.dtype,
                values=values,
                complex_=is_complex,
                core=_core(shape),
                quantized=o.quantization.is_quantized,
                hint=hints.get(pos),
            )
        )
    image = None
    if input_image is not None:
        a = np.asarray(input_image)
        if a.ndim == 3 and a.shape[-1] >= 3 and a.size:
            image = a[..., :3]
    ctx = _Context(
        outs=outs,
        labels=[str(x) for x in labels] if labels else None,
        image_hw=_image_hw(spec, signature, image),
        input_image=image,
        batch=batch if batch and batch > 1 else None,
        has_detection_op=has_op,
        spec_given=spec is not None,
    )
    _find_detections(ctx)
    _find_anchors(ctx)
    views = []
    for o in outs:
        kinds = _applicable(o, ctx)
        wanted = (choose or {}).get(o.position)
        guess = _guess(o, ctx, kinds)
        if wanted in kinds and wanted != guess[0]:
            view = _build(wanted, o, ctx, chosen=True)
        else:
            view = _build(guess[0], o, ctx, because=guess[1])
            if wanted and wanted not in kinds:
                view = replace(
                    view,
                    assumption=f"{view.assumption} (It cannot be read as {KINDS.get(wanted, wanted)}: "
                    "its shape does not allow it.)",
                )
        ordered = (view.kind,) + tuple(k for k in kinds if k != view.kind)
        views.append(replace(view, alternatives=ordered))
    return views


# -- groups: post-processed detections and raw anchors --------------------------------------------


def _integral(v: np.ndarray) -> bool:
    return v.size > 0 and bool(np.all(np.isfinite(v))) and bool(np.all(v == np.round(v)))


def _in_unit(v: np.ndarray) -> bool:
    finite = v[np.isfinite(v)] if v.dtype.kind == "f" else v
    return finite.size > 0 and float(finite.min()) >= 0.0 and float(finite.max()) <= 1.0


def _suffix(name: str) -> int:
    m = re.search(r":(\d+)$", name)
    return int(m.group(1)) if m else 0


def _find_detections(ctx: _Context) -> None:
    """Mark the four outputs of SSD-style post-processing: boxes, classes, scores, count."""
    usable = [o for o in ctx.outs if o.values is not None and not o.complex_]
    boxes = [o for o in usable if len(o.shape) == 3 and o.shape[0] == 1 and o.shape[2] == 4]
    for b in boxes:
        m = b.shape[1]
        pair = [o for o in usable if o.shape == (1, m)]
        count = [o for o in usable if o.values.size == 1 and o is not b and o not in pair[:2]]
        if len(pair) < 2 or not count:
            continue
        named = _BOX_NAME.search(b.name) or "detection" in b.name.lower()
        if not (ctx.has_detection_op or named):
            continue
        # Classes hold whole numbers; scores lie in [0, 1]. Both can (all zeros): then the
        # post-processing op's order, boxes, classes, scores, count, by name or position.
        a, c = sorted(pair[:2], key=lambda o: (_suffix(o.name), o.position))
        for first, second in ((a, c), (c, a)):
            if "class" in first.name.lower() and "score" in second.name.lower():
                a, c = first, second
                break
        else:
            if not _integral(a.values) and _integral(c.values):
                a, c = c, a
            elif _integral(a.values) and _integral(c.values) and _in_unit(a.values) and not _in_unit(c.values):
                a, c = c, a
        classes, scores, n = a, c, count[0]
        why = (
            f"the model uses {_DETECTION_OP}, whose outputs are boxes, classes, scores and a count"
            if ctx.has_detection_op
            else "their names and shapes match SSD post-processing (boxes, classes, scores, count); the model has no "
            f"{_DETECTION_OP} op, so this is read from the names alone"
        )
        group = {"boxes": b.position, "classes": classes.position, "scores": scores.position, "count": n.position, "why": why}
        for role, o in (("boxes", b), ("classes", classes), ("scores", scores), ("count", n)):
            ctx.roles[o.position] = ("det_" + role, group)
        return


def _find_anchors(ctx: _Context) -> None:
    """Mark raw detector heads: per-anchor scores [1, N, 1|C] beside per-anchor boxes [1, N, 4+]."""
    usable = [o for o in ctx.outs if o.values is not None and not o.complex_ and o.position not in ctx.roles]
    per_anchor = [o for o in usable if len(o.core) == 2 and o.core[0] >= _MIN_ANCHORS and o.values.dtype.kind == "f"]
    per_anchor += [o for o in usable if len(o.core) == 1 and o.core[0] >= _MIN_ANCHORS and len(o.shape) >= 2
                   and o.values.dtype.kind == "f" and o not in per_anchor]
    by_n: dict[int, list[_Out]] = {}
    for o in per_anchor:
        by_n.setdefault(o.core[0], []).append(o)
    for n, group in by_n.items():
        if len(group) < 2:
            continue
        width = {o.position: (o.core[1] if len(o.core) == 2 else 1) for o in group}
        boxes = [o for o in group if width[o.position] >= 4]
        scores = [o for o in group if o not in boxes or width[o.position] == 1]
        if not boxes:
            continue
        # Of two wide heads, the one named for boxes (or exactly 4 wide) holds the boxes.
        box = next((o for o in boxes if _BOX_NAME.search(o.name)), None) or next(
            (o for o in boxes if width[o.position] == 4), boxes[0]
        )
        score = next((o for o in scores if o is not box and width[o.position] == 1), None)
        if score is None:
            score = next((o for o in group if o is not box and (_SCORE_NAME.search(o.name) or width[o.position] != 4)), None)
        if score is None:
            continue
        info = {"scores": score.position, "boxes": box.position, "n": n, "box_width": width[box.position],
                "classes": width[score.position]}
        ctx.roles[score.position] = ("anchor_scores", info)
        ctx.roles[box.position] = ("anchor_boxes", info)


# -- which kinds an output can be read as ----------------------------------------------------------


def _applicable(o: _Out, ctx: _Context) -> list[str]:
    if o.values is None:
        return ["unreadable"]
    if o.values.size == 0:
        return ["empty"]
    kinds: list[str] = []
    role = ctx.roles.get(o.position, (None, None))[0]
    if role and role.startswith("det_"):
        kinds.append("detections")
    if role in ("anchor_scores", "anchor_boxes"):
        kinds.append(role)
    if o.values.size == 1:
        return kinds + ["scalar"]
    if ctx.batch and o.shape and o.shape[0] == ctx.batch:
        kinds.append("per_sample")
    core = o.core
    if len(core) == 1:
        if core[0] >= 2:
            kinds.append("classification")
        if _point_dims(core[0]) and ctx.image_hw:
            kinds.append("keypoints")
        kinds.append("embedding")
    elif len(core) == 2:
        a, b = core
        if b in (2, 3) and a >= 3 and ctx.image_hw:
            kinds.append("keypoints")
        if min(a, b) >= _MIN_MASK_SIDE and max(a, b) <= 8 * min(a, b):  # a 896×16 table is no map
            kinds.append("mask" if o.values.dtype.kind == "f" or o.quantized else "class_map")
    elif len(core) == 3:
        hwc = _hwc_shape(core)
        if hwc is not None:
            h, w, c = hwc
            if min(h, w) >= _MIN_MASK_SIDE:
                if c == 1:
                    kinds.append("mask")
                if c in (3, 4):
                    kinds.append("image")
                if 2 <= c <= 256:
                    kinds.append("class_map")
    kinds.append("array")
    return list(dict.fromkeys(kinds))


def _point_dims(length: int) -> list[int]:
    return [d for d in (3, 2) if length % d == 0 and length // d >= 3]


def _hwc_shape(core: tuple[int, ...]) -> tuple[int, int, int] | None:
    a, b, c = core
    if c <= 256 and min(a, b) >= _MIN_MASK_SIDE and (c <= 4 or a == b or not (a <= 4)):
        return a, b, c
    if a <= 256 and min(b, c) >= _MIN_MASK_SIDE:
        return b, c, a
    return None


def _channels_last(v: np.ndarray, core: tuple[int, ...]) -> np.ndarray:
    """The 3-D core of an output as HxWxC (moved when the channels lead)."""
    x = v.reshape(core)
    hwc = _hwc_shape(core)
    if hwc is not None and hwc[2] == core[0] and hwc[:2] == core[1:] and core[2] != hwc[2]:
        return np.moveaxis(x, 0, -1)
    return x


# -- the guess -----------------------------------------------------------------------------------


def _guess(o: _Out, ctx: _Context, kinds: list[str]) -> tuple[str, str]:
    """The kind to show first, and why (the clause after "because")."""
    if kinds[0] in ("unreadable", "empty"):
        return kinds[0], ""
    if o.complex_:  # no reading of complex numbers is safe to guess: show them
        return "array", ""
    role = ctx.roles.get(o.position)
    if role and role[0].startswith("det_"):
        return "detections", role[1]["why"]
    if role and role[0] in ("anchor_scores", "anchor_boxes"):
        info = role[1]
        other = ctx.outs[info["boxes"] if role[0] == "anchor_scores" else info["scores"]]
        return role[0], f"{_shape_text(other.shape)} {_q(other.name)} beside it has a row for each of the same {info['n']} anchors"
    if o.hint and o.hint.kind in kinds:
        return o.hint.kind, "metadata"
    if "scalar" in kinds:
        return "scalar", ""
    if "per_sample" in kinds:
        return "per_sample", f"the data held {ctx.batch} samples on its first axis and this output has {ctx.batch} rows"
    core = o.core
    if len(core) == 1:
        why = _classification_reason(o, ctx)
        if why:
            return "classification", why
        pts = _points(o, ctx)
        if pts is not None:
            return "keypoints", pts[1]
        return "embedding", "no labels, name or probabilities mark it as class scores"
    if len(core) == 2 and "keypoints" in kinds:
        pts = _points(o, ctx)
        if pts is not None:
            return "keypoints", pts[1]
    if ctx.image_hw is None and ctx.spec_given and ("mask" in kinds or "class_map" in kinds):
        # A map from a model that takes no image (frames × mel bands from audio, a sensor
        # grid): no pixels to lay it over, so not read as a mask; shown as values.
        return "array", ""
    if "mask" in kinds:
        h, w = core[:2] if len(core) == 2 else _hwc_shape(core)[:2]
        return "mask", f"it is a {h}×{w} map with one value per pixel"
    if "class_map" in kinds:
        h, w, c = _hwc_shape(core) if len(core) == 3 else (*core, 1)
        labelled = ctx.labels is not None and len(ctx.labels) == c
        if "image" not in kinds or labelled:
            return "class_map", f"it holds {c} scores for each of {h}×{w} pixels" + (
                f" and labels.txt names {c} classes" if labelled else "")
        if len(core) == 2:
            return "class_map", f"it is a {h}×{w} map of whole numbers"
    if "image" in kinds:
        h, w, c = _hwc_shape(core)
        return "image", f"it is {h}×{w} with {c} channels"
    return "array", ""


def _classification_reason(o: _Out, ctx: _Context) -> str:
    v = o.values
    n = o.core[0]
    if n < 2 or (v.dtype.kind in "iu" and not o.quantized):
        return ""
    labels = _labels_for(o, ctx)
    if labels is not None and len(labels) in (n, n - 1, n + 1):
        source = "the metadata's label file" if o.hint and o.hint.labels else "labels.txt"
        return f"{source} names {len(labels)} classes and the vector holds {n} values"
    flat = v.ravel()
    if _in_unit(flat) and abs(float(np.nansum(flat)) - 1.0) < 0.01:
        return f"its {n} values are probabilities that sum to 1"
    if _CLASS_NAME.search(o.name) and not _POINTS_NAME.search(o.name):
        return f"its name {_q(o.name)} says so"
    if (ctx.image_hw and len(ctx.outs) == 1 and n <= _MAX_CLASSES_GUESS
            and not (_point_dims(n) and _POINTS_NAME.search(o.name))):
        return "it is the only output of a model that takes an image (a guess: no labels or probabilities confirm it)"
    return ""


def _labels_for(o: _Out, ctx: _Context) -> list[str] | None:
    if o.hint and o.hint.labels:
        return list(o.hint.labels)
    return ctx.labels


def _points(o: _Out, ctx: _Context) -> tuple[np.ndarray, str, str] | None:
    """(K×d points in input pixels or as given, why, where) when the output reads as keypoints.

    ``where`` is ``"pixels"``, ``"normalized"`` (scaled to the input) or ``"own"`` (not in the
    input's coordinates: drawn on their own axes).
    """
    if not ctx.image_hw:
        return None
    core = o.core
    flat = o.values.astype(np.float64).reshape(-1)
    if not np.all(np.isfinite(flat)):
        return None
    if len(core) == 2:
        dims = [core[1]] if core[1] in (2, 3) and core[0] >= 3 else []
    else:
        dims = _point_dims(core[0])
    h, w = ctx.image_hw
    named = bool(_POINTS_NAME.search(o.name))
    for d in dims:
        pts = flat.reshape(-1, d)
        x, y = pts[:, 0], pts[:, 1]
        spread = max(float(np.ptp(x)), float(np.ptp(y)))
        in_px = np.mean((x >= -0.05 * w) & (x <= 1.05 * w) & (y >= -0.05 * h) & (y <= 1.05 * h))
        if in_px >= 0.9 and spread >= 0.05 * min(h, w) and not (_in_unit(x) and _in_unit(y)):
            why = (f"its {flat.size} values split into {len(pts)} points of {d} coordinates whose x and y "
                   f"fall inside the {w}×{h} input")
            return pts, why, "pixels"
        if _in_unit(x) and _in_unit(y) and spread >= 0.02:
            why = (f"its {flat.size} values split into {len(pts)} points of {d} coordinates between 0 and 1, "
                   "taken as fractions of the input's size")
            return pts * np.array([w, h] + [1.0] * (d - 2)), why, "normalized"
    # Not in the input's coordinates. A name, or a sibling of the same shape that fits, still
    # says these are points (say, world coordinates in metres).
    sibling = next(
        (s for s in ctx.outs if s is not o and s.shape == o.shape and s.values is not None
         and s.values.dtype.kind == "f" and np.all(np.isfinite(s.values)) and _points_fit(s, ctx)),
        None,
    )
    if dims and (named or sibling is not None):
        d = dims[0]
        pts = flat.reshape(-1, d)
        because = f"its name {_q(o.name)} says so" if named else f"{_q(sibling.name)} of the same shape holds points in the input's pixels"
        why = (f"its {flat.size} values split into {len(pts)} points of {d} coordinates and {because}; "
               f"they do not fall inside the {w}×{h} input (other units, perhaps metres)")
        return pts, why, "own"
    return None


def _points_fit(o: _Out, ctx: _Context) -> bool:
    h, w = ctx.image_hw or (0, 0)
    flat = o.values.astype(np.float64).reshape(-1)
    dims = _point_dims(flat.size) if len(o.core) == 1 else ([o.core[1]] if len(o.core) == 2 and o.core[1] in (2, 3) else [])
    for d in dims:
        pts = flat.reshape(-1, d)
        x, y = pts[:, 0], pts[:, 1]
        spread = max(float(np.ptp(x)), float(np.ptp(y)))
        in_px = np.mean((x >= -0.05 * w) & (x <= 1.05 * w) & (y >= -0.05 * h) & (y <= 1.05 * h))
        if in_px >= 0.9 and spread >= 0.05 * min(h, w):
            return True
    return False


# -- building a view of each kind ------------------------------------------------------------------


def _q(name: str) -> str:
    return "'" + _printable(name) + "'" if name else "(unnamed)"


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        return np.full(x.shape, np.nan)
    z = np.where(finite, x - np.max(x[finite]), -np.inf)
    e = np.exp(z)
    return e / e.sum()


def _needs_sigmoid(v: np.ndarray, hint: OutputHint | None) -> bool:
    if hint and hint.activation:
        return hint.activation == "sigmoid"
    return not _in_unit(v)


def _build(kind: str, o: _Out, ctx: _Context, *, because: str = "", chosen: bool = False) -> OutputView:
    builder = _BUILDERS[kind]
    sentence, data, facts, summary = builder(o, ctx)
    note = ""
    if isinstance(sentence, tuple):  # (the reading, a remark that follows the reason)
        sentence, note = sentence
    if chosen:
        assumption = f"Chosen: {sentence}."
    elif because == "metadata":
        assumption = f"Metadata: {sentence}, as the model's metadata describes this output."
    elif because:
        assumption = f"Assumed: {sentence}, because {because}."
    else:
        assumption = f"{sentence[:1].upper()}{sentence[1:]}."
    if note:
        assumption += f" {note[:1].upper()}{note[1:]}."
    if o.hint and o.hint.description:
        facts = {**facts, "description": o.hint.description}
    return OutputView(
        name=o.name,
        position=o.position,
        kind=kind,
        assumption=assumption,
        alternatives=(kind,),
        shape=o.shape,
        dtype=o.dtype,
        data=data,
        facts=facts,
        summary=summary,
    )


def _stats(v: np.ndarray) -> dict[str, float]:
    flat = v.reshape(-1).astype(np.float64)
    finite = flat[np.isfinite(flat)]
    if not finite.size:
        return {"nonfinite": int(flat.size)}
    out = {"min": float(finite.min()), "max": float(finite.max()), "mean": float(finite.mean())}
    if finite.size != flat.size:
        out["nonfinite"] = int(flat.size - finite.size)
    return out


def _g(x: float) -> str:
    return f"{x:.4g}"


def _b_unreadable(o: _Out, ctx: _Context):
    return (f"read as text: its dtype {o.dtype} is not numbers", {"kind": "text"}, {}, f"{o.dtype} values, not numbers")


def _b_empty(o: _Out, ctx: _Context):
    return (f"the output holds no values (shape {_shape_text(o.shape)})", {}, {"size": 0}, "no values")


def _b_scalar(o: _Out, ctx: _Context):
    x = float(o.values.reshape(-1)[0])
    facts: dict[str, Any] = {"value": x}
    sentence = f"read as one value, {_g(x)}"
    summary = f"one value, {_g(x)}"
    if _FLAG_NAME.search(o.name) and math.isfinite(x) and not 0.0 <= x <= 1.0:
        p = float(_sigmoid(np.array(x)))
        facts["sigmoid"] = p
        sentence += f"; if it is a logit, as its name suggests, sigmoid gives {_g(p)} (a guess)"
        summary += f" (sigmoid {_g(p)} if a logit)"
    return sentence, {"value": x}, facts, summary


def _b_per_sample(o: _Out, ctx: _Context):
    n = o.shape[0]
    rows = o.values.reshape(n, -1).astype(np.float64)
    per = rows.shape[1]
    what = "one value" if per == 1 else f"{per} values"
    sentence = f"read as {what} for each of {n} samples, not as classes"
    data = {"rows": rows}
    st = _stats(rows)
    summary = f"{what} per sample for {n} samples" + (f": {', '.join(_g(x) for x in rows[:8, 0])}" if per == 1 else "")
    if per == 1 and n > 8:
        summary += ", …"
    return sentence, data, {"samples": n, "per_sample": per, **st}, summary


def _b_classification(o: _Out, ctx: _Context):
    raw = o.values.reshape(-1).astype(np.float64)
    n = raw.size
    labels = _labels_for(o, ctx)
    offset = 0
    if labels is not None and len(labels) == n - 1:
        offset = 1  # one more score than labels: a background class first
    activation = o.hint.activation if o.hint else None
    if activation == "none" or (activation is None and _in_unit(raw) and abs(float(np.nansum(raw)) - 1.0) < 0.01):
        probs, applied = raw, "already probabilities"
    elif activation == "sigmoid" or (activation is None and _in_unit(raw)):
        probs, applied = raw, "independent probabilities (they do not sum to 1)"
    else:
        probs, applied = _softmax(raw), "softmax applied: the values were not probabilities"
    finite = np.flatnonzero(np.isfinite(probs))
    k = min(TOP_K, finite.size)
    order = finite[np.argsort(-probs[finite], kind="stable")[:k]] if finite.size else finite
    names = [_class_label(int(i), labels, offset) for i in order]
    top = [{"class": int(i), "label": lab, "score": float(probs[i]), "raw": float(raw[i])} for i, lab in zip(order, names)]
    source = ""
    if labels is not None:
        source = "labels from the metadata" if o.hint and o.hint.labels else "labels from labels.txt"
        if offset:
            source += ", shifted by one for a background class"
    sentence = f"read as scores of {n} classes, {applied}" + (f"; {source}" if source else "; no labels")
    summary = (f"top class {top[0]['label']} ({_g(top[0]['score'])})" if top else "no finite scores") + f" of {n} classes"
    return sentence, {"top": top, "probs": probs, "k": k, "labelled": labels is not None}, {"classes": n, "top": top, "activation": applied}, summary


def _class_label(i: int, labels: Sequence[str] | None, offset: int = 0) -> str:
    j = i - offset
    if labels is not None and 0 <= j < len(labels) and str(labels[j]).strip():
        return f"{i}: {str(labels[j]).strip()}"
    if offset and i == 0:
        return "0: background"
    return f"class {i}"


def _b_embedding(o: _Out, ctx: _Context):
    v = o.values.reshape(-1).astype(np.float64)
    finite = v[np.isfinite(v)]
    norm = float(np.linalg.norm(finite)) if finite.size else float("nan")
    st = _stats(v)
    sentence = f"read as a feature vector of {v.size} values, not as classes"
    summary = f"feature vector of {v.size} values, L2 norm {_g(norm)}" + (
        f", min {_g(st['min'])}, max {_g(st['max'])}" if "min" in st else "")
    return sentence, {"values": v, "norm": norm}, {"length": int(v.size), "norm": norm, **st}, summary


def _b_keypoints(o: _Out, ctx: _Context):
    found = _points(o, ctx)
    if found is None:  # picked by the user with no fit: split as the shape allows, own axes
        flat = o.values.astype(np.float64).reshape(-1)
        d = o.core[1] if len(o.core) == 2 else (_point_dims(flat.size) or [2])[0]
        pts, where = flat.reshape(-1, d), "own"
        sentence = f"read as {len(pts)} points of {d} coordinates, drawn on their own axes (they do not fit the input)"
    else:
        pts, why, where = found
        d = pts.shape[1]
        place = {"pixels": "over the input", "normalized": "over the input, scaled from 0–1",
                 "own": "on their own axes"}[where]
        sentence = f"read as {len(pts)} {'3-D ' if d == 3 else ''}points, drawn {place}"
    xy = pts[:, :2]
    summary = f"{len(pts)} points" + (
        f", x {_g(xy[:, 0].min())}…{_g(xy[:, 0].max())}, y {_g(xy[:, 1].min())}…{_g(xy[:, 1].max())}")
    data = {"points": pts, "where": where, "image": ctx.input_image if where != "own" else None,
            "image_hw": ctx.image_hw}
    return sentence, data, {"points": int(len(pts)), "coordinates": int(pts.shape[1]), "where": where}, summary


def _mask_plane(o: _Out) -> np.ndarray:
    core = o.core
    v = o.values.reshape(core)
    if len(core) == 3:
        v = _channels_last(o.values, core)
        v = v[..., 0] if v.shape[-1] == 1 else v.mean(axis=-1)
    return v


def _b_mask(o: _Out, ctx: _Context):
    plane = _mask_plane(o).astype(np.float32)
    h, w = plane.shape
    sigmoid = _needs_sigmoid(plane, o.hint)
    if sigmoid:
        prob = _sigmoid(plane).astype(np.float32)
        how = "sigmoid applied: the values were not in 0–1"
    else:
        prob = plane
        how = "values in 0–1 taken as probabilities"
    labels = _labels_for(o, ctx)
    name = labels[-1] if labels and len(labels) <= 2 else None  # one label (or background + one)
    st = _stats(prob)
    covered = float(np.mean(prob[np.isfinite(prob)] >= 0.5)) if np.isfinite(prob).any() else 0.0
    what = f"'{name}'" if name else "the mask"
    sentence = f"read as a {h}×{w} mask, {how}" + (f"; labelled {what} by labels.txt" if name else "")
    overlay = _overlay_fits(ctx, h, w)
    data = {"mask": prob, "image": ctx.input_image if overlay else None, "label": name or "mask"}
    summary = f"{h}×{w} mask, {covered:.0%} of pixels at 0.5 or more" + (f" ({name})" if name else "")
    return sentence, data, {"height": h, "width": w, "sigmoid": sigmoid, "above_half": covered, **st}, summary


def _overlay_fits(ctx: _Context, h: int, w: int) -> bool:
    img = ctx.input_image
    if img is None:
        return False
    ih, iw = img.shape[:2]
    return abs((h / w) / (ih / iw) - 1.0) <= 0.03


def _b_class_map(o: _Out, ctx: _Context):
    core = o.core
    if len(core) == 2:
        classes = o.values.reshape(core)
        classes = np.where(np.isfinite(classes), classes, -1).astype(np.int32) if classes.dtype.kind == "f" else classes.astype(np.int32)
        how = "its values taken as class ids"
    else:
        hwc = _channels_last(o.values, core)
        filled = np.where(np.isnan(hwc), -np.inf, hwc) if hwc.dtype.kind == "f" else hwc
        classes = np.argmax(filled, axis=-1).astype(np.int32)
        how = f"the highest of {hwc.shape[-1]} scores taken at each pixel"
    h, w = classes.shape
    ids, counts = np.unique(classes, return_counts=True)
    labels = _labels_for(o, ctx)
    legend = [{"class": int(i), "label": _class_label(int(i), labels), "share": float(c) / classes.size}
              for i, c in sorted(zip(ids, counts), key=lambda t: -t[1])]
    sentence = f"read as a {h}×{w} map of classes, {how}" + ("; labels from labels.txt" if labels else "")
    data = {"classes": classes, "legend": legend, "image": ctx.input_image if _overlay_fits(ctx, h, w) else None}
    summary = f"{h}×{w} class map, {len(ids)} classes present: " + ", ".join(
        f"{e['label']} {e['share']:.0%}" for e in legend[:4]) + (", …" if len(legend) > 4 else "")
    return sentence, data, {"height": h, "width": w, "present": legend[:20]}, summary


def _b_image(o: _Out, ctx: _Context):
    hwc = _channels_last(o.values, o.core)
    h, w, c = hwc.shape
    return (f"read as a {h}×{w} image with {c} channels", {"image": hwc}, {"height": h, "width": w, "channels": c},
            f"{h}×{w} image, {c} channels")


def _b_array(o: _Out, ctx: _Context):
    st = _stats(o.values)
    note = "; complex values shown as their magnitude" if o.complex_ else ""
    sentence = f"shown as values: {len(o.shape)}-D, {int(o.values.size)} values{note}"
    summary = f"{int(o.values.size)} values" + (f", min {_g(st['min'])}, max {_g(st['max'])}, mean {_g(st['mean'])}" if "min" in st else "")
    return sentence, {"values": o.values, "complex": o.complex_}, st, summary


def _b_detections(o: _Out, ctx: _Context):
    role, group = ctx.roles[o.position]
    out = lambda key: ctx.outs[group[key]]  # noqa: E731
    boxes = out("boxes").values.reshape(-1, 4).astype(np.float64)
    classes = out("classes").values.reshape(-1).astype(np.float64)
    scores = out("scores").values.reshape(-1).astype(np.float64)
    count_v = float(out("count").values.reshape(-1)[0])
    m = boxes.shape[0]
    count = int(min(max(count_v, 0), m)) if math.isfinite(count_v) else m
    labels = ctx.labels
    # TF's object detection label maps often start with a placeholder for the background.
    offset = 1 if labels and str(labels[0]).strip() in ("???", "background", "__background__") else 0
    rows = []
    for i in range(count):
        c = int(classes[i]) if math.isfinite(classes[i]) else -1
        lab = labels[c + offset] if labels and 0 <= c + offset < len(labels) else f"class {c}"
        rows.append({"class": c, "label": str(lab).strip() or f"class {c}", "score": float(scores[i]),
                     "box": [float(x) for x in boxes[i]]})
    # Fractions of the input, give or take an anchor that reaches past the edge.
    kept = boxes[:count][np.isfinite(boxes[:count])]
    normalized = not kept.size or (float(kept.min()) >= -0.25 and float(kept.max()) <= 1.25)
    best = max(rows, key=lambda r: r["score"], default=None)
    if role == "det_boxes":
        sentence = (f"read as the boxes of {count} detection(s) (at most {m}) as [ymin, xmin, ymax, xmax]"
                    + (" in fractions of the input" if normalized else " in pixels")
                    + ("; labels from labels.txt" + (" after its background line" if offset else "") if labels else "; no labels"))
        summary = f"{count} detection(s)" + (f", best {best['label']} {_g(best['score'])}" if best else "")
    else:
        what = {"det_classes": "class ids", "det_scores": "scores", "det_count": "number"}[role]
        sentence = f"read as the {what} of the {count} detection(s) drawn with {_q(out('boxes').name)}"
        if role == "det_classes":
            summary = "classes " + ", ".join(r["label"] for r in rows[:8]) + (", …" if len(rows) > 8 else "")
        elif role == "det_scores":
            summary = "scores " + ", ".join(_g(r["score"]) for r in rows[:8]) + (", …" if len(rows) > 8 else "")
        else:
            summary = f"{count} detection(s)"
    data = {"rows": rows, "image": ctx.input_image, "image_hw": ctx.image_hw, "normalized": normalized,
            "draw": role == "det_boxes"}
    return sentence, data, {"count": count, "max": m, "detections": rows}, summary


def _b_anchor_scores(o: _Out, ctx: _Context):
    info = ctx.roles[o.position][1]
    v = o.values.reshape(info["n"], -1).astype(np.float64)
    if v.shape[1] == 1:
        logits = v[:, 0]
        sig = _needs_sigmoid(logits, o.hint)
        scores = _sigmoid(logits) if sig else logits
        best_class = None
        how = "sigmoid applied" if sig else "values in 0–1 taken as scores"
    else:
        sig = _needs_sigmoid(v, o.hint)
        p = _sigmoid(v) if sig else v
        best_class = np.argmax(np.where(np.isfinite(p), p, -np.inf), axis=1)
        scores = p[np.arange(len(p)), best_class]
        how = ("sigmoid applied to each class" if sig else "values in 0–1 taken as scores") + ", the best class of each anchor kept"
    n = scores.size
    finite = np.flatnonzero(np.isfinite(scores))
    top = finite[np.argsort(-scores[finite], kind="stable")[:MAX_TOP_ANCHORS]]
    boxes = ctx.outs[info["boxes"]].values.reshape(n, -1)
    rows = []
    for i in top:
        row: dict[str, Any] = {"anchor": int(i), "score": float(scores[i])}
        if best_class is not None:
            row["class"] = _class_label(int(best_class[i]), ctx.labels)
        row["regressors"] = [float(x) for x in boxes[i, :4]]
        rows.append(row)
    above = int(np.sum(scores[finite] >= 0.5))
    sentence = f"read as {n} anchor scores, {how}; not classes"
    summary = f"{n} anchor scores, {above} at 0.5 or more, highest {_g(float(scores[top[0]]))} at anchor {int(top[0])}" if top.size else f"{n} anchor scores, none finite"
    return sentence, {"scores": scores, "top": rows, "sigmoid": sig}, {"anchors": n, "above_half": above, "top": rows}, summary


def _b_anchor_boxes(o: _Out, ctx: _Context):
    info = ctx.roles[o.position][1]
    n, width = info["n"], info["box_width"]
    v = o.values.reshape(n, -1).astype(np.float64)
    scores_out = ctx.outs[info["scores"]]
    s = scores_out.values.reshape(n, -1).astype(np.float64).max(axis=1)
    finite = np.flatnonzero(np.isfinite(s))
    top = finite[np.argsort(-s[finite], kind="stable")[:MAX_TOP_ANCHORS]]
    extra = width - 4
    layout = "4 box values" + (f" then {extra // 2} points of (x, y)" if extra and extra % 2 == 0 else
                               f" then {extra} more values" if extra else "")
    rows = [{"anchor": int(i), "values": [float(x) for x in v[i]]} for i in top]
    sentence = (f"read as box regressors of {n} anchors ({layout} each, a guess)",
                "They are shown raw: decoding boxes needs anchors the file does not hold")
    summary = f"{n} anchors × {width} regressor values; rows of the {len(rows)} highest-scoring anchors listed"
    return sentence, {"top": rows, "values": v, "width": width}, {"anchors": n, "width": width, "top": rows}, summary


_BUILDERS = {
    "unreadable": _b_unreadable,
    "empty": _b_empty,
    "scalar": _b_scalar,
    "per_sample": _b_per_sample,
    "classification": _b_classification,
    "embedding": _b_embedding,
    "keypoints": _b_keypoints,
    "mask": _b_mask,
    "class_map": _b_class_map,
    "image": _b_image,
    "array": _b_array,
    "detections": _b_detections,
    "anchor_scores": _b_anchor_scores,
    "anchor_boxes": _b_anchor_boxes,
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def hints_from_metadata(spec: ModelSpec | None, model_bytes: Any) -> dict[int, OutputHint]:
    """Per-output hints from the model's TFLite metadata (``lite_debug.metadata``): each output's
    label file (TENSOR_AXIS_LABELS or TENSOR_VALUE_LABELS, read from the model's packed files),
    its description, and "detections" where the metadata says the output holds bounding boxes.
    Empty when the model has no metadata; a damaged label file is left out."""
    if spec is None:
        return {}
    try:
        metadata = spec.metadata
    except Exception:  # noqa: BLE001 - the file's metadata is its word: a damaged one says nothing
        return {}
    main = metadata.main if metadata is not None else None
    if main is None:
        return {}
    from .figures import labels_from_text
    from .inspection import packed_file

    hints: dict[int, OutputHint] = {}
    for position, tm in enumerate(main.outputs):
        labels = None
        for f in tm.associated_files:
            if not f.is_labels:
                continue
            try:
                labels = tuple(labels_from_text(packed_file(model_bytes, f.name).decode("utf-8", "replace")))
            except Exception:  # noqa: BLE001 - a missing or damaged label file: no labels
                labels = None
            break
        content = tm.content
        kind = "detections" if content is not None and content.kind == "bounding_box" else None
        if labels or kind or tm.description:
            hints[position] = OutputHint(kind=kind, labels=labels, description=tm.description)
    return hints
