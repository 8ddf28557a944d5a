"""Compare the data with what each input of the model expects, and say what does not fit.

A diagnosis is a list of ``Mismatch`` records, one per problem, each with the fixes that
resolve it. An empty list means the interpreter will accept the data as it is. ``fix_all``
applies the suggested fixes in a sensible order until nothing is left to fix.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .audio_diagnosis import check_audio
from .binding import bind
from .errors import FixError
from .choices import by_input, choices as find_choices, parse_range
from .fixes import FIX_ORDER, apply_fix, make_fix
from .quantization import dtype_range, real_range
from .records import Choice, Feed, Fix, Mismatch, ModelCheck, ModelSpec, RunResult, Step, TensorSpec

__all__ = ["FixOutcome", "check_mismatches", "diagnose", "explain_result", "fix_all", "signatures_that_fit"]

_IMAGE_CHANNELS = (1, 3, 4)
_CHANNEL_WORDS = {1: "grayscale", 3: "RGB", 4: "RGBA"}
_DIM_WORDS_NHWC = {0: "batch", 1: "height", 2: "width", 3: "channels"}


def _shape(dims: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in dims) + "]"


def _looks_nhwc(shape: Sequence[int]) -> bool:
    return len(shape) == 4 and shape[3] in _IMAGE_CHANNELS and shape[1] not in _IMAGE_CHANNELS


def _looks_nchw(shape: Sequence[int]) -> bool:
    return len(shape) == 4 and shape[1] in _IMAGE_CHANNELS and shape[3] not in _IMAGE_CHANNELS


def _dim_name(t: TensorSpec, d: int) -> str:
    if _looks_nhwc(t.shape) or (t.rank == 4 and d in _DIM_WORDS_NHWC and t.shape[3] in _IMAGE_CHANNELS):
        return f"dimension {d} ({_DIM_WORDS_NHWC[d]})"
    if d == 0 and t.rank >= 2:
        return "dimension 0 (batch)"
    return f"dimension {d}"


class _Checker:
    """Collects the mismatches of one input."""

    def __init__(
        self, position: int, tensor: TensorSpec, x: np.ndarray, expected: tuple[int, ...], signature: str | None,
        choices: Mapping[str, Choice] | None = None,
    ):
        self.pos, self.t, self.x, self.expected, self.signature = position, tensor, x, expected, signature
        self.choices = dict(choices or {})  # by topic, for this input
        self.found: list[Mismatch] = []

    def add(
        self, kind: str, severity: str, expected: str, got: str, message: str, fixes: Sequence[Fix] = (),
        dimension: int | None = None, choice: Choice | None = None,
    ) -> None:
        self.found.append(
            Mismatch(
                input_index=self.pos,
                input_name=self.t.name,
                kind=kind,  # type: ignore[arg-type]
                severity=severity,  # type: ignore[arg-type]
                expected=expected,
                got=got,
                message=message,
                fixes=tuple(fixes),
                dimension=dimension,
                choice=choice.key if choice is not None else None,
            )
        )

    def fix(self, kind: str, **params) -> Fix:
        return make_fix(kind, self.t.name, **params)

    # -- structure -------------------------------------------------------------------------
    def structure(self) -> bool:
        """Check rank, batch, layout, channels and sizes. True when the shape is settled.

        Each structural problem found is reported, then checking goes on as if its fix had been
        applied, so one pass lists everything (a PNG into a classifier: no batch axis *and* the
        wrong size), not only the first thing in the way.
        """
        t, x, exp = self.t, self.x, self.expected
        got = tuple(int(d) for d in x.shape)
        name = f"input {self.pos} ({t.name!r})"
        sig = t.shape_signature if len(t.shape_signature) == len(exp) else exp
        if got == exp:
            return True
        if len(got) == 2 and len(exp) == 4 and exp[3] in _IMAGE_CHANNELS:
            fix = self.fix("to_rgb") if exp[3] == 3 else self.fix("add_channel")
            self.add(
                "channels", "error", _shape(exp), _shape(got),
                f"{_cap(name)} expects {_CHANNEL_WORDS[exp[3]]} images {_shape(exp)}, but the data is a single "
                f"{_shape(got)} plane without a channel axis (a grayscale image).",
                [fix],
            )
            got = got + (exp[3],)
        if len(got) == len(exp) - 1:
            if exp[-1] == 1 and _compatible(got, exp[:-1], sig[:-1]):
                self.add(
                    "rank", "error", _shape(exp), _shape(got),
                    f"{_cap(name)} expects a trailing channel axis of size 1, {_shape(exp)}, but the data is {_shape(got)}.",
                    [self.fix("add_channel")],
                )
                return False
            if exp[0] == 1 or sig[0] == -1:
                self.add(
                    "batch", "error", _shape(exp), _shape(got),
                    f"{_cap(name)} expects {len(exp)} dimensions with the batch first, {_shape(exp)}, but the data "
                    f"has {len(got)}, {_shape(got)}: the batch dimension is missing.",
                    [self.fix("add_batch")],
                )
                got = (1,) + got
        elif len(got) == len(exp) + 1 and got[0] == 1:
            self.add(
                "batch", "error", _shape(exp), _shape(got),
                f"{_cap(name)} expects {len(exp)} dimensions, {_shape(exp)}, but the data has an extra leading "
                f"dimension of size 1, {_shape(got)}.",
                [self.fix("remove_batch")],
            )
            got = got[1:]
        if len(got) != len(exp):
            fixes = [self.fix("reshape", shape=list(exp))] if int(np.prod(got)) == int(np.prod(exp)) else []
            self.add(
                "rank", "error", _shape(exp), _shape(got),
                f"{_cap(name)} expects {len(exp)} dimensions, {_shape(exp)}, but the data has {len(got)}, {_shape(got)}.",
                fixes,
            )
            return False
        # Same rank from here on.
        if len(exp) == 4 and got != exp:
            to_nhwc = (got[0], got[2], got[3], got[1])
            to_nchw = (got[0], got[3], got[1], got[2])
            if _looks_nhwc(exp) and (_compatible(to_nhwc, exp, sig) or (_looks_nchw(got) and got[1] == exp[3])):
                self.add(
                    "layout", "error", f"NHWC {_shape(exp)}", f"NCHW {_shape(got)}",
                    f"{_cap(name)} is channels-last (NHWC) {_shape(exp)}, but the data is channels-first (NCHW) "
                    f"{_shape(got)}, as PyTorch exports it.",
                    [self.fix("nchw_to_nhwc")],
                )
                got = to_nhwc
            if _looks_nchw(exp) and (_compatible(to_nchw, exp, sig) or (_looks_nhwc(got) and got[3] == exp[1])):
                self.add(
                    "layout", "error", f"NCHW {_shape(exp)}", f"NHWC {_shape(got)}",
                    f"{_cap(name)} is channels-first (NCHW) {_shape(exp)}, but the data is channels-last (NHWC) {_shape(got)}.",
                    [self.fix("nhwc_to_nchw")],
                )
                got = to_nchw
        settled = not self.found
        dynamic_needed = False
        image = len(exp) == 4 and exp[3] in _IMAGE_CHANNELS
        spatial_reported = False
        for d, (g, e) in enumerate(zip(got, exp)):
            if g == e:
                continue
            if sig[d] == -1:
                dynamic_needed = True
                continue
            settled = False
            if image and d == 3 and g in _IMAGE_CHANNELS:
                kind = {(1, 3): "to_rgb", (4, 3): "drop_alpha", (3, 1): "to_gray", (4, 1): "to_gray"}.get((g, e))
                self.add(
                    "channels", "error", f"{e} ({_CHANNEL_WORDS[e]})", f"{g} ({_CHANNEL_WORDS[g]})",
                    f"{_cap(name)} expects {_CHANNEL_WORDS[e]} data with {e} channel(s) in dimension 3, but the data "
                    f"has {g} ({_CHANNEL_WORDS[g]}).",
                    [self.fix(kind)] if kind else [], dimension=d,
                )
            elif d == 0 and len(exp) >= 2:
                fixes = [self.fix("take_sample", index=0)] if e == 1 else []
                self.add(
                    "batch", "error", str(e), str(g),
                    f"{_cap(name)} takes a batch of exactly {e} in dimension 0, but the data holds {g}; run the samples "
                    f"{'one at a time' if e == 1 else f'in batches of {e}'}.",
                    fixes, dimension=0,
                )
            elif image and d in (1, 2):
                if spatial_reported:
                    continue
                spatial_reported = True
                h, w = exp[1], exp[2]
                which = [k for k in (1, 2) if got[k] != exp[k]]
                dims = " and ".join(_dim_name(self.t, k) for k in which)
                method_choice, mode_choice = self.choices.get("resize method"), self.choices.get("resize mode")
                method = method_choice.chosen if method_choice else "tf"
                modes = ["stretch", "crop", "pad"]
                if mode_choice is not None and mode_choice.chosen in modes:
                    modes.remove(mode_choice.chosen)
                    modes.insert(0, mode_choice.chosen)
                self.add(
                    "shape", "error", f"{h}×{w}", f"{got[1]}×{got[2]}",
                    f"{_cap(name)} expects {h}×{w} images, but the data is {got[1]}×{got[2]} ({dims} differ); "
                    f"resize the image to the size the model was trained on.",
                    [self.fix("resize_image", height=h, width=w, mode=m, method=method) for m in modes],
                    dimension=which[0], choice=mode_choice,
                )
            else:
                fixes = [self.fix("reshape", shape=list(exp))] if int(np.prod(got)) == int(np.prod(exp)) else []
                self.add(
                    "shape", "error", str(e), str(g),
                    f"{_cap(name)} expects size {e} in {_dim_name(self.t, d)}, but the data has {g}.",
                    fixes, dimension=d,
                )
        if settled and dynamic_needed:
            if self.signature is not None:
                return True  # a signature runner resizes its inputs itself
            dyn = [d for d in range(len(exp)) if got[d] != exp[d]]
            fixes = [self.fix("resize_input", index=self.t.index, shape=list(got))]
            if 0 in dyn and got[0] > 1:
                fixes.append(self.fix("take_sample", index=0))
            self.add(
                "dynamic", "error", _shape(exp), _shape(got),
                f"{_cap(name)} accepts any size in {', '.join(_dim_name(self.t, d) for d in dyn)} "
                f"(shape signature {self.t.shape_text(signature=True)}), but the interpreter is allocated for "
                f"{_shape(exp)}; call resize_tensor_input with {_shape(got)} and allocate_tensors() before set_tensor.",
                fixes, dimension=dyn[0],
            )
            return False
        return settled

    # -- values ----------------------------------------------------------------------------
    def values(self) -> None:
        t, x = self.t, self.x
        name = f"input {self.pos} ({t.name!r})"
        want = t.numpy_dtype
        if want is None:
            return  # strings, resources: nothing we can check about the values
        got = x.dtype
        lo, hi, bad = _value_range(x)
        if got.kind in "fc":
            if bad:
                self.add(
                    "nan", "warning", "finite values", f"{bad} NaN/Inf",
                    f"{_cap(name)}: {bad} of {x.size} values are NaN or infinite; the model will run, but its outputs "
                    f"will be meaningless.",
                    [self.fix("nan_to_num")],
                )
        q = t.quantization
        rr = real_range(q, want) if want.kind in "iu" else None
        if got != want:
            if want.kind in "iu" and q.is_quantized and got.kind in "f":
                scale, zp = q.scale[0], (q.zero_point[0] if q.zero_point else 0)
                fixes = [self.fix("quantize", dtype=want.name, scale=scale, zero_point=zp)]
                self.add(
                    "quantization", "error", f"{want.name} (scale {scale:.6g}, zero point {zp})", got.name,
                    f"{_cap(name)} is quantized to {want.name} with scale {scale:.6g} and zero point {zp}, but the data "
                    f"is {got.name}: quantize it as q = round(x / {scale:.6g}) + {zp}, clipped to the {want.name} range, "
                    f"instead of casting.",
                    fixes,
                )
            elif want.kind in "iu" and q.is_quantized and got.kind in "iu" and rr is not None:
                scale, zp = q.scale[0], (q.zero_point[0] if q.zero_point else 0)
                src = (0.0, 255.0) if got == np.uint8 else (lo, hi)
                chosen = self.choices.get("value range")
                target = list(parse_range(chosen.chosen)) if chosen is not None else [rr[0], rr[1]]
                fixes = [
                    self.fix("quantize", dtype=want.name, scale=scale, zero_point=zp, source=list(src), target=target),
                    self.fix("cast", dtype=want.name),
                ]
                self.add(
                    "dtype", "error", want.name, got.name,
                    f"{_cap(name)} expects {want.name} (quantized: scale {scale:.6g}, zero point {zp}, real values "
                    f"{rr[0]:.3g}…{rr[1]:.3g}), but the data is {got.name}; map the data to that real range and quantize, "
                    f"rather than cast.",
                    fixes, choice=chosen,
                )
            elif want.kind == "f" and got == np.uint8:
                chosen = self.choices.get("value range")
                fixes = self._range_fixes(chosen, want.name, cast_too=True)
                self.add(
                    "dtype", "error", want.name, got.name,
                    f"{_cap(name)} expects {want.name}, but the data is {got.name} (pixels 0–255, like a decoded image); "
                    + (
                        f"it must be scaled to the range the model was trained on ({_range_note(chosen)})."
                        if chosen is not None else "float image models usually expect [0, 1] or [-1, 1]."
                    ),
                    fixes, choice=chosen,
                )
            else:
                self.add(
                    "dtype", "error", want.name, got.name,
                    f"{_cap(name)} expects {want.name}, but the data is {got.name}"
                    f"{' (the default of np.array on Python floats)' if got == np.float64 else ''}; cast it.",
                    [self.fix("cast", dtype=want.name)],
                )
        # Values that will not survive the dtype, or lie outside the range the model implies.
        if bad == x.size:
            return
        if want.kind in "iu" and got.kind in "iuf" and got != want:
            dlo, dhi = dtype_range(want)
            if not (q.is_quantized and got.kind == "f") and (lo < dlo or hi > dhi):
                self.add(
                    "range", "warning", f"{dlo:g}…{dhi:g}", f"{lo:g}…{hi:g}",
                    f"{_cap(name)}: the data spans {lo:g}…{hi:g}, which does not fit in {want.name} ({dlo:g}…{dhi:g}); "
                    f"a plain cast would wrap or clip those values.",
                    [],
                )
        if rr is not None and got.kind == "f":
            span = rr[1] - rr[0]
            if lo < rr[0] - 0.05 * span or hi > rr[1] + 0.05 * span:
                self.add(
                    "range", "warning", f"{rr[0]:.3g}…{rr[1]:.3g}", f"{lo:.3g}…{hi:.3g}",
                    f"{_cap(name)}: the model's scale and zero point represent real values {rr[0]:.3g}…{rr[1]:.3g}, but "
                    f"the data spans {lo:.3g}…{hi:.3g}; quantizing would clip it. Scale the data to the model's range first.",
                    [self.fix("normalize", source=[lo, hi], target=[rr[0], rr[1]], dtype="float32")],
                )
            elif hi - lo < 0.25 * span and span > 0:
                self.add(
                    "range", "warning", f"{rr[0]:.3g}…{rr[1]:.3g}", f"{lo:.3g}…{hi:.3g}",
                    f"{_cap(name)}: the model's quantization covers {rr[0]:.3g}…{rr[1]:.3g}, but the data only spans "
                    f"{lo:.3g}…{hi:.3g}; check that it is scaled the way the model was trained.",
                    [self.fix("normalize", source=[lo, hi], target=[rr[0], rr[1]], dtype="float32")] if hi > lo else [],
                )
        elif want.kind == "f" and got.kind in "f" and hi > 1.5 and lo >= 0 and hi <= 255 and _looks_nhwc(t.shape):
            chosen = self.choices.get("value range")
            if chosen is None or chosen.chosen != "[0, 255]":
                self.add(
                    "range", "warning", chosen.chosen if chosen is not None else "[0, 1] or [-1, 1]", f"{lo:g}…{hi:g}",
                    f"{_cap(name)}: the values span {lo:g}…{hi:g}, like raw pixels, but "
                    + (
                        f"the model takes {chosen.chosen} ({_range_note(chosen)})."
                        if chosen is not None
                        else "float image models are usually fed [0, 1] or [-1, 1]; check the preprocessing the model was trained with."
                    ),
                    [f for f in self._range_fixes(chosen, want.name, cast_too=False) if f.kind == "normalize"],
                    choice=chosen,
                )

    def _range_fixes(self, chosen: Choice | None, dtype: str, cast_too: bool) -> list[Fix]:
        """Scaling fixes from pixels (0–255) to each range on offer, the chosen one first."""
        keys = [k for k, _ in chosen.options] if chosen is not None else ["[0, 1]", "[-1, 1]", "[0, 255]"]
        if chosen is not None:
            keys.remove(chosen.chosen)
            keys.insert(0, chosen.chosen)
        fixes = []
        for key in keys:
            if key == "[0, 255]":
                if cast_too:
                    fixes.append(self.fix("cast", dtype=dtype, from_pixels=True))
                continue
            fixes.append(self.fix("normalize", source=[0, 255], target=list(parse_range(key)), dtype=dtype))
        if cast_too and not any(f.kind == "cast" for f in fixes):
            fixes.append(self.fix("cast", dtype=dtype))
        return fixes


def _value_range(x: np.ndarray) -> tuple[float, float, int]:
    """Smallest and largest finite value, and how many values are NaN or infinite.

    Two reductions in the common case; the masked path only when something is not finite.
    """
    if x.size == 0:
        return 0.0, 0.0, 0
    if x.dtype.kind == "b":
        return float(x.min()), float(x.max()), 0
    lo, hi = x.min(), x.max()
    if x.dtype.kind not in "fc" or (np.isfinite(lo) and np.isfinite(hi)):
        return float(np.real(lo)), float(np.real(hi)), 0
    finite = x[np.isfinite(x)]
    bad = int(x.size - finite.size)
    if not finite.size:
        return 0.0, 0.0, bad
    return float(np.real(finite.min())), float(np.real(finite.max())), bad


def _range_note(choice: Choice) -> str:
    if choice.source == "guess":
        return f"{choice.chosen} is a guess: the model does not say; change it in the value-range choice"
    if choice.source == "preference":
        return f"{choice.chosen}, as you chose"
    return f"{choice.chosen}: {choice.reason[:1].lower() + choice.reason[1:].rstrip('.')}"


def _compatible(got: Sequence[int], exp: Sequence[int], sig: Sequence[int]) -> bool:
    return len(got) == len(exp) and all(g == e or s == -1 for g, e, s in zip(got, exp, sig))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fit_cost(t: TensorSpec, x: np.ndarray, expected: tuple[int, ...]) -> int:
    """How badly an array fits an input, from shape and dtype alone (0 = as is)."""
    sig = t.shape_signature if len(t.shape_signature) == len(expected) else expected
    cost = 0
    if tuple(x.shape) != tuple(expected):
        cost += 1 if _compatible(tuple(x.shape), expected, sig) else 3
    if x.dtype != t.numpy_dtype:
        cost += 2
    return cost


def _association(spec_inputs: Sequence[TensorSpec], feed: Feed) -> tuple[list[Mismatch], set[str]]:
    """Detect arrays bound to the wrong inputs by trying every assignment (up to 7 inputs)."""
    names = [t.name for t in spec_inputs]
    keys = list(feed.arrays)
    if len(names) < 2 or len(keys) < 2 or len(names) > 7 or len(keys) > 7:
        return [], set()
    expected = {t.name: tuple(feed.resize.get(t.name, t.shape)) for t in spec_inputs}

    def cost(assign: Sequence[str]) -> int:
        return sum(_fit_cost(t, feed.arrays[k], expected[t.name]) for t, k in zip(spec_inputs, assign))

    current = [n if n in feed.arrays else None for n in names]
    if None in current:
        return [], set()
    now = cost(current)
    if now == 0:
        return [], set()
    best, best_cost = None, now
    for perm in itertools.permutations(keys, len(names)):
        c = cost(perm)
        if c < best_cost:
            best, best_cost = perm, c
    if best is None or list(best) == current:
        return [], set()
    mapping = dict(zip(names, best))
    fix = make_fix("reassign", "*", mapping=mapping)
    found = []
    moved = set()
    for pos, t in enumerate(spec_inputs):
        src = mapping[t.name]
        if src == t.name:
            continue
        moved.add(t.name)
        x = feed.arrays[src]
        given = feed.arrays[t.name]
        found.append(
            Mismatch(
                input_index=pos,
                input_name=t.name,
                kind="association",
                severity="error",
                expected=f"{t.dtype} {_shape(expected[t.name])}",
                got=f"{given.dtype} {_shape(given.shape)}",
                message=(
                    f"Input {pos} ({t.name!r}) expects {t.dtype} {_shape(expected[t.name])}, but was given the "
                    f"{given.dtype} {_shape(given.shape)} array; the array given as {src!r} ({x.dtype} "
                    f"{_shape(x.shape)}) fits it, so the arrays look bound to the wrong inputs."
                ),
                fixes=(fix,),
            )
        )
    return found, moved


def diagnose(
    spec: ModelSpec,
    data: Feed | Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray,
    signature: str | None = None,
    *,
    choices: Sequence[Choice] | None = None,
) -> list[Mismatch]:
    """List every mismatch between ``data`` and the inputs of ``spec`` (or of one signature).

    Errors are what the interpreter will refuse; warnings run but are likely wrong. An empty
    list means the data can be fed as it is. ``choices`` (see ``lite_debug.choices``) order the
    fixes where the data alone cannot say which is right; by default they are made on ``data``
    itself, taken as the data the user gave. Never raises for odd data: that is what it reports.
    """
    feed = bind(spec, data, signature)
    inputs, _ = spec.io(signature)
    if choices is None:
        choices = find_choices(spec, feed, signature)
    choice_map = by_input(choices)
    found, moved = _association(inputs, feed)
    for pos, t in enumerate(inputs):
        if t.name in moved:
            continue
        x = feed.arrays.get(t.name)
        if x is None:
            shape = list(feed.resize.get(t.name, t.shape))
            found.append(
                Mismatch(
                    input_index=pos, input_name=t.name, kind="missing", severity="error",
                    expected=f"{t.dtype} {_shape(shape)}", got="nothing",
                    message=f"Input {pos} ({t.name!r}) was given no data; the model needs {t.dtype} {_shape(shape)}.",
                    # Zeros only for types numpy has (not strings, resources, bfloat16, …).
                    fixes=(make_fix("generate", t.name, shape=shape, dtype=t.dtype),) if t.numpy_dtype is not None else (),
                )
            )
            continue
        x = np.asarray(x)
        if x.dtype.kind not in "biufc":  # objects, strings, bytes, dates: nothing the interpreter takes
            found.append(
                Mismatch(
                    input_index=pos, input_name=t.name, kind="dtype", severity="error", expected=t.dtype,
                    got=str(x.dtype),
                    message=f"Input {pos} ({t.name!r}) was given {x.dtype} data, which the interpreter cannot take; build a numeric array.",
                )
            )
            continue
        expected = tuple(int(d) for d in feed.resize.get(t.name, t.shape))
        checker = _Checker(pos, t, x, expected, signature, choice_map.get(t.name))
        handled = check_audio(checker, spec, feed.facts.get(t.name))  # a recording for an audio input
        if "structure" not in handled:
            checker.structure()
        if "values" not in handled:
            checker.values()
        found.extend(checker.found)
    found.extend(_extras(inputs, feed))
    found.sort(key=lambda m: (m.input_index if m.input_index >= 0 else 10**6, _KIND_ORDER.get(m.kind, 99)))
    return found



_KIND_ORDER = {
    k: i
    for i, k in enumerate(
        (
            "unsupported_op", "load", "delegate", "prepare", "association", "missing",
            "audio_channels", "sample_rate", "audio_length", "batch", "rank", "layout",
            "channels", "shape", "dynamic", "dtype", "audio_range",
            "quantization", "range", "nan", "extra",
        )
    )
}
_EXTRAS_NAMED = 8  # a file with 20,000 stray keys is one warning naming the first few, not 20,000


def _extras(inputs: Sequence[TensorSpec], feed: Feed) -> list[Mismatch]:
    names = {t.name for t in inputs}
    extra = [(key, x) for key, x in feed.arrays.items() if key not in names]
    if len(extra) <= 3:
        return [
            Mismatch(
                input_index=-1, input_name=key, kind="extra", severity="warning", expected="no such input",
                got=f"{np.asarray(x).dtype} {_shape(np.asarray(x).shape)}",
                message=f"The array {key!r} matches none of the model's {len(inputs)} inputs and will be ignored.",
            )
            for key, x in extra
        ]
    named = ", ".join(repr(k) for k, _ in extra[:_EXTRAS_NAMED]) + (", …" if len(extra) > _EXTRAS_NAMED else "")
    return [
        Mismatch(
            input_index=-1, input_name=extra[0][0], kind="extra", severity="warning", expected="no such input",
            got=f"{len(extra):,} arrays",
            message=(
                f"{len(extra):,} arrays match none of the model's {len(inputs)} inputs and will be ignored: {named} "
                f"(the inputs are {', '.join(repr(n) for n in list(names)[:_EXTRAS_NAMED])})."
            ),
        )
    ]


@dataclass(frozen=True, eq=False)
class FixOutcome:
    """What ``fix_all`` did: the fixed data, each fix in the order applied with the mismatch it
    answered and the data after it, and what is left."""

    feed: Feed
    steps: tuple[Step, ...]
    remaining: tuple[Mismatch, ...]

    @property
    def applied(self) -> tuple[Fix, ...]:
        return tuple(s.fix for s in self.steps)


def _rank(fix: Fix) -> int:
    return FIX_ORDER.index(fix.kind) if fix.kind in FIX_ORDER else len(FIX_ORDER)


def fix_all(
    spec: ModelSpec,
    data: Feed | Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray,
    signature: str | None = None,
    *,
    choices: Sequence[Choice] | None = None,
    include_warnings: bool = False,
    extra: Sequence[Fix] = (),
    click: int = 0,
    max_rounds: int = 12,
) -> FixOutcome:
    """Apply the first suggested fix of each error (and, if asked, warning) until none is left.

    Fixes are applied one at a time in ``FIX_ORDER`` (arrays to inputs, then axes, sizes, values)
    and the data is diagnosed again after each, since one fix changes what the next must do.
    NaN warnings are always fixed, and so are value-range and sample-rate warnings that a
    choice settled (the choice is shown to the user with its reason); other warnings only with ``include_warnings``.
    ``extra`` fixes no mismatch asks for (a channel swap the user chose, see
    ``choices.pending_fixes``) are applied in their turn too. ``choices`` are as ``diagnose``
    takes them, made on ``data`` by default. Never raises for odd data; a fix that fails is
    not applied.
    """
    feed = bind(spec, data, signature)
    if choices is None:
        choices = find_choices(spec, feed, signature)
    steps: list[Step] = []
    seen: set[tuple[str, str, str]] = set()
    pending = list(extra)
    for _ in range(max_rounds):
        mismatches = diagnose(spec, feed, signature, choices=choices)
        candidates: list[tuple[Fix, Mismatch | None]] = [
            (m.fixes[0], m)
            for m in mismatches
            if m.fixes and (
                m.severity == "error" or include_warnings or m.kind == "nan" or (m.kind in ("range", "sample_rate") and m.choice)
            )
        ]
        candidates += [(f, None) for f in pending]
        candidates = [(f, m) for f, m in candidates if (f.kind, f.input, f.code) not in seen]
        if not candidates:
            return FixOutcome(feed=feed, steps=tuple(steps), remaining=tuple(mismatches))
        fix, answered = min(candidates, key=lambda c: _rank(c[0]))
        seen.add((fix.kind, fix.input, fix.code))
        if answered is None:
            pending.remove(fix)
        try:
            feed = apply_fix(feed, fix)
        except FixError:  # a fix that does not apply is left out; the diagnosis still says why
            continue
        steps.append(Step(fix=fix, answered=answered, feed=feed, click=click))
    return FixOutcome(feed=feed, steps=tuple(steps), remaining=tuple(diagnose(spec, feed, signature, choices=choices)))


def signatures_that_fit(
    spec: ModelSpec,
    data: Feed | Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray,
    signature: str | None = None,
) -> list[str | None]:
    """The other entry points (signature keys, ``None`` for the main graph) that take ``data``
    as it is, with no error: a user who ran the wrong signature is told which one fits.

    The arrays are bound again by position, as they would be for that entry point.
    """
    if not spec.signatures:
        return []
    arrays = list(bind(spec, data, signature).arrays.values())
    fits: list[str | None] = []
    for key in [None, *(s.key for s in spec.signatures)]:
        if key == signature:
            continue
        try:
            found = diagnose(spec, arrays, key)
        except (KeyError, ValueError):
            continue
        if not any(m.severity == "error" for m in found):
            fits.append(key)
    return fits


def explain_result(result: RunResult, mismatches: Sequence[Mismatch]) -> RunResult:
    """A failed run's explanation chosen knowing the diagnosis, so the two agree: arrays bound
    to the wrong inputs are explained as that, not as "cast the array". Other results unchanged."""
    if result.status != "error" or not (result.kernel_message or result.error_message):
        return result
    from dataclasses import replace

    from .explain import explain

    explanation = explain(result.kernel_message or result.error_message or "", diagnosis=list(mismatches))
    if result.kernel_message and result.explanation is not None and "default_delegate_message" in result.explanation.facts:
        explanation = replace(explanation, facts={**dict(explanation.facts), "default_delegate_message": result.explanation.facts["default_delegate_message"]})
    return replace(result, explanation=explanation)


# What a failed model check (loading and allocating in a worker, no invoke) is, by the kind of
# its explanation: an op the runtime lacks, a delegate that refused, a kernel's Prepare, or else
# a model that does not load.
_UNSUPPORTED = {
    "unresolved_custom_op", "select_tf_ops_unsupported", "tf1_control_flow", "op_missing_from_resolver",
    "op_version_unsupported", "builtin_op_unknown", "registration_failed",
}
_DELEGATE = {
    "xnnpack_delegate_failed", "default_delegate_failed", "delegate_dynamic_tensors", "delegate_load_failed",
    "delegate_library_not_found", "delegate_not_a_delegate", "edgetpu_runtime_version", "edgetpu_runtime_mismatch",
    "edgetpu_prepare_failed",
}
_PREPARE = {
    "node_failed_to_prepare", "reshape_element_count", "reshape_stretch", "concatenation_mismatch", "conv_input_rank",
    "fully_connected_cols", "broadcast_shapes", "kernel_rank_unsupported", "kernel_type_unsupported",
    "kernel_check_failed", "model_allocation_failed",
}


# What fails at allocate_tensors() because of the input shapes: a placeholder shape can cause it.
_AT_ALLOCATION = _PREPARE | {"xnnpack_delegate_failed", "default_delegate_failed"}


def check_mismatches(check: ModelCheck | None, spec: ModelSpec | None = None) -> list[Mismatch]:
    """A failed model check as an error-level mismatch of its own kind (``unsupported_op``,
    ``delegate``, ``prepare`` or ``load``), with the explanation; [] when the model loads or
    has not been checked. It concerns the model, not an input (``input_index`` -1, no fixes).

    With ``spec``: a graph or delegate that fails to prepare at the declared shape of a
    resizable input is a warning, since that shape is a placeholder (a model that takes any
    number of audio samples declares [1, 1], too short for its first convolution) and the
    data's shape may well allocate."""
    if check is None or check.ok:
        return []
    e = check.explanation
    severity = "error"
    if check.status == "error" and e is not None:
        kind = "unsupported_op" if e.kind in _UNSUPPORTED else "delegate" if e.kind in _DELEGATE else (
            "prepare" if e.kind in _PREPARE else "load"
        )
        said = (check.message or e.title).strip()[:2000]
        resizable = [t for t in spec.inputs if -1 in t.shape_signature] if spec is not None else []
        if resizable and e.kind in _AT_ALLOCATION:
            severity = "warning"
            declared = ", ".join(f"{t.shape_text()} for {t.name!r} (shape signature {t.shape_text(signature=True)})"
                                 for t in resizable[:4])
            reason = (check.kernel_message or check.message or e.title).strip()
            message = (
                f"allocate_tensors() fails at the shape the model declares, {declared}: a placeholder, since the input "
                f"takes any size where its signature has ?. The runtime says: {reason} Resize the input to the shape "
                "of your data with resize_tensor_input() before allocate_tensors(); only a run at that shape tells "
                "whether the model works there."
            )
        else:
            message = f"The model does not load in this runtime, so every run will fail: {e.cause} {e.fix}"
            if check.kernel_message:
                message += f" Without the default XNNPACK delegate the kernel says: {check.kernel_message.strip()}"
    else:
        kind, said = "load", check.status
        if check.status == "skipped":  # refused before a worker loads it (a memory limit, a damaged op)
            message = f"The model is not loaded in a worker: {check.detail or 'no reason given'}"
        else:
            message = f"The model could not be loaded in a worker ({check.status}): {check.detail or 'no reason given'}"
    return [
        Mismatch(
            input_index=-1, input_name="", kind=kind, severity=severity,  # type: ignore[arg-type]
            expected="a model this runtime can load and allocate", got=said, message=message.strip(),
        )
    ]
