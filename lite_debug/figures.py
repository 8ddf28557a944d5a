"""Figures of a model's outputs.

``figure_for(view)`` draws one ``views.OutputView`` (what an output was read as: class scores,
detections, anchors, a mask, points, …; see the "views" section below): that is what the Run
page shows. ``figures_for_output`` is the older choice by shape alone, kept for callers that
have no view.

Every function returns a ``plotly.graph_objects.Figure`` (``mask_overlay`` returns ``None``
when the mask cannot be laid over the image); pages only show them. ``figures_for_output``
picks the figures that suit an output:

- one value (any shape holding a single element): none, the number says it all;
- a vector, ``[N]`` or ``[1, N]``, of class scores: the top-k classes as bars;
- a long vector, or one of raw integers: a line;
- a 2-D map, ``[H, W]``, ``[1, H, W]`` or ``[1, H, W, 1]``: a heatmap, and the map laid over
  the input image when one is given;
- ``[1, H, W, C]`` (or ``[1, C, H, W]``) with 3 or 4 channels: an image; with 2 or more
  other channels, a per-pixel class map (argmax over the channels) as a heatmap and overlay;
- and, for any non-scalar output, a histogram of its values.

Figures never raise for NaN, infinite values, empty arrays or huge outputs: non-finite values
are left blank and counted in the title, and large arrays are thinned for display (at most
``MAX_HEATMAP_SIDE`` rows and columns for a heatmap, ``MAX_IMAGE_SIDE`` for an image,
``MAX_LINE_POINTS`` points for a line). The titles say when that happened.

Figures use a neutral template with transparent backgrounds and a mid-grey font, so they read
on light and dark pages alike, and a fixed height of ``HEIGHT`` pixels.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np
from ._plotly import go
from PIL import Image

from .records import OutputTensor

__all__ = [
    "HEIGHT",
    "HOVER_SIDE",
    "MAX_CLASSES",
    "MAX_HEATMAP_SIDE",
    "MAX_IMAGE_SIDE",
    "MAX_LINE_POINTS",
    "MAX_SLICE_SIDE",
    "PICTURE_SIDE",
    "TEMPLATE",
    "array_slice",
    "figure_for",
    "figures_for_output",
    "heatmap",
    "histogram",
    "image",
    "input_figure",
    "is_picture",
    "labels_from_text",
    "line",
    "mask_overlay",
    "topk_bar",
    "warm",
]

HEIGHT = 320
MAX_HEATMAP_SIDE = 512
MAX_IMAGE_SIDE = 1024
MAX_LINE_POINTS = 10_000
MAX_CLASSES = 1024  # a longer vector is drawn as a line, unless the labels cover it
_MAX_HISTOGRAM_VALUES = 10_000_000  # beyond this, the histogram counts an even sample
_ASPECT_TOLERANCE = 0.03  # how far a mask's aspect ratio may be from the image's

_GRID = "rgba(128, 128, 128, 0.25)"
_ACCENT = "#4c78a8"  # mid-tone blue: enough contrast on white and on near-black

TEMPLATE = go.layout.Template(
    layout=go.Layout(
        paper_bgcolor="rgba(0, 0, 0, 0)",
        plot_bgcolor="rgba(0, 0, 0, 0)",
        font={"color": "#888888", "size": 12},
        colorway=[_ACCENT, "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#9d755d"],
        title={"x": 0.02, "xanchor": "left", "font": {"size": 14}},
        xaxis={"gridcolor": _GRID, "zerolinecolor": _GRID, "linecolor": _GRID, "automargin": True},
        yaxis={"gridcolor": _GRID, "zerolinecolor": _GRID, "linecolor": _GRID, "automargin": True},
        margin={"l": 48, "r": 16, "t": 44, "b": 36},
        height=HEIGHT,
        bargap=0.15,
    )
)


_MARGIN = {k: TEMPLATE.layout.margin[k] for k in ("l", "r", "t", "b")}  # read once: a plotly property read costs µs


def _text(value: object) -> str:
    """A string from the model or a user, for plotly's text: plotly reads a few HTML tags and
    entities in titles, labels and annotations (<b>, <a href=…>, &amp;), so ``&``, ``<`` and ``>``
    are written as entities and the text shows as it is."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _figure(title: str) -> go.Figure:
    return go.Figure(layout={"template": TEMPLATE, "title": {"text": _text(title)}, "height": HEIGHT})


def _numeric(values: object) -> np.ndarray | None:
    """The values as a real-valued array, or None when they are not numbers (strings, objects)."""
    a = np.asarray(values)
    if a.dtype.kind == "b":
        return a.astype(np.uint8)
    if a.dtype.kind == "c":
        return np.abs(a)
    if a.dtype.kind not in "iuf":
        return None
    return a


def _display(a: np.ndarray) -> np.ndarray:
    """A float copy for plotly, with infinities blanked like NaN (JSON has neither)."""
    # float32 holds every value of these dtypes exactly, and halves what goes to the browser.
    exact32 = a.dtype.kind in "fiub" and a.dtype.itemsize <= (4 if a.dtype.kind == "f" else 2)
    out = a.astype(np.float32 if exact32 else np.float64)
    out[~np.isfinite(out)] = np.nan
    return out


def _nonfinite(a: np.ndarray) -> int:
    return 0 if a.dtype.kind in "iub" else int(a.size - np.count_nonzero(np.isfinite(a)))


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _with_notes(title: str, notes: Sequence[str]) -> str:
    notes = [n for n in notes if n]
    return f"{title} ({'; '.join(notes)})" if notes else title


def _blank_note(count: int) -> str:
    return f"{count} NaN/Inf left blank" if count else ""


def _stride(size: int, cap: int) -> int:
    return max(1, math.ceil(size / cap))


def _label(index: int, labels: Sequence[str] | None) -> str:
    if labels is not None and 0 <= index < len(labels) and str(labels[index]).strip():
        return f"{index}: {str(labels[index]).strip()}"
    return f"class {index}"


