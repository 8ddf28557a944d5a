"""Figures of a comparison (``lite_debug.compare``): each layer's error against its depth, and
an output of both sides with their difference.

``error_by_depth`` draws one metric (SNR by default) of every compared tensor against its place
in the reference's execution order, the tolerance as a dashed line, the tensors past it in red
and the first divergent one marked. ``output_figures`` draws one output of the reference and of
the candidate side by side, on one colour scale, with the difference as a third heatmap (or, for
a vector, both as lines and their difference). Names from the models reach titles and hover text
escaped, never as markup; the template of ``figures`` serves light and dark pages alike.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
from ._plotly import go

from .figures import _display, _figure, heatmap, line

__all__ = ["METRIC_LABELS", "error_by_depth", "output_figures", "sample_spread"]

METRIC_LABELS = {"snr_db": "SNR (dB)", "cosine": "cosine similarity", "max_abs": "max abs error",
                 "mean_abs": "mean abs error", "max_rel": "max relative error"}
_OK = "#2ca02c"
_BAD = "#d62728"
_LINE = "#4c78a8"
SNR_SHOWN = 150.0  # equal values have an infinite SNR: drawn at the top of the axis


def _value(t: Any, metric: str) -> float | None:
    if t.metrics is None:
        return None
    v = float(getattr(t.metrics, metric))
    if metric == "snr_db":
        return max(-SNR_SHOWN, min(SNR_SHOWN, v)) if not math.isnan(v) else None
    return v if math.isfinite(v) else None


def error_by_depth(comparison: Any, metric: str = "snr_db") -> go.Figure:
    """``metric`` of each compared tensor against its place in the reference's execution order;
    the tolerance dashed (for SNR and cosine), tensors past it red, the first divergent one
    marked with a ring. Raises ``ValueError`` for an unknown metric."""
    if metric not in METRIC_LABELS:
        raise ValueError(f"A comparison can be drawn by one of {', '.join(METRIC_LABELS)}, not {metric!r}.")
    rows = [t for t in comparison.tensors if _value(t, metric) is not None]
    label = METRIC_LABELS[metric]
    fig = _figure(f"{label} of every matched tensor, in the reference's execution order ({len(rows)} tensors)")
    if not rows:
        return fig
    x = [t.position for t in rows]
    y = [_value(t, metric) for t in rows]
    hover = [[html.escape(t.reference, quote=False), html.escape(t.candidate, quote=False), html.escape(t.op, quote=False),
              t.matched_by] for t in rows]
    colours = [_OK if t.within else _BAD for t in rows]
    fig.add_trace(go.Scatter(
        x=x, y=y, mode="lines+markers", name=label, line={"color": _LINE, "width": 1},
        marker={"color": colours, "size": 7}, customdata=hover,
        hovertemplate=("#%{x} %{customdata[0]} (%{customdata[2]})<br>candidate %{customdata[1]}, matched by "
                       "%{customdata[3]}<br>" + label + " %{y:.4g}<extra></extra>"),
    ))
    tol = comparison.tolerance
    bound = {"snr_db": tol.min_snr, "cosine": tol.min_cosine}.get(metric)
    if bound is not None and math.isfinite(bound):
        fig.add_hline(y=bound, line={"dash": "dash", "color": _BAD, "width": 1},
                      annotation_text="tolerance", annotation_position="bottom right")
    first = comparison.first_divergent
    if first is not None:
        hit = next((t for t in rows if t.position == first.position), None)
        if hit is not None:
            fig.add_trace(go.Scatter(
                x=[hit.position], y=[_value(hit, metric)], mode="markers", name="first divergent",
                marker={"symbol": "circle-open", "size": 18, "color": _BAD, "line": {"width": 3}},
                hoverinfo="skip",
            ))
            fig.add_annotation(x=hit.position, y=_value(hit, metric), text="first divergent", showarrow=True,
                               arrowhead=2, ax=40, ay=-40, font={"color": _BAD})
    fig.update_xaxes(title_text="tensor of the reference, in execution order")
    fig.update_yaxes(title_text=label + (" (equal values drawn at 150)" if metric == "snr_db" else ""))
    fig.update_layout(showlegend=False, hovermode="closest")
    return fig


def _plane(v: np.ndarray, channel: int) -> tuple[np.ndarray, str]:
    """Two dimensions to draw: leading 1s dropped, a feature map's channel picked, the rest folded."""
    while v.ndim > 2 and v.shape[0] == 1:
        v = v[0]
    if v.ndim == 3:
        c = min(max(int(channel), 0), v.shape[-1] - 1)
        return v[..., c], f", channel {c} of {v.shape[-1]}"
    if v.ndim > 3:
        return v.reshape(-1, v.shape[-1]), ""
    return v, ""


