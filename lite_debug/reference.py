"""A Keras or SavedModel model as the reference of a comparison, run with TensorFlow in a worker.

``open_reference(name, data)`` tells a Keras file (``.keras``: a zip with ``config.json``;
``.h5``: HDF5) or a zipped SavedModel folder (a zip that holds ``saved_model.pb``) by its
content, never its extension, and returns a ``KerasModel``. ``run_reference`` runs it in a
``running.TensorFlowWorker`` (TensorFlow is imported there only, Keras in safe mode, with the
limits of every worker) on the candidate's data, while the candidate runs in the pool, and
compares their outputs (``compare.Comparison``; outputs only: a Keras graph's intermediate
tensors do not map onto the converted model's ops).

A reference the worker refuses before loading it (``reference_safety``: a SavedModel whose graph
could read or write files or reach the network, a Keras config that names code) raises
``ModelLoadError`` with the worker's sentence: the file is unusable, not a failed run.

The reference gets the values the candidate computes with: the candidate's inputs,
dequantized when they are quantized integers, cast to the reference's input types. Inputs pair
by name (as ``bind`` compares names), else in order; outputs likewise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Literal, Sequence

import numpy as np

from .errors import ModelLoadError
from .records import Feed, RunResult

__all__ = ["KerasModel", "ReferenceKind", "open_reference", "reference_kind", "run_reference"]

ReferenceKind = Literal["keras", "h5", "saved_model"]
REFUSED = "RefusedReference"  # the worker's error type for a model reference_safety refuses
_HDF5 = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True, eq=False)
class KerasModel:
    """A reference model for TensorFlow: the file's bytes, its kind, and the SavedModel
    signature to run (``serving_default`` unless named)."""

    name: str
    data: bytes
    kind: ReferenceKind
    signature: str | None = None

    def describe(self) -> str:
        what = {"keras": "Keras model", "h5": "Keras model (HDF5)", "saved_model": "SavedModel"}[self.kind]
        return f"the {what} {self.name}, run with TensorFlow"


def reference_kind(data: bytes | memoryview) -> ReferenceKind | None:
    """What a file holds, by its content: ``"h5"`` (HDF5), ``"keras"`` (a zip with a top-level
    ``config.json``), ``"saved_model"`` (a zip that holds a ``saved_model.pb``), or None."""
    head = bytes(memoryview(data)[:8])
    if head == _HDF5:
        return "h5"
    if not head.startswith(b"PK"):
        return None
    from ._zipdir import DamagedDirectory, TooManyEntries, check_directory

    try:
        names = check_directory(data, 4096)
    except (DamagedDirectory, TooManyEntries):
        return None
    if not names:
        return None
    paths = [n.decode("utf-8", "replace") for n in names]
    if any(p == "saved_model.pb" or p.endswith("/saved_model.pb") for p in paths):
        return "saved_model"
    if "config.json" in paths and ("model.weights.h5" in paths or "metadata.json" in paths):
        return "keras"
    return None


def open_reference(name: str, data: bytes | memoryview, signature: str | None = None) -> KerasModel:
    """A Keras or SavedModel reference from a file's bytes. Raises ``ModelLoadError`` with a
    sentence when the content is neither."""
    kind = reference_kind(data)
    if kind is None:
        raise ModelLoadError(
            f"{name} is neither a Keras model (.keras, .h5) nor a zipped SavedModel folder (a zip holding "
            "saved_model.pb): its content matches none of them."
        )
    return KerasModel(name=name, data=bytes(data), kind=kind, signature=signature)


def _names_of(candidate: Any) -> list[tuple[Any, set[str]]]:
    """(TensorSpec, every name it goes by, normalised) for each input of the candidate."""
    from .binding import normalise_name

    inputs, _ = candidate.spec.io(candidate.signature)
    by_index: dict[int, set[str]] = {}
    for sig in candidate.spec.signatures:
        try:
            sig_inputs, _ = candidate.spec.io(sig.key)
        except KeyError:
            continue
        for t in sig_inputs:
            by_index.setdefault(t.index, set()).add(normalise_name(t.name))
    return [(t, {normalise_name(t.name), normalise_name(t.tensor_name or t.name)} | by_index.get(t.index, set()))
            for t in inputs]


def reference_inputs(loaded: Any, candidate: Any, feed: Feed) -> list[tuple[str, np.ndarray]]:
    """The candidate's data as the reference's inputs: paired by name, else in order;
    dequantized, then cast to the reference's input type. Raises ``ValueError`` with a sentence
    when the inputs cannot be paired."""
    from .binding import normalise_name
    from .quantization import dequantize

    cands = _names_of(candidate)
    refs = list(loaded.inputs)
    if len(refs) != len(cands):
        raise ValueError(f"The reference takes {len(refs)} input(s) and the candidate {len(cands)}; they cannot be paired.")
    left = list(range(len(cands)))
    chosen: list[int | None] = []
    for r in refs:
        k = next((i for i in left if normalise_name(r.name) in cands[i][1]), None)
        chosen.append(k)
        if k is not None:
            left.remove(k)
    out = []
    for r, k in zip(refs, chosen):
        if k is None:
            k = left.pop(0)
        spec = cands[k][0]
        if spec.name not in feed.arrays:
            raise ValueError(f"There is no data for the candidate's input {spec.name!r}, which the reference's {r.name!r} takes.")
        value = dequantize(np.asarray(feed.arrays[spec.name]), spec.quantization)
        try:
            dtype = np.dtype(r.dtype)
        except TypeError:
            dtype = value.dtype
        out.append((r.name, np.asarray(value).astype(dtype, copy=False)))
    return out


def run_reference(
    reference: KerasModel,
    candidate: Any,
    *,
    tolerance: Any = None,
    pool: Any = None,
    owner: Hashable = None,
    on_wait: Callable[[Any], None] | None = None,
    limits: Any = None,
    samples: Sequence[Feed] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Any:
    """Run ``reference`` with TensorFlow in a worker of its own and ``candidate`` (a
    ``compare.Model``) in the pool, on the candidate's data (or each feed of ``samples``), and
    compare their outputs. Returns a ``compare.Comparison`` (with ``samples`` filled for several
    feeds). A reference that fails to load or run is the reference side's ``run``; one the worker
    refuses to load (``reference_safety``) raises ``ModelLoadError`` with its sentence.
    """
    import threading
    from dataclasses import replace

    from . import compare as C
    from .running import Limits, TensorFlowWorker, default_pool

    pool = pool or default_pool()
    tolerance = tolerance or C.Tolerance()
    feeds = list(samples) if samples else [candidate.feed]
    worker = TensorFlowWorker(limits or getattr(pool, "limits", None) or Limits())
    side_kind = "saved_model" if reference.kind == "saved_model" else "keras"
    ref_runs: list[RunResult] = []
    loaded_box: list[Any] = [None]
    refused = threading.Event()

    def reference_side() -> None:
        failed, loaded = worker.load_reference(reference.data, reference.kind, reference.signature)
        if failed is not None:
            ref_runs.append(failed)
            if failed.error_type == REFUSED:
                refused.set()
            return
        loaded_box[0] = loaded
        names = [t.name for t in loaded.outputs]
        for feed in feeds:
            try:
                arrays = reference_inputs(loaded, candidate, feed)
            except ValueError as exc:
                ref_runs.append(RunResult(status="error", error_type="ValueError", error_message=str(exc), detail=str(exc)))
                return
            ref_runs.append(worker.run_reference(arrays, names))

    try:
        thread = threading.Thread(target=reference_side, name="lite-debug-reference", daemon=True)
        thread.start()
        cand_runs = []
        for k, feed in enumerate(feeds):
            if refused.is_set():
                break
            cand_runs.append(pool.run(candidate.model_bytes, candidate.spec, feed, candidate.signature, owner=owner,
                                      on_wait=on_wait))
            if progress is not None and k + 1 < len(feeds):
                progress(k + 1, len(feeds))
        thread.join()
    finally:
        worker.close()
    if refused.is_set():
        raise ModelLoadError(ref_runs[0].error_message or f"{reference.name} was refused.")
    if progress is not None:
        progress(len(feeds), len(feeds))
    loaded = loaded_box[0]
    versions = f" ({loaded.versions})" if loaded is not None and loaded.versions else ""
    ref_outs = [(t.name, i, (_norm(t.name),)) for i, t in enumerate(loaded.outputs)] if loaded is not None else []
    results = []
    for k, cand_run in enumerate(cand_runs):
        ref_run = ref_runs[k] if k < len(ref_runs) else ref_runs[-1]
        ref_side = C.Side(kind=side_kind, name=reference.name, description=reference.describe() + versions, run=ref_run)
        cand_side = C._side(replace(candidate, feed=feeds[k]), cand_run)
        results.append(C._outputs_only(ref_side, cand_side, ref_run, cand_run, ref_outs, C._model_outputs(candidate),
                                       tolerance))
    first = results[0]
    if len(results) > 1:
        spread = C.SampleSpread(
            outputs=tuple(o.reference for o in first.outputs),
            per_sample=tuple({o.reference: o.metrics for o in c.outputs} for c in results),
            within=tuple(c.ran and all(o.within for o in c.outputs) for c in results),
        )
        first = replace(first, samples=spread)
    return first


def _norm(name: str) -> str:
    from .binding import normalise_name

    return normalise_name(name)