# -- individual figures ------------------------------------------------------------------------


def topk_bar(
    values: np.ndarray, labels: Sequence[str] | None = None, k: int = 5, *, title: str | None = None
) -> go.Figure:
    """The ``k`` highest scores as horizontal bars, the highest on top.

    ``values`` is flattened (a ``[1, N]`` output is a vector of N scores). Bars are labelled
    ``"3: cat"`` when ``labels`` has a label for class 3, ``"class 3"`` otherwise. NaN and
    infinite scores are left out and counted in the title; ties keep the lower class first.
    """
    v = _numeric(values)
    v = np.zeros(0) if v is None else _display(np.ravel(v))
    finite = np.flatnonzero(np.isfinite(v))
    k = max(1, min(int(k), finite.size))
    order = finite[np.argsort(-v[finite], kind="stable")[:k]] if finite.size else finite
    base = title or f"Top {order.size} of {v.size} classes"
    fig = _figure(_with_notes(base, [_blank_note(v.size - finite.size)]))
    if order.size == 0:
        fig.update_layout(title_text=_with_notes(base, ["no finite scores"]))
        return fig
    scores = v[order]
    fig.add_trace(
        go.Bar(
            x=scores,
            y=[_label(int(i), labels) for i in order],
            orientation="h",
            text=[f"{s:.4g}" for s in scores],
            textposition="auto",
            marker_color=_ACCENT,
            hovertemplate="%{y}: %{x:.6g}<extra></extra>",
        )
    )
    # Categories run bottom-up by default; reversed, the first (highest) bar is on top.
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title_text="score")
    return fig