def output_figures(name: str, reference: np.ndarray, candidate: np.ndarray, *, channel: int = 0) -> list[tuple[str, go.Figure]]:
    """One output of both sides and their difference: for a matrix or feature map (``channel``
    picked), the reference's and the candidate's heatmaps on one colour range and the difference
    (candidate − reference) on a diverging one, titled briefly to stand side by side (``name``
    titles the lines); for a vector, both as lines and the difference.
    Each with a short name for a tab; empty for a single value. Arrays of different sizes raise
    ``ValueError``."""
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    if r.size != c.size:
        raise ValueError(f"The reference has {r.size} values and the candidate {c.size}.")
    if r.size <= 1:
        return []
    c = c.reshape(r.shape)
    label = html.escape(name, quote=False)
    rp, where = _plane(r, channel)
    cp, _ = _plane(c, channel)
    if rp.ndim == 2 and min(rp.shape) > 1:
        finite = np.concatenate([_display(rp)[np.isfinite(_display(rp))], _display(cp)[np.isfinite(_display(cp))]])
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        out = []
        # Short titles: three figures stand side by side, under the output's name.
        for tab, values in (("Reference", rp), ("Candidate", cp)):
            fig = heatmap(values, title=f"{tab}{where}", notes_below=True)
            fig.update_traces(zmin=lo, zmax=hi)
            out.append((tab, fig))
        diff = cp - rp
        span = float(np.nanmax(np.abs(diff[np.isfinite(diff)]))) if np.isfinite(diff).any() else 0.0
        fig = heatmap(diff, title=f"Difference (max {span:.3g})", colorscale="RdBu", notes_below=True)
        fig.update_traces(zmin=-span or -1.0, zmax=span or 1.0, reversescale=True)
        out.append(("Difference", fig))
        h, w = rp.shape
        if max(h, w) > 4 * min(h, w):
            # An oblong output ([896, 16] boxes) with square cells is a thin strip: let it fill the figure.
            for _, f in out:
                f.update_yaxes(scaleanchor=None, constrain=None)
                f.update_xaxes(constrain=None)
        return out
    fig = _figure(f"{label}: reference and candidate")
    flat_r, flat_c = np.ravel(rp), np.ravel(cp)
    idx = np.arange(flat_r.size)
    fig.add_trace(go.Scatter(x=idx, y=_display(flat_r), mode="lines", name="reference", line={"color": _LINE, "width": 1.5},
                             hovertemplate="%{x}: %{y:.6g}<extra>reference</extra>"))
    fig.add_trace(go.Scatter(x=idx, y=_display(flat_c), mode="lines", name="candidate",
                             line={"color": "#f58518", "width": 1.5, "dash": "dot"},
                             hovertemplate="%{x}: %{y:.6g}<extra>candidate</extra>"))
    fig.update_xaxes(title_text="index")
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return [("Both", fig), ("Difference", line(flat_c - flat_r, title=f"{label}: candidate − reference"))]


def sample_spread(spread: Any, metric: str = "snr_db") -> go.Figure:
    """Each output's ``metric`` per sample of a batch, one box per output with every sample shown."""
    label = METRIC_LABELS.get(metric, metric)
    fig = _figure(f"{label} of each output, over {len(spread.per_sample)} samples")
    for name in spread.outputs:
        values = []
        for s in spread.per_sample:
            m = s.get(name)
            if m is None:
                continue
            v = float(getattr(m, metric))
            values.append(max(-SNR_SHOWN, min(SNR_SHOWN, v)) if metric == "snr_db" else v)
        fig.add_trace(go.Box(y=values, name=html.escape(name, quote=False), boxpoints="all", jitter=0.3,
                             hovertemplate="%{y:.4g}<extra></extra>"))
    fig.update_yaxes(title_text=label)
    fig.update_layout(showlegend=False)
    return fig
