"""Figures of a trace: every layer's statistics against its depth (its place in execution order).

``ranges_by_depth`` draws each tensor's min and max as a band with its mean inside, and marks
the tensors that hold NaN or Inf; ``shares_by_depth`` draws the share of zeros and, for a
quantized model, the share of saturated values. ``tensor_figures`` draws one intermediate
tensor's values: an activation is no class score nor an image, so a feature map is shown one
channel at a time and as its mean over channels, never as a class map. All use the template of
``figures`` (light and dark pages alike) and put names from the model into titles and hover
text escaped, never as markup. Past ``MAX_POINTS`` tensors, WebGL traces draw them.
"""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np
from ._plotly import go

from .figures import _channel_mean, _figure, heatmap, histogram, line
from .trace import TracedTensor

__all__ = ["MAX_POINTS", "channels", "ranges_by_depth", "shares_by_depth", "tensor_figures"]

MAX_POINTS = 5000  # more tensors than this: WebGL scatter traces, which keep the browser quick
_ACCENT = "#4c78a8"
_BAND = "rgba(76, 120, 168, 0.25)"
_BAD = "#d62728"
_ZEROS = "#f58518"


def _hover(tensors: Sequence[TracedTensor]) -> list[list[str]]:
    """(escaped name, op) per tensor: plotly reads hover text as a little HTML."""
    return [[html.escape(t.name, quote=False), html.escape(t.op if t.op_index is None else f"#{t.op_index} {t.op}", quote=False)]
            for t in tensors]


def _scatter(n: int):
    return go.Scattergl if n > MAX_POINTS else go.Scatter


def ranges_by_depth(tensors: Sequence[TracedTensor], *, title: str | None = None) -> go.Figure:
    """Min, max (a band) and mean of each tensor's finite values against its place in execution
    order; tensors that hold NaN or Inf are red crosses on the band's axis (at their mean, or 0)."""
    shown = [t for t in tensors if t.stats is not None]
    n = len(shown)
    fig = _figure(title or f"Range of every tensor, in execution order ({n} tensors)")
    if not shown:
        return fig
    x = [t.position for t in shown]
    lo = [t.stats.min for t in shown]  # type: ignore[union-attr]
    hi = [t.stats.max for t in shown]  # type: ignore[union-attr]
    mean = [t.stats.mean for t in shown]  # type: ignore[union-attr]
    hover = _hover(shown)
    trace = _scatter(n)
    # The band's two edges are one legend entry (the filled one): a "max" beside a thin "min"
    # read as two different things.
    fig.add_trace(trace(x=x, y=lo, mode="lines", line={"width": 0.5, "color": _ACCENT}, name="min", legendgroup="range",
                        showlegend=False, customdata=hover,
                        hovertemplate="#%{x} %{customdata[0]} (%{customdata[1]})<br>min %{y:.4g}<extra></extra>"))
    fig.add_trace(trace(x=x, y=hi, mode="lines", line={"width": 0.5, "color": _ACCENT}, name="min to max", fill="tonexty",
                        legendgroup="range", fillcolor=_BAND, customdata=hover,
                        hovertemplate="#%{x} %{customdata[0]} (%{customdata[1]})<br>max %{y:.4g}<extra></extra>"))
    fig.add_trace(trace(x=x, y=mean, mode="lines", line={"width": 1.5, "color": "#54a24b"}, name="mean", customdata=hover,
                        hovertemplate="#%{x} %{customdata[0]} (%{customdata[1]})<br>mean %{y:.4g}<extra></extra>"))
    bad = [t for t in shown if t.stats.nan or t.stats.inf]  # type: ignore[union-attr]
    if bad:
        fig.add_trace(trace(
            x=[t.position for t in bad], y=[t.stats.mean if t.stats.mean is not None else 0.0 for t in bad],  # type: ignore[union-attr]
            mode="markers", marker={"symbol": "x", "size": 9, "color": _BAD}, name="NaN or Inf",
            customdata=[[*h, t.stats.nan, t.stats.inf] for h, t in zip(_hover(bad), bad)],  # type: ignore[union-attr]
            hovertemplate="#%{x} %{customdata[0]} (%{customdata[1]})<br>%{customdata[2]} NaN, %{customdata[3]} Inf<extra></extra>",
        ))
    fig.update_xaxes(title_text="tensor, in execution order")
    fig.update_yaxes(title_text="value")
    fig.update_layout(legend={"orientation": "h", "y": -0.25}, hovermode="closest")
    return fig