def heatmap(array2d: np.ndarray, *, title: str | None = None, colorscale: str = "Viridis",
            notes_below: bool = False) -> go.Figure:
    """A 2-D array as a heatmap, row 0 on top; thinned to ``MAX_HEATMAP_SIDE`` per side.

    Thinning keeps every n-th row and column (hover shows the original indices). NaN and
    infinite values are left blank. ``notes_below``: what the title says about thinning and
    blanks goes on a smaller second line (for a figure in a narrow column). Raises
    ``ValueError`` for an array that is not 2-D once size-1 axes are dropped.
    """
    a = _numeric(array2d)
    if a is None:
        raise ValueError(f"A heatmap needs numbers, but the array holds {np.asarray(array2d).dtype}.")
    if a.ndim != 2:
        a = np.squeeze(a)
    if a.ndim != 2:
        raise ValueError(f"A heatmap needs a 2-D array, but this one is {_shape(np.shape(array2d))}.")
    h, w = a.shape
    base = title or f"Heatmap {h}×{w}"
    if a.size == 0:
        return _figure(_with_notes(base, ["empty"]))
    sr, sc = _stride(h, MAX_HEATMAP_SIDE), _stride(w, MAX_HEATMAP_SIDE)
    z = _display(a[::sr, ::sc])
    thinned = f"showing {z.shape[0]}×{z.shape[1]}" if (sr, sc) != (1, 1) else ""
    notes = [thinned, _blank_note(_nonfinite(a))]
    fig = _figure(base if notes_below else _with_notes(base, notes))
    said = "; ".join(n for n in notes if n)
    if notes_below and said:
        fig.update_layout(title_text=f"{_text(base)}<br><sup>{_text(said)}</sup>")
    fig.add_trace(
        go.Heatmap(
            z=z,
            x=np.arange(0, w, sc),
            y=np.arange(0, h, sr),
            colorscale=colorscale,
            hoverongaps=False,
            hovertemplate="row %{y}, column %{x}: %{z:.6g}<extra></extra>",
        )
    )
    # Square cells: a 64×64 mask must look square, not stretched to the figure's width.
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    return fig


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """Pixels for display: uint8 as is; other data mapped to 0..255 by its apparent range.

    Floats in [0, 1] are scaled by 255, floats in [-1, 1] from that range, numbers already in
    0..255 kept, anything else stretched from its minimum to its maximum. NaN and infinities
    become 0.
    """
    if a.dtype == np.uint8:
        return a
    x = a.astype(np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        return np.zeros(a.shape, np.uint8)
    lo, hi = float(x[finite].min()), float(x[finite].max())
    if a.dtype.kind == "f" and lo >= 0 and hi <= 1:
        x = x * 255.0
    elif a.dtype.kind == "f" and lo >= -1 and hi <= 1:
        x = (x + 1.0) * 127.5
    elif not (lo >= 0 and hi <= 255):
        x = (x - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(x)
    x[~finite] = 0
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _as_rgb(array: np.ndarray) -> np.ndarray | None:
    """HxWx3 from HxW, HxWx1, HxWx3, HxWx4 (alpha dropped) or any of those with a batch of 1."""
    a = _numeric(array)
    if a is None:
        return None
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        return np.repeat(a[..., np.newaxis], 3, axis=-1)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        return a[..., :3]
    return None


def image(array: np.ndarray, *, title: str | None = None) -> go.Figure:
    """An image (HxW, HxWx1, HxWx3 or HxWx4, any dtype) as pixels; alpha is dropped.

    uint8 is shown as is; other dtypes are scaled to 0..255 by their range (floats in [0, 1] or
    [-1, 1] as such; see ``_to_uint8``). Images larger than ``MAX_IMAGE_SIDE`` are thinned.
    Raises ``ValueError`` for another shape.
    """
    rgb = _as_rgb(array)
    if rgb is None:
        raise ValueError(f"An image needs HxW or HxWx1/3/4 numbers, but this array is {_shape(np.shape(array))}.")
    h, w = rgb.shape[:2]
    base = title or f"Image {h}×{w}"
    if rgb.size == 0:
        return _figure(_with_notes(base, ["empty"]))
    step = max(_stride(h, MAX_IMAGE_SIDE), _stride(w, MAX_IMAGE_SIDE))
    small = rgb[::step, ::step]
    notes = [f"showing {small.shape[0]}×{small.shape[1]}" if step > 1 else "", _blank_note(_nonfinite(rgb))]
    fig = _figure(_with_notes(base, notes))
    fig.add_trace(go.Image(z=_to_uint8(small), dx=step, dy=step, hovertemplate="x %{x}, y %{y}<extra></extra>"))
    fig.update_xaxes(showgrid=False, zeroline=False)
    fig.update_yaxes(showgrid=False, zeroline=False)
    return fig


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest neighbour for class ids (integers), bilinear for scores (floats)."""
    h, w = mask.shape
    if (h, w) == (height, width):
        return mask
    if mask.dtype.kind in "iub":
        rows = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(np.intp)
        cols = np.minimum((np.arange(width) + 0.5) * w / width, w - 1).astype(np.intp)
        return mask[rows[:, np.newaxis], cols[np.newaxis, :]]
    plane = Image.fromarray(mask.astype(np.float32), mode="F")
    return np.asarray(plane.resize((width, height), Image.Resampling.BILINEAR))


def mask_overlay(
    image: np.ndarray, mask: np.ndarray, alpha: float = 0.5, *, title: str | None = None
) -> go.Figure | None:
    """The mask laid over the image, or ``None`` when it cannot be.

    ``image`` is HxWx3 (HxW, HxWx4 and a leading batch of 1 are accepted); ``mask`` is HxW
    (size-1 axes are dropped). A mask of another size is resized to the image when the aspect
    ratios agree (within 3 %): nearest neighbour for integer class ids, bilinear for float
    scores. Class 0 of an integer mask is taken as background and left clear; a float mask is
    tinted in proportion to its value. ``None`` when the shapes do not allow an overlay, the
    arrays are empty, or they are not numbers.
    """
    rgb = _as_rgb(image)
    m = _numeric(mask)
    if rgb is None or m is None or rgb.size == 0 or m.size == 0:
        return None
    m = np.squeeze(m)
    if m.ndim != 2:
        return None
    h, w = rgb.shape[:2]
    mh, mw = m.shape
    if abs((mh / mw) / (h / w) - 1.0) > _ASPECT_TOLERANCE:
        return None
    m = _resize_mask(m, h, w)
    # Two layers of pixels: thinned like a heatmap, not like a single image.
    step = max(_stride(h, MAX_HEATMAP_SIDE), _stride(w, MAX_HEATMAP_SIDE))
    rgb, m = rgb[::step, ::step], m[::step, ::step]
    alpha = float(np.clip(alpha, 0.0, 1.0))
    resized = "" if (mh, mw) == (h, w) else f"mask {mh}×{mw} resized"
    fig = _figure(_with_notes(title or f"Mask over the input {h}×{w}", [resized]))
    fig.add_trace(go.Image(z=_to_uint8(rgb), dx=step, dy=step, hoverinfo="skip"))
    z = _display(m)
    if m.dtype.kind in "iub":
        z[z == 0] = np.nan  # background: leave the image clear
        scale: object = "Turbo"
        zmin, zmax = None, None
    else:
        finite = z[np.isfinite(z)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        zmin, zmax = (0.0, 1.0) if lo >= 0 and hi <= 1 else (lo, hi if hi > lo else lo + 1.0)
        scale = [[0.0, "rgba(255, 0, 80, 0)"], [1.0, "rgba(255, 0, 80, 1)"]]
    fig.add_trace(
        go.Heatmap(
            z=z,
            x0=0, dx=step, y0=0, dy=step,
            colorscale=scale,
            zmin=zmin, zmax=zmax,
            opacity=alpha,
            hoverongaps=False,
            hovertemplate="x %{x}, y %{y}: %{z:.6g}<extra></extra>",
        )
    )
    fig.update_xaxes(showgrid=False, zeroline=False)
    fig.update_yaxes(showgrid=False, zeroline=False, autorange="reversed", scaleanchor="x")
    return fig


def histogram(values: np.ndarray, bins: int = 50, *, title: str | None = None) -> go.Figure:
    """The distribution of the values: counts per bin, as bars.

    The counts are computed here, so a large output sends a few dozen bars to the browser,
    not its values. Integers spanning fewer than 256 values get one bar per value; anything
    else ``bins`` equal bins. NaN and infinities are left out and counted in the title. An
    empty or non-numeric array gives a figure without bars.
    """
    a = _numeric(values)
    if a is None:
        return _figure(title or f"No numbers to count ({np.asarray(values).dtype})")
    flat = np.ravel(a)
    n = flat.size
    sampled = ""
    if n > _MAX_HISTOGRAM_VALUES:
        step = _stride(n, _MAX_HISTOGRAM_VALUES)
        flat = flat[::step]
        sampled = f"counting {flat.size} evenly spaced values"
    finite = flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat
    base = title or f"Histogram of {n} values"
    bad = flat.size - finite.size
    notes = [sampled, f"{bad} NaN/Inf not counted" if bad and not sampled else ""]
    if finite.size == 0:
        return _figure(_with_notes(base, notes + ["no finite values" if n else "empty"]))
    lo, hi = finite.min(), finite.max()
    if finite.dtype.kind in "iu" and int(hi) - int(lo) < 256:
        edges = np.arange(int(lo), int(hi) + 2, dtype=np.float64) - 0.5
        counts = np.bincount((finite.astype(np.int64) - int(lo)), minlength=edges.size - 1)
    else:
        x = finite.astype(np.float64)
        if not np.isfinite(float(hi) - float(lo)):  # a span past float64: count halves instead
            counts, edges = np.histogram(x / 2, bins=bins)
            edges = edges * 2
        else:
            counts, edges = np.histogram(x, bins=bins)
    fig = _figure(_with_notes(base, notes))
    fig.add_trace(
        go.Bar(
            x=edges[:-1] / 2 + edges[1:] / 2,  # halves first: the sum of two huge edges overflows
            y=counts,
            width=np.diff(edges),
            marker_color=_ACCENT,
            marker_line_width=0,
            customdata=np.stack([edges[:-1], edges[1:]], axis=-1),
            hovertemplate="%{customdata[0]:.4g} … %{customdata[1]:.4g}: %{y}<extra></extra>",
        )
    )
    fig.update_layout(bargap=0)
    fig.update_xaxes(title_text="value")
    fig.update_yaxes(title_text="count")
    return fig


def _minmax_decimate(v: np.ndarray, cap: int) -> np.ndarray:
    """Indices of the smallest and largest value of each of ``cap // 2`` runs: the envelope."""
    n = v.size
    runs = max(1, cap // 2)
    size = math.ceil(n / runs)
    padded = np.full(runs * size, np.nan)
    padded[:n] = v
    blocks = padded.reshape(runs, size)
    nan = np.isnan(blocks)
    lows = np.argmin(np.where(nan, np.inf, blocks), axis=1)
    highs = np.argmax(np.where(nan, -np.inf, blocks), axis=1)
    starts = np.arange(runs) * size
    picks = np.unique(np.concatenate([starts + lows, starts + highs]))
    return picks[picks < n]


def line(values1d: np.ndarray, *, title: str | None = None) -> go.Figure:
    """A sequence of values against its index.

    More than ``MAX_LINE_POINTS`` values are reduced to the minimum and maximum of each run,
    which keeps every peak visible. NaN and infinities break the line. The values are
    flattened first.
    """
    a = _numeric(values1d)
    v = np.zeros(0) if a is None else _display(np.ravel(a))
    n = v.size
    base = title or f"{n} values"
    if n == 0:
        return _figure(_with_notes(base, ["empty"]))
    notes = [_blank_note(_nonfinite(np.ravel(a)))]
    if n > MAX_LINE_POINTS:
        x = _minmax_decimate(v, MAX_LINE_POINTS)
        notes.insert(0, f"min and max of each run of {math.ceil(n / (MAX_LINE_POINTS // 2))}")
    else:
        x = np.arange(n)
    fig = _figure(_with_notes(base, notes))
    fig.add_trace(
        go.Scatter(
            x=x, y=v[x], mode="lines", line={"color": _ACCENT, "width": 1.5}, connectgaps=False,
            hovertemplate="%{x}: %{y:.6g}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="index")
    return fig


# -- choosing by shape ---------------------------------------------------------------------------


def _channels_last(v: np.ndarray) -> np.ndarray:
    """A 3-D array as HxWxC: guess whether it is HWC or CHW from which axes look spatial."""
    a, b, c = v.shape
    if c <= 4 or a == b:  # few trailing channels, or a square H×W in front
        return v
    if a <= 4 or b == c or a < c:  # few leading channels, or a square H×W behind
        return np.moveaxis(v, 0, -1)
    return v


def _channel_mean(hwc: np.ndarray) -> np.ndarray:
    x = hwc.astype(np.float64)
    finite = np.isfinite(x)
    count = finite.sum(axis=-1)
    total = np.where(finite, x, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def figures_for_output(
    output: OutputTensor,
    *,
    labels: Sequence[str] | None = None,
    input_image: np.ndarray | None = None,
) -> list[tuple[str, go.Figure]]:
    """The figures that suit one output, each with a short name for a tab, by its shape.

    Uses the output's dequantized ``values``. See the module docstring for the choice. A
    scalar, an empty output or one that is not numbers gives an empty list. ``labels`` names
    the classes of a score vector; ``input_image`` (HxWx3, any dtype, a batch of 1 allowed)
    adds an overlay of 2-D maps when their shape allows it. Never raises for odd values.
    """
    values = _numeric(output.values)
    if values is None or values.size <= 1:
        return []
    v = np.squeeze(values)
    name = output.name
    shape = _shape(output.shape)
    found: list[tuple[str, go.Figure]] = []

    def overlay(mask: np.ndarray, what: str) -> None:
        if input_image is None:
            return
        fig = mask_overlay(input_image, mask, title=f"{name}: {what} over the input")
        if fig is not None:
            found.append(("Overlay", fig))

    if v.ndim == 1:
        n = v.size
        covered = labels is not None and len(labels) >= n
        if np.asarray(output.values).dtype.kind not in "iub" and (n <= MAX_CLASSES or covered):
            k = min(5, n)
            found.append((f"Top {k}", topk_bar(v, labels, k=k, title=f"{name}: top {k} of {n} classes")))
        else:
            found.append(("Line", line(v, title=f"{name} {shape}")))
    elif v.ndim == 2:
        found.append(("Heatmap", heatmap(v, title=f"{name} {shape}")))
        overlay(v, "map")
    elif v.ndim == 3:
        hwc = _channels_last(v)
        channels = hwc.shape[-1]
        if channels in (3, 4):
            found.append(("Image", image(hwc, title=f"{name} {shape} as an image")))
        elif channels <= 256:
            # Per-pixel scores over classes: the winning class of each pixel.
            filled = np.where(np.isnan(hwc), -np.inf, hwc) if hwc.dtype.kind == "f" else hwc
            classes = np.argmax(filled, axis=-1).astype(np.int32)
            title = f"{name} {shape}: class of each pixel"
            found.append(("Class map", heatmap(classes, title=title, colorscale="Turbo")))
            overlay(classes, "classes")
        else:
            mean = _channel_mean(hwc)
            found.append(("Heatmap", heatmap(mean, title=f"{name} {shape}: mean over {channels} channels")))
    found.append(("Histogram", histogram(values, title=f"{name}: values")))
    return found


# -- labels ------------------------------------------------------------------------------------------

_INDEXED = re.compile(r"^(\d+)(?:\s*[:,]\s*|\s+)(\S.*)$")
_MAX_LABEL_INDEX = 100_000


def labels_from_text(text: str) -> list[str]:
    """Class labels from a labels file: one label per non-empty line, stripped.

    When *every* non-empty line starts with a distinct index followed by ``:``, ``,`` or white
    space (``0 cat``, ``1: dog``, ``2,bird``), the index is dropped and each label is put at
    its index, gaps left as ``""`` (as in COCO's label map, which skips ids); otherwise the
    lines are the labels in order, numbers and all. A byte-order mark is ignored.
    """
    lines = [ln.strip() for ln in text.lstrip("\ufeff").splitlines()]
    lines = [ln for ln in lines if ln]
    matches = [_INDEXED.match(ln) for ln in lines]
    if not lines or not all(matches):
        return lines
    indices = [int(m.group(1)) for m in matches if m]
    if len(set(indices)) != len(indices) or max(indices) > _MAX_LABEL_INDEX:
        return lines
    out = [""] * (max(indices) + 1)
    for i, m in zip(indices, matches):
        out[i] = m.group(2).strip() if m else ""
    return out


# -- views: one figure for each kind of OutputView -------------------------------------------------
#
# Pictures (a mask, a class map, boxes or points over the input) travel as one PNG inside the
# figure, not as a list of every pixel: 256×256×3 numbers take ~0.6 MB of JSON and ~60 ms to
# encode, the PNG ~40 KB and ~5 ms. Only a coarse grid of the values (at most
# ``HOVER_SIDE`` per side) goes along, for hovering and the colour bar. A picture keeps its
# aspect ratio (square pixels) and fills the width of its column up to ``PICTURE_SIDE`` pixels
# of height; the figure's height follows the picture's shape, so a wide one leaves no band.

PICTURE_SIDE = 420  # the height of a square picture in a figure, in CSS pixels
HOVER_SIDE = 96
MAX_SLICE_SIDE = 256  # a heatmap of a slice is thinned to this many rows and columns (about a screen)
_MASK_RGB = (255, 0, 80)
_CLASS_COLORS = [
    (76, 120, 168), (245, 133, 24), (84, 162, 75), (228, 87, 86), (114, 183, 178), (238, 202, 59),
    (178, 121, 162), (255, 157, 166), (157, 117, 93), (186, 176, 172), (31, 119, 180), (44, 160, 44),
]


def _png_uri(rgb: np.ndarray) -> str:
    import base64
    import io

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _picture_height(h: int, w: int, extra_bottom: int = 0) -> int:
    """Figure height for an h×w picture: ``PICTURE_SIDE`` for a square, less for a wide one,
    at most 1.4 times that for a tall one (it then narrows instead)."""
    inner = PICTURE_SIDE * min(max(h, 1) / max(w, 1), 1.4)
    return int(round(max(inner, 120))) + _MARGIN["t"] + _MARGIN["b"] + extra_bottom


def _picture(rgb: np.ndarray, title: str, *, extra_bottom: int = 0) -> go.Figure:
    """A figure holding one picture as a PNG, sized to its aspect ratio, row 0 on top.

    Built in one call: plotly's update_layout and update_xaxes/update_yaxes walk its property
    tree on every call, and took two thirds of the time of a segmentation mask's figure (the
    Run page builds one on every run)."""
    h, w = rgb.shape[:2]
    step = max(_stride(h, MAX_IMAGE_SIDE), _stride(w, MAX_IMAGE_SIDE))
    small = rgb[::step, ::step]
    m = _MARGIN
    return go.Figure(
        data=[go.Image(source=_png_uri(small), dx=step, dy=step, hoverinfo="skip")],
        layout={
            "template": TEMPLATE, "title": {"text": _text(title)}, "meta": "picture",
            # The margins are set on the figure: its height was worked out from them.
            "height": _picture_height(h, w, extra_bottom),
            "margin": {"l": m["l"], "r": m["r"], "t": m["t"], "b": m["b"] + extra_bottom},
            "xaxis": {"showgrid": False, "zeroline": False, "range": [-0.5, w - 0.5], "constrain": "domain"},
            "yaxis": {"showgrid": False, "zeroline": False, "range": [h - 0.5, -0.5], "scaleanchor": "x",
                      "constrain": "domain"},
        },
    )


def _blank(h: int, w: int) -> np.ndarray:
    return np.full((h, w, 3), 40, np.uint8)


def _fit_image(image: np.ndarray | None, h: int, w: int) -> np.ndarray:
    """The input image resized to h×w (uint8 RGB), or a dark canvas when there is none."""
    if image is None:
        return _blank(h, w)
    rgb = _to_uint8(_as_rgb(image))
    if rgb.shape[:2] != (h, w):
        rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR))
    return rgb


def _coarse(a: np.ndarray, side: int) -> tuple[np.ndarray, int, int]:
    sr, sc = _stride(a.shape[0], side), _stride(a.shape[1], side)
    return a[::sr, ::sc], sr, sc


def _view_mask(view) -> go.Figure:
    prob = np.asarray(view.data["mask"], np.float32)
    h, w = prob.shape
    label = str(view.data.get("label") or "mask")
    image = view.data.get("image")
    base = _fit_image(image, h, w) if image is not None else None
    p = np.nan_to_num(np.clip(prob, 0.0, 1.0), nan=0.0)[..., None]
    color = np.array(_MASK_RGB, np.float32)  # in float32 throughout: float64 took twice as long
    if base is None:
        # No picture under it: the mask alone, dark to bright.
        rgb = (p * color + (1 - p) * np.float32(30)).astype(np.uint8)
    else:
        a = np.float32(0.6) * p
        rgb = (base * (1 - a) + a * color).astype(np.uint8)
    over = "over the input" if base is not None else ""
    fig = _picture(rgb, _with_notes(f"{view.name}: {label} {over}".strip(), [f"{h}×{w}"]), extra_bottom=56)
    z, sr, sc = _coarse(prob, HOVER_SIDE)
    fig.add_trace(
        go.Heatmap(
            z=_display(z), x0=(sc - 1) / 2, dx=sc, y0=(sr - 1) / 2, dy=sr,
            zmin=0.0, zmax=1.0, opacity=0.0,
            colorscale=[[0.0, "rgba(30, 30, 30, 1)"], [1.0, "rgb(%d, %d, %d)" % _MASK_RGB]],
            # Under the picture, at the bottom of the figure: clear of the tick labels at any size.
            colorbar={"orientation": "h", "x": 0.5, "xanchor": "center", "yref": "container", "y": 0, "yanchor": "bottom",
                      "len": 0.6, "thickness": 10, "title": {"text": f"{label} probability", "side": "right"}},
            hovertemplate="x %{x:.0f}, y %{y:.0f}: %{z:.3f}<extra></extra>",
        )
    )
    return fig


def _view_class_map(view) -> go.Figure:
    classes = np.asarray(view.data["classes"])
    h, w = classes.shape
    legend = view.data.get("legend", [])
    image = view.data.get("image")
    palette = np.array(_CLASS_COLORS, np.uint8)
    colors = palette[np.mod(classes, len(palette))]
    if image is not None:
        base = _fit_image(image, h, w)
        # Class 0 is usually the background: leave the picture clear there.
        a = np.where(classes == 0, 0.0, 0.55)[..., None]
        rgb = (base * (1 - a) + colors * a).astype(np.uint8)
    else:
        rgb = colors
    fig = _picture(rgb, f"{view.name}: class of each pixel ({h}×{w})", extra_bottom=24 * math.ceil(min(len(legend), 12) / 3))
    for entry in legend[:12]:
        c = _CLASS_COLORS[entry["class"] % len(_CLASS_COLORS)]
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="markers", marker={"size": 10, "color": "rgb(%d, %d, %d)" % c, "symbol": "square"},
                       name=_text(f"{entry['label']} ({entry['share']:.0%})"), showlegend=True)
        )
    # The legend under the picture: beside it, it would be pushed off a phone's screen.
    fig.update_layout(legend={"orientation": "h", "x": 0.5, "xanchor": "center", "yref": "container", "y": 0,
                              "yanchor": "bottom", "font": {"size": 11}})
    return fig


def _view_image(view) -> go.Figure:
    rgb = _as_rgb(view.data["image"])
    h, w = rgb.shape[:2]
    return _picture(_to_uint8(rgb), f"{view.name} as an image ({h}×{w})")


def _view_detections(view) -> go.Figure | None:
    if not view.data.get("draw"):
        return None
    hw = view.data.get("image_hw")
    image = view.data.get("image")
    if image is not None:
        h, w = image.shape[:2]
    elif hw:
        h, w = hw
    else:
        h, w = 320, 320
    fig = _picture(_fit_image(image, h, w), f"{view.name}: {len(view.data['rows'])} detection(s)")
    sx, sy = (w, h) if view.data.get("normalized") else (1.0, 1.0)
    palette = _CLASS_COLORS
    for row in view.data["rows"]:
        ymin, xmin, ymax, xmax = row["box"]
        c = "rgb(%d, %d, %d)" % palette[row["class"] % len(palette)] if row["class"] >= 0 else _ACCENT
        fig.add_shape(type="rect", x0=xmin * sx, x1=xmax * sx, y0=ymin * sy, y1=ymax * sy,
                      line={"color": c, "width": 2})
        fig.add_annotation(x=xmin * sx, y=ymin * sy, text=_text(f"{row['label']} {row['score']:.2f}"), showarrow=False,
                           xanchor="left", yanchor="bottom", font={"color": "white", "size": 11}, bgcolor=c)
    return fig


def _view_keypoints(view) -> go.Figure:
    pts = np.asarray(view.data["points"], np.float64)
    where = view.data.get("where")
    hover = "point %{customdata}: x %{x:.1f}, y %{y:.1f}<extra></extra>"
    idx = np.arange(len(pts))
    if where in ("pixels", "normalized") and view.data.get("image_hw"):
        h, w = view.data["image_hw"]
        image = view.data.get("image")
        fig = _picture(_fit_image(image, h, w), f"{view.name}: {len(pts)} points over the input")
    else:
        fig = _figure(f"{view.name}: {len(pts)} points (own axes)")
        fig.update_yaxes(autorange="reversed", scaleanchor="x")
        fig.update_layout(height=PICTURE_SIDE + 80, meta="picture")
        hover = "point %{customdata}: x %{x:.4g}, y %{y:.4g}<extra></extra>"
    fig.add_trace(
        go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", customdata=idx,
                   marker={"size": 7, "color": "#00e0a0", "line": {"width": 1, "color": "#003020"}},
                   hovertemplate=hover, showlegend=False)
    )
    return fig


def _view_classification(view) -> go.Figure:
    top = view.data["top"]
    n = int(view.facts.get("classes", len(top)))
    fig = _figure(f"{view.name}: top {len(top)} of {n} classes")
    if not top:
        return fig
    fig.add_trace(
        go.Bar(
            x=[t["score"] for t in top], y=[_text(t["label"]) for t in top], orientation="h",
            text=[f"{t['score']:.3f}" for t in top], textposition="auto", marker_color=_ACCENT,
            customdata=[t["raw"] for t in top],
            hovertemplate="%{y}: %{x:.4g} (raw %{customdata:.4g})<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title_text="probability", range=[0, max(1.0, max(t["score"] for t in top))])
    return fig


def _view_per_sample(view) -> go.Figure:
    rows = np.asarray(view.data["rows"], np.float64)
    n, per = rows.shape
    if per == 1:
        fig = _figure(f"{view.name}: one value for each of {n} samples")
        fig.add_trace(go.Bar(x=np.arange(n), y=_display(rows[:, 0]), marker_color=_ACCENT,
                             hovertemplate="sample %{x}: %{y:.6g}<extra></extra>"))
        fig.update_xaxes(title_text="sample", type="category" if n <= 64 else "linear")
        return fig
    z, sr, sc = _coarse(rows, MAX_SLICE_SIDE)
    fig = _figure(f"{view.name}: {per} values for each of {n} samples")
    fig.add_trace(go.Heatmap(z=_display(z), x=np.arange(0, per, sc), y=np.arange(0, n, sr), colorscale="Viridis",
                             hovertemplate="sample %{y}, value %{x}: %{z:.6g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title_text="sample")
    return fig


def _view_embedding(view) -> go.Figure:
    v = np.asarray(view.data["values"], np.float64)
    title = f"{view.name}: {v.size} values, L2 norm {view.data['norm']:.4g}"
    if v.size <= 64:
        fig = _figure(title)
        fig.add_trace(go.Bar(x=np.arange(v.size), y=_display(v), marker_color=_ACCENT,
                             hovertemplate="%{x}: %{y:.6g}<extra></extra>"))
        fig.update_xaxes(title_text="index")
        return fig
    return histogram(v, title=title + " (histogram)")


def _view_anchor_scores(view) -> go.Figure:
    scores = np.asarray(view.data["scores"], np.float64)
    fig = histogram(scores, bins=40, title=f"{view.name}: {scores.size} anchor scores" + (" after sigmoid" if view.data.get("sigmoid") else ""))
    fig.update_xaxes(title_text="score")
    fig.update_yaxes(title_text="anchors")
    return fig


def array_slice(values: np.ndarray, index: Sequence[int] = ()) -> np.ndarray:
    """The 2-D (or 1-D) slice of an N-D array at ``index`` on its leading axes.

    Axes of size 1 at the front are dropped first; missing indices are 0 and each is clipped to
    its axis. A view, not a copy.
    """
    a = np.asarray(values)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    lead = a.ndim - 2
    picks = list(index)[:max(lead, 0)] + [0] * max(0, lead - len(index))
    for i in picks:
        a = a[int(np.clip(i, 0, a.shape[0] - 1))]
    return a


def _view_array(view, index: Sequence[int] = ()) -> go.Figure | None:
    values = view.data["values"]
    a = _numeric(values)
    if a is None or a.size <= 1:
        return None
    s = array_slice(a, index)
    if s.ndim <= 1 or min(s.shape) == 1:
        return line(np.ravel(s), title=f"{view.name} {_shape(np.shape(values))}")
    h, w = s.shape
    z, sr, sc = _coarse(s, MAX_SLICE_SIDE)
    where = f" at {list(index)}" if np.ndim(values) - np.sum(np.array(np.shape(values)) == 1) > 2 else ""
    notes = [f"showing {z.shape[0]}×{z.shape[1]}" if (sr, sc) != (1, 1) else "", _blank_note(_nonfinite(s))]
    fig = _figure(_with_notes(f"{view.name}: {h}×{w} slice{where}", notes))
    fig.add_trace(go.Heatmap(z=_display(z), x=np.arange(0, w, sc), y=np.arange(0, h, sr), colorscale="Viridis",
                             hoverongaps=False, hovertemplate="row %{y}, column %{x}: %{z:.6g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    if max(h, w) <= 4 * min(h, w):  # a near-square map keeps square cells; a long table fills the width
        fig.update_yaxes(scaleanchor="x", constrain="domain")
        fig.update_xaxes(constrain="domain")
    return fig


_VIEW_FIGURES = {
    "classification": _view_classification,
    "detections": _view_detections,
    "anchor_scores": _view_anchor_scores,
    "mask": _view_mask,
    "class_map": _view_class_map,
    "keypoints": _view_keypoints,
    "embedding": _view_embedding,
    "per_sample": _view_per_sample,
    "image": _view_image,
}


def figure_for(view, *, index: Sequence[int] = ()) -> go.Figure | None:
    """The figure that shows one ``views.OutputView``, or ``None`` when a table or a number says it all.

    ``index`` picks the slice of an N-D array shown by the ``array`` kind (leading axes). Large
    data is thinned or sent as a picture (see above). Never raises for odd values.
    """
    if view.kind == "array":
        return _view_array(view, index)
    build = _VIEW_FIGURES.get(view.kind)
    return None if build is None else build(view)


def is_picture(fig: go.Figure | None) -> bool:
    """True for a figure of a picture: square pixels, its height following the picture's shape."""
    return fig is not None and fig.layout.meta == "picture"


def input_figure(x: np.ndarray | None, *, title: str = "The input") -> go.Figure | None:
    """The first image of an input array as the model receives it, as a picture figure, or None
    when the array is not image-like (see ``report.preview_image``)."""
    from .report import preview_image

    rgb = preview_image(x)
    if rgb is None:
        return None
    h, w = rgb.shape[:2]
    return _picture(rgb, _with_notes(title, [f"{h}×{w}"]))


def warm() -> None:
    """Build and serialise one small figure of each trace type the views use, and throw them away.

    plotly loads the validators of a trace type on its first use (~0.15 s for these); called in
    a background thread before any run, the first real figure does not pay for it.
    """
    import plotly.io

    view = type("_View", (), {})()
    view.name, view.kind = "warm-up", "mask"
    view.data = {"mask": np.zeros((8, 8), np.float32), "image": np.zeros((8, 8, 3), np.uint8), "label": "mask"}
    figs = [_view_mask(view), histogram(np.arange(4.0)), line(np.arange(4.0)), topk_bar(np.arange(3.0))]
    fig = _picture(np.zeros((8, 8, 3), np.uint8), "warm-up")
    fig.add_trace(go.Scatter(x=[1.0], y=[1.0], mode="markers"))
    fig.add_shape(type="rect", x0=0, x1=1, y0=0, y1=1)
    fig.add_annotation(x=0, y=0, text="")
    for f in (*figs, fig):
        plotly.io.to_json(f, validate=False)
# -- audio ---------------------------------------------------------------------------------------

MAX_WAVE_POINTS = 2_000  # a waveform is drawn from the min and max of runs: about one per pixel
MAX_SCORE_CLASSES = 30  # a window × class heatmap shows at most this many classes


def waveform(
    windows: np.ndarray, rate: int, *, starts: Sequence[float] | None = None, title: str | None = None
) -> go.Figure:
    """Samples against time in seconds: one trace per window of ``windows`` (``[n, samples]``,
    or 1-D for one piece), each placed at its start (``starts``, seconds; back to back when not
    given). Thinned to about ``MAX_WAVE_POINTS`` points in all, keeping each run's minimum and
    maximum, so a ten-minute recording sends a few kilobytes. Never raises for odd values."""
    a = _numeric(windows)
    rows = np.zeros((1, 0)) if a is None else np.atleast_2d(a)
    n = rows.shape[0]
    size = rows.shape[1] if rows.ndim == 2 else 0
    starts = list(starts) if starts is not None else [i * size / rate for i in range(n)]
    fig = _figure(title or f"Waveform, {n} window(s)" if n > 1 else title or "Waveform")
    per = max(200, MAX_WAVE_POINTS // max(n, 1))
    for i, row in enumerate(rows):
        v = _display(np.ravel(row))
        if not v.size:
            continue
        x = _minmax_decimate(v, per) if v.size > per else np.arange(v.size)
        fig.add_trace(
            go.Scatter(
                x=(starts[i] + x / rate).astype(np.float32), y=v[x], mode="lines", line={"width": 1}, connectgaps=False,
                name=f"window {i} ({starts[i]:.3g} s)" if n > 1 else "samples",
                hovertemplate="%{x:.3f} s: %{y:.4g}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="seconds")
    fig.update_yaxes(title_text="amplitude")
    fig.update_layout(showlegend=1 < n <= 12)
    return fig


def spectrogram(samples: np.ndarray, rate: int, *, title: str | None = None) -> go.Figure:
    """A power spectrogram (dB relative to full scale) of 1-D samples at ``rate`` Hz, reduced to
    at most 400 times × 128 frequencies (``audio.spectrogram``). An empty or silent signal
    gives an empty figure with a note, never an exception."""
    from .audio import spectrogram as _spectrogram

    base = title or "Spectrogram"
    a = _numeric(samples)
    v = np.zeros(0) if a is None else np.nan_to_num(np.ravel(a).astype(np.float32))
    if v.size < 16 or rate <= 0:
        return _figure(_with_notes(base, ["too short to draw"]))
    freqs, times, db = _spectrogram(v, rate, max_times=320, max_freqs=96)
    # Frequencies on a log axis, as hearing spaces them (the 0 Hz bin has no place on it).
    keep = freqs > 0
    freqs, db = freqs[keep], db[keep]
    fig = _figure(base)
    fig.add_trace(
        go.Heatmap(
            z=db, x=times, y=freqs, colorscale="Viridis", zmin=max(float(db.min()), -100.0), zmax=float(db.max()),
            colorbar={"title": {"text": "dB"}, "thickness": 12},
            hovertemplate="%{x:.3f} s, %{y:.0f} Hz: %{z:.1f} dB<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="seconds")
    fig.update_yaxes(title_text="Hz", type="log")
    return fig


def window_scores(
    scores: np.ndarray, *, starts: Sequence[float] | None = None, labels: Sequence[str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Class scores per window of a recording, ``[windows, classes]``, as a heatmap: time (each
    window's start in seconds, or its number) across, classes down. Over ``MAX_SCORE_CLASSES``
    classes, only those that score highest in some window are drawn, and the title says so.
    Class names come from ``labels`` and are shown as text. Never raises for odd values."""
    a = _numeric(scores)
    if a is None or np.ndim(a) < 1 or a.size == 0:
        v = np.zeros((0, 0))
    else:
        v = np.asarray(a, dtype=np.float64).reshape(a.shape[0], -1)
    n, classes = v.shape if v.ndim == 2 else (0, 0)
    base = title or f"Class scores over {n} windows"
    if not v.size:
        return _figure(_with_notes(base, ["empty"]))
    notes = [_blank_note(_nonfinite(v))]
    keep = np.arange(classes)
    if classes > MAX_SCORE_CLASSES:
        peak = np.nanmax(np.where(np.isfinite(v), v, np.nan), axis=0)
        keep = np.sort(np.argsort(np.nan_to_num(peak, nan=-np.inf))[::-1][:MAX_SCORE_CLASSES])
        notes.insert(0, f"the {MAX_SCORE_CLASSES} of {classes} classes that score highest")
    x = [f"{s:.3g} s" for s in starts] if starts is not None and len(starts) == n else [str(i) for i in range(n)]
    y = [_label(int(k), labels) for k in keep]
    fig = _figure(_with_notes(base, notes))
    fig.add_trace(
        go.Heatmap(
            z=_display(v[:, keep].T), x=x, y=y, colorscale="Viridis", colorbar={"thickness": 12},
            hovertemplate="window %{x}, %{y}: %{z:.4g}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="window start" if starts is not None else "window", type="category")
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_layout(height=max(HEIGHT, min(900, 60 + 18 * len(keep))))
    return fig


def window_figures(feed, outputs, *, labels: Sequence[str] | None = None) -> list[tuple[str, go.Figure]]:
    """For a batch that is a recording cut into windows (``Feed.facts``), a ``window_scores``
    heatmap per output of class scores (``[windows, classes]``, more than one class); an empty
    list for any other batch. ``outputs`` maps an output's name to its stacked values."""
    facts = getattr(feed, "facts", None) or {}
    info = next((i for i in facts.values() if getattr(i, "window_hop", None) is not None), None)
    if info is None:
        return []
    found = []
    for name, values in outputs.items():
        v = _numeric(values)
        if v is None or v.ndim < 2 or v.size == 0:
            continue
        rows = v.reshape(v.shape[0], -1)
        if rows.shape[1] < 2 or v.dtype.kind not in "f":
            continue
        starts = [i * info.window_hop / info.sample_rate for i in range(rows.shape[0])]
        title = f"{name}: class scores per window of {info.frames / info.sample_rate:.3g} s"
        found.append((name, window_scores(rows, starts=starts, labels=labels, title=title)))
    return found


__all__ += ["MAX_SCORE_CLASSES", "MAX_WAVE_POINTS", "spectrogram", "waveform", "window_figures", "window_scores"]
