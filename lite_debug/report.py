"""Models, diagnoses and runs as rows and plain dicts: for tables, JSON and text output.

The command line prints these; the dashboard turns the rows into data frames. Nothing here
computes anything new: it only lays out the records.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from .records import Fix, Mismatch, ModelSpec, OutputTensor, RunResult, TensorSpec

__all__ = [
    "comparison_rows",
    "data_rows",
    "fixes_to_list",
    "format_table",
    "mismatches_to_list",
    "model_to_dict",
    "output_to_dict",
    "preview_image",
    "printable",
    "run_to_dict",
    "tensor_rows",
]


def _quant_cells(t: TensorSpec) -> tuple[str, str]:
    q = t.quantization
    if not q.is_quantized:
        return "", ""
    if q.per_channel:
        return q.describe(), f"{len(q.zero_point)} values"
    return f"{q.scale[0]:.6g}", str(q.zero_point[0] if q.zero_point else 0)


def tensor_rows(tensors: Sequence[TensorSpec]) -> list[dict[str, Any]]:
    """One row per tensor, with the columns of ``get_input_details()`` a user looks at."""
    rows = []
    for pos, t in enumerate(tensors):
        scale, zero = _quant_cells(t)
        rows.append(
            {
                "#": pos,
                "index": t.index,
                "name": t.name,
                "shape": list(t.shape),
                "shape_signature": list(t.shape_signature),
                "dtype": t.dtype,
                "scale": scale,
                "zero_point": zero,
            }
        )
    return rows


def data_rows(arrays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One row per array: shape, dtype and value range, for the diagnose view."""
    rows = []
    for name, x in arrays.items():
        x = np.asarray(x)
        row: dict[str, Any] = {"name": name, "shape": list(x.shape), "dtype": str(x.dtype), "min": "", "max": "", "mean": ""}
        if x.size and x.dtype.kind in "biuf":
            finite = x[np.isfinite(x)] if x.dtype.kind == "f" else x
            if finite.size:
                row.update(min=float(finite.min()), max=float(finite.max()), mean=float(finite.mean()))
        rows.append(row)
    return rows


def _tensor_dict(t: TensorSpec) -> dict[str, Any]:
    q = t.quantization
    return {
        "index": t.index,
        "name": t.name,
        "tensor_name": t.tensor_name,
        "shape": list(t.shape),
        "shape_signature": list(t.shape_signature),
        "dtype": t.dtype,
        "quantization": {
            "scale": list(q.scale),
            "zero_point": list(q.zero_point),
            "quantized_dimension": q.quantized_dimension,
        }
        if q.is_quantized
        else None,
    }


def model_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """The model's description as JSON-ready data."""
    return {
        "size": spec.size,
        "sha256": spec.sha256,
        "schema_version": spec.schema_version,
        "inputs": [_tensor_dict(t) for t in spec.inputs],
        "outputs": [_tensor_dict(t) for t in spec.outputs],
        "ops": [{"name": o.name, "kind": o.kind, "count": o.count, "version": o.version} for o in spec.ops],
        "custom_ops": [o.name for o in spec.custom_ops],
        "flex_ops": [o.name for o in spec.flex_ops],
        "signatures": [
            {
                "key": s.key,
                "inputs": [_tensor_dict(t) for t in s.inputs],
                "outputs": [_tensor_dict(t) for t in s.outputs],
            }
            for s in spec.signatures
        ],
        "packed_files": [{"name": f.name, "size": f.size} for f in spec.packed_files],
        "metadata": list(spec.metadata_names),
    }


def output_to_dict(o: OutputTensor, max_values: int = 10_000) -> dict[str, Any]:
    values = o.values
    entry: dict[str, Any] = {"name": o.name, "index": o.index, "shape": list(o.shape), "dtype": o.dtype}
    if o.quantization.is_quantized:
        entry["dequantized"] = True
        entry["raw"] = o.raw.ravel()[:max_values].tolist() if o.raw.size <= max_values else None
    if values.size <= max_values:
        entry["values"] = values.tolist()
    else:
        entry["values"] = None
        entry["values_truncated"] = True
    if values.size and values.dtype.kind in "biuf":
        v = values.astype(np.float64)
        entry["summary"] = {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean())}
    return entry


def run_to_dict(result: RunResult | None, skipped_reason: str = "") -> dict[str, Any]:
    if result is None:
        return {"status": "skipped", "reason": skipped_reason}
    out: dict[str, Any] = {
        "status": result.status,
        "invoke_ms": result.invoke_ms,
        "total_ms": result.total_ms,
        "detail": result.detail,
        "limit": result.limit,
    }
    if result.status == "skipped":
        out["error"] = {"type": "limit", "message": result.detail}
    if result.status == "error":
        out["error"] = {
            "type": result.error_type,
            "message": result.error_message,
            "kernel_message": result.kernel_message,
            "explanation": result.explanation.to_dict() if result.explanation else None,
        }
    elif result.status == "crashed":
        out["error"] = {"type": "crash", "message": result.detail, "signal": result.signal, "log": result.error_message}
    elif result.status == "timeout":
        out["error"] = {"type": "timeout", "message": result.detail}
    out["outputs"] = [output_to_dict(o) for o in result.outputs]
    return out


