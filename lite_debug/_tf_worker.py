"""The worker that runs a Keras or SavedModel reference model with TensorFlow.

Started as ``python -m lite_debug._tf_worker FD`` by ``running.TensorFlowWorker``, with the same
limits as every worker (address space, CPU time; the parent keeps the clock). It serves the
loop of ``_worker`` with two more requests: ``LoadReference`` and ``RunReference``. TensorFlow
is imported here, on the first load, and in no other process of lite-debug's serving side.

A Keras model loads with ``keras.models.load_model(path, safe_mode=True, compile=False)``, after
``reference_safety.check_keras_file`` has read its config and HDF5 parts: safe mode refuses a
``Lambda`` layer's bytecode, and the check refuses what safe mode has let through before (a
Lambda naming a function, functions from outside Keras's maths, TFSMLayer, links and external
datasets in the weights). A SavedModel arrives as a zip of its folder: it is read in memory with
``archive.read_files`` (no ``..``, no links, size caps), written to a private temporary folder
of this process only (mode 0700), its ``saved_model.pb`` checked by
``reference_safety.check_saved_model_bytes`` (no op that reads or writes files or reaches the
network can run), loaded with ``tf.saved_model.load``, and the folder removed when the process
ends. Its signature (``serving_default`` unless one is named) is what runs. A refusal comes back
as ``Failed`` with ``error_type="RefusedReference"``, before any of the model's ops ran.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from . import _protocol as P
from . import _worker as W

_REFERENCE: dict[str, Any] = {}  # the loaded model: "call", "outputs" (names in order)


def _workdir() -> str:
    path = _REFERENCE.get("dir")
    if path is None:
        path = tempfile.mkdtemp(prefix="lite-debug-reference-")  # 0700: this process's only
        _REFERENCE["dir"] = path
        atexit.register(shutil.rmtree, path, True)
    return path


def _spec(name: str, shape: Any, dtype: Any) -> P.ReferenceTensor:
    dims = tuple(-1 if d is None else int(d) for d in (shape or ()))
    return P.ReferenceTensor(name=str(name), shape=dims, dtype=str(getattr(dtype, "name", dtype)))


def _saved_model_dir(data: bytes) -> str:
    """Write the zipped SavedModel's files under a fresh folder; the folder that holds ``saved_model.pb``."""
    from .archive import read_files

    files = read_files("the SavedModel archive", data)
    roots = {f.path[: -len("saved_model.pb")] for f in files if f.path == "saved_model.pb" or f.path.endswith("/saved_model.pb")}
    if len(roots) != 1:
        raise ValueError(
            "The archive holds no saved_model.pb" if not roots else
            f"The archive holds {len(roots)} SavedModels (saved_model.pb files); zip one model's folder at a time"
        )
    (root,) = roots
    base = os.path.join(_workdir(), "saved_model")
    for f in files:
        if not f.path.startswith(root):
            continue
        target = os.path.join(base, *f.path[len(root):].split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as fh:
            fh.write(f.data)
    return base


def _keras_names(model: Any) -> tuple[list[P.ReferenceTensor], list[P.ReferenceTensor]]:
    inputs = list(getattr(model, "inputs", None) or [])
    outputs = list(getattr(model, "outputs", None) or [])
    if not inputs or not outputs:
        raise ValueError("The Keras model has no known inputs or outputs (a subclassed model that was never built)")
    out_names = list(getattr(model, "output_names", None) or [])
    if len(out_names) != len(outputs):
        out_names = []
        for t in outputs:
            history = getattr(t, "_keras_history", None)
            op = getattr(history, "operation", None) if history is not None else None
            out_names.append(getattr(op, "name", None) or getattr(t, "name", "output"))
    ins = [_spec(getattr(t, "name", f"input_{i}"), t.shape, t.dtype) for i, t in enumerate(inputs)]
    outs = [_spec(n, t.shape, t.dtype) for n, t in zip(out_names, outputs)]
    return ins, outs


@W.handles(P.LoadReference)
def _load_reference(state: W._State, request: P.LoadReference) -> Any:
    W._cpu_budget(state.cpu_seconds)
    t0 = time.perf_counter()
    _REFERENCE.pop("call", None)
    try:
        data = request.model
        if request.path is not None:
            with open(request.path, "rb") as fh:
                data = fh.read()
        from .reference_safety import check_keras_file, check_saved_model_bytes

        if request.kind != "saved_model":
            check_keras_file(data or b"", request.kind)  # before Keras reads a byte of it
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
        import tensorflow as tf

        versions = f"TensorFlow {tf.__version__}"
        signature = ""
        if request.kind == "saved_model":
            folder = _saved_model_dir(data or b"")
            with open(os.path.join(folder, "saved_model.pb"), "rb") as fh:
                check_saved_model_bytes(fh.read())  # tf.saved_model.load reads this file, and the .pb first
            loaded = tf.saved_model.load(folder)
            keys = list(loaded.signatures.keys())
            signature = request.signature or ("serving_default" if "serving_default" in keys else (keys[0] if keys else ""))
            if signature not in keys:
                raise ValueError(f"The SavedModel has no signature {signature!r}; its signatures are {keys or 'none'}")
            fn = loaded.signatures[signature]
            args, kwargs = fn.structured_input_signature
            specs = {**{s.name: s for s in args}, **kwargs}
            ins = [_spec(name, s.shape.as_list() if s.shape.rank is not None else (), s.dtype) for name, s in specs.items()]
            outputs = fn.structured_outputs
            names = sorted(outputs) if isinstance(outputs, dict) else [f"output_{i}" for i in range(len(outputs))]
            outs = [_spec(n, outputs[n].shape.as_list() if outputs[n].shape.rank is not None else (), outputs[n].dtype)
                    for n in names] if isinstance(outputs, dict) else []
            dtypes = {s.name: s.dtype for s in ins}

            def call(arrays: dict) -> list:
                got = fn(**{k: tf.constant(v, dtype=dtypes[k]) for k, v in arrays.items()})
                return [got[n] for n in names]

            _REFERENCE["loaded"] = loaded  # the signature's function needs its object alive
        else:
            import keras

            versions += f", Keras {keras.__version__}"
            suffix = ".keras" if request.kind == "keras" else ".h5"
            path = os.path.join(_workdir(), "model" + suffix)
            with open(path, "wb") as fh:
                fh.write(data or b"")
            model = keras.models.load_model(path, safe_mode=True, compile=False)
            os.unlink(path)
            ins, outs = _keras_names(model)
            in_names = [t.name for t in ins]

            def call(arrays: dict) -> list:
                x = [arrays[n] for n in in_names]
                got = model(x[0] if len(x) == 1 else x, training=False)
                if isinstance(got, dict):
                    got = [got[n] for n in (t.name for t in outs)] if all(t.name in got for t in outs) else list(got.values())
                elif not isinstance(got, (list, tuple)):
                    got = [got]
                return list(got)

        _REFERENCE["call"] = call
        _REFERENCE["outputs"] = [t.name for t in outs]
        return P.ReferenceLoaded(inputs=tuple(ins), outputs=tuple(outs), versions=versions,
                                 load_ms=(time.perf_counter() - t0) * 1000.0, signature=signature)
    except Exception as exc:  # a model TensorFlow refuses is an answer, not a crash
        return P.Failed(error_type=type(exc).__name__, message=W._message(exc), stage="load")


def _numpy(value: Any) -> Any:
    """An output as a numpy array a reply may carry (bfloat16 and the like as float32)."""
    import numpy as np

    v = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    v = np.asarray(v)
    if v.dtype.kind in "OS":
        return np.array([x if isinstance(x, bytes) else str(x).encode() for x in v.ravel().tolist()], dtype=object).reshape(v.shape)
    if v.dtype.str not in P.DTYPES:
        v = v.astype(np.float32) if v.dtype.kind in "fV" else v.astype(v.dtype.newbyteorder("<"))
    return np.ascontiguousarray(v)


@W.handles(P.RunReference)
def _run_reference(state: W._State, request: P.RunReference) -> Any:
    call = _REFERENCE.get("call")
    if call is None:
        return P.Failed(error_type="RuntimeError", message="No reference model is loaded in the worker.", stage="run")
    W._cpu_budget(state.cpu_seconds)
    try:
        arrays = {str(k): v for k, v in request.arrays}
        t0 = time.perf_counter()
        got = call(arrays)
        invoke_ms = (time.perf_counter() - t0) * 1000.0
        values = [_numpy(v) for v in got]
        cap = request.output_cap
        if cap is not None:
            sizes = [W._held(v, ()) for v in values]
            if sum(sizes) > cap:
                names = _REFERENCE.get("outputs", [])
                return P.TooLarge(outputs=tuple(
                    P.OutputSize(name=names[i] if i < len(names) else str(i), dtype=W._dtype_name(v),
                                 shape=tuple(int(d) for d in v.shape), nbytes=n)
                    for i, (v, n) in enumerate(zip(values, sizes))), total=sum(sizes), cap=cap, invoke_ms=invoke_ms)
        names = _REFERENCE.get("outputs", [])
        return P.RunDone(outputs=tuple(P.Output(index=i, name=names[i] if i < len(names) else str(i), value=v)
                                       for i, v in enumerate(values)), invoke_ms=invoke_ms)
    except Exception as exc:
        return P.Failed(error_type=type(exc).__name__, message=W._message(exc), stage="run")


if __name__ == "__main__":
    W._cli(sys.argv[1:])