def shares_by_depth(tensors: Sequence[TracedTensor], *, title: str | None = None) -> go.Figure:
    """The share of each tensor's values that are zero and, for quantized tensors, saturated,
    against its place in execution order (as percentages)."""
    shown = [t for t in tensors if t.stats is not None]
    n = len(shown)
    quantized = [t for t in shown if t.stats.saturated is not None]  # type: ignore[union-attr]
    fig = _figure(title or ("Zeros and saturation by layer" if quantized else "Zeros by layer") + f" ({n} tensors)")
    if not shown:
        return fig
    trace = _scatter(n)
    fig.add_trace(trace(
        x=[t.position for t in shown], y=[100 * t.stats.zeros for t in shown],  # type: ignore[union-attr]
        mode="lines+markers" if n <= 400 else "lines", marker={"size": 4}, line={"width": 1, "color": _ZEROS},
        name="zeros %", customdata=_hover(shown),
        hovertemplate="#%{x} %{customdata[0]} (%{customdata[1]})<br>%{y:.1f}% zeros<extra></extra>",
    ))
    if quantized:
        fig.add_trace(trace(
            x=[t.position for t in quantized], y=[100 * t.stats.saturated for t in quantized],  # type: ignore[union-attr]
            mode="lines+markers" if len(quantized) <= 400 else "lines", marker={"size": 5}, line={"width": 1.5, "color": _BAD},
            name="saturated %", customdata=_hover(quantized),
            hovertemplate="#%{x} %{customdata[0]} (%{customdata[1]})<br>%{y:.2f}% saturated<extra></extra>",
        ))
    fig.update_xaxes(title_text="tensor, in execution order")
    fig.update_yaxes(title_text="% of values", rangemode="tozero")
    fig.update_layout(legend={"orientation": "h", "y": -0.25}, hovermode="closest")
    return fig


def channels(shape: Sequence[int]) -> int:
    """How many channels ``tensor_figures`` can show one at a time for a tensor of this shape
    (0 when it is not a feature map: fewer than three dimensions once leading 1s are dropped)."""
    dims = [int(d) for d in shape]
    while len(dims) > 2 and dims[0] == 1:
        dims = dims[1:]
    return dims[-1] if len(dims) == 3 else 0


def tensor_figures(values: np.ndarray, name: str, *, channel: int = 0) -> list[tuple[str, go.Figure]]:
    """The figures of one intermediate tensor, each with a short name for a tab: a line for a
    vector, a heatmap for a matrix, for a feature map ``[1, H, W, C]`` the heatmap of channel
    ``channel`` and of the mean over channels; a histogram for any tensor of more than one value.
    Larger arrays are folded to two dimensions (the last one kept)."""
    v = np.asarray(values)
    label = html.escape(name, quote=False)
    shape = "[" + ", ".join(str(int(d)) for d in v.shape) + "]"
    while v.ndim > 2 and v.shape[0] == 1:
        v = v[0]
    if v.ndim > 3:
        v = v.reshape(-1, v.shape[-1])
    found: list[tuple[str, go.Figure]] = []
    if v.size <= 1:
        return found
    if v.ndim == 3:
        c = min(max(int(channel), 0), v.shape[-1] - 1)
        found.append((f"Channel {c}", heatmap(v[..., c], title=f"{label} {shape}: channel {c} of {v.shape[-1]}")))
        found.append(("Mean over channels", heatmap(_channel_mean(v), title=f"{label} {shape}: mean over channels")))
    elif v.ndim == 2 and min(v.shape) > 1:
        found.append(("Heatmap", heatmap(v, title=f"{label} {shape}")))
    else:
        found.append(("Line", line(v, title=f"{label} {shape}")))
    found.append(("Histogram", histogram(v, title=f"{label} {shape}: histogram")))
    return found