def mismatches_to_list(mismatches: Iterable[Mismatch]) -> list[dict[str, Any]]:
    return [m.to_dict() for m in mismatches]


def fixes_to_list(fixes: Iterable[Fix]) -> list[dict[str, Any]]:
    return [f.to_dict() for f in fixes]


# Characters a terminal acts on rather than shows: C0/C1 controls (escape sequences that set
# the title, clear the screen, move the cursor), format characters (right-to-left overrides
# that reorder what is read), line and paragraph separators, and unpaired surrogates.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` with every character a terminal would act on written as an escape (``\\x1b``,
    ``\\u202e``): names from a model or a file reach the terminal as text, never as commands.
    ``keep_newlines`` keeps line breaks (for the tool's own multi-line text)."""
    import unicodedata

    out = []
    for ch in str(text):
        if (ch == "\n" and keep_newlines) or unicodedata.category(ch) not in _UNPRINTABLE:
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii") if ord(ch) > 0xFF or ch in "\t\n\r" else f"\\x{ord(ch):02x}")
    return "".join(out)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as a plain aligned text table, every cell made printable (see ``printable``)."""
    if not rows:
        return "  (none)"
    columns = list(columns or rows[0].keys())
    cells = [[printable(_cell(r.get(c, ""))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    body = ["  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join([line.rstrip(), "  " + "  ".join("-" * w for w in widths), *(b.rstrip() for b in body)])


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


_SHAPE_KINDS = {"batch", "rank", "shape", "dynamic", "channels", "layout", "missing", "association"}
_DTYPE_KINDS = {"dtype", "quantization", "association", "missing"}
_VALUE_KINDS = {"range", "nan"}


def comparison_rows(tensor: TensorSpec, x: np.ndarray | None, mismatches: Sequence[Mismatch]) -> list[dict[str, Any]]:
    """The data beside the model's expectation for one input, each row marked with its worst severity.

    Rows: shape, dtype (with quantization), value range, and layout for 4-D inputs. ``severity``
    is ``"error"``, ``"warning"`` or ``""`` for the row, from the mismatches that concern it.
    """
    mine = [m for m in mismatches if m.input_name == tensor.name]

    def severity(kinds: set[str]) -> str:
        found = {m.severity for m in mine if m.kind in kinds}
        return "error" if "error" in found else "warning" if "warning" in found else ""

    q = tensor.quantization
    rows = [
        {"": "shape", "model expects": tensor.shape_text() + (f"  (signature {tensor.shape_text(True)})" if tensor.is_dynamic else ""),
         "data has": "—" if x is None else "[" + ", ".join(str(d) for d in x.shape) + "]", "severity": severity(_SHAPE_KINDS)},
        {"": "dtype", "model expects": tensor.dtype + (f"  ({q.describe()})" if q.is_quantized else ""),
         "data has": "—" if x is None else str(x.dtype), "severity": severity(_DTYPE_KINDS)},
    ]
    expected_range = ""
    if q.is_quantized and not q.per_channel:
        from .quantization import real_range

        rr = real_range(q, tensor.dtype)
        expected_range = f"real {rr[0]:.3g} … {rr[1]:.3g}" if rr else ""
    got_range = "—"
    if x is not None and x.size and x.dtype.kind in "biuf":
        finite = x[np.isfinite(x)] if x.dtype.kind == "f" else x
        bad = int(x.size - finite.size)
        got_range = f"{float(finite.min()):.4g} … {float(finite.max()):.4g}" if finite.size else "no finite values"
        if bad:
            got_range += f"  ({bad} NaN/Inf)"
    rows.append({"": "values", "model expects": expected_range or "—", "data has": got_range, "severity": severity(_VALUE_KINDS)})
    if tensor.rank == 4:
        def layout(shape: Sequence[int]) -> str:
            if len(shape) != 4:
                return "—"
            if shape[3] in (1, 3, 4) and shape[1] not in (1, 3, 4):
                return "NHWC (channels last)"
            if shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4):
                return "NCHW (channels first)"
            return "?"

        rows.append({"": "layout", "model expects": layout(tensor.shape), "data has": "—" if x is None else layout(x.shape),
                     "severity": severity({"layout", "channels"})})
    return rows


def preview_image(x: np.ndarray | None) -> np.ndarray | None:
    """The first image of an array as the model receives it, as HxWx3 uint8 for display.

    Floats are scaled from their own range; returns None when the array is not image-like.
    """
    if x is None or x.dtype.kind not in "biuf" or x.size == 0:
        return None
    a = np.asarray(x)
    if a.ndim == 4 and a.shape[0] >= 1:
        a = a[0]
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4) or min(a.shape[:2]) < 8:
        return None
    a = a[..., :3].astype(np.float64)
    finite = np.isfinite(a)
    lo, hi = (float(a[finite].min()), float(a[finite].max())) if finite.any() else (0.0, 1.0)
    if x.dtype == np.uint8:
        lo, hi = 0.0, 255.0
    span = hi - lo or 1.0
    img = np.clip(np.where(finite, (a - lo) / span * 255.0, 0), 0, 255).astype(np.uint8)
    return np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img
