"""Export a run as a standalone Python script that reproduces it without lite-debug.

``make_script`` writes the script a user would have written by hand: load the data as it was
given, apply each fix lite-debug applied (the same line of Python the dashboard shows), resize
the inputs that need it, run the interpreter, print and save the outputs. The script needs
only ``numpy`` and ``ai-edge-litert`` (and Pillow when an image is resized), so it can be
attached to a bug report or run on a machine without lite-debug.

The data travels with the script: small inputs are embedded in it as base64 ``.npy``; larger
ones go to an ``inputs.npz`` that the caller writes next to the script (``ExportedScript``
carries both, and ``ExportedScript.write`` puts them in a folder).
"""

from __future__ import annotations

import base64
import inspect
import io
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .diagnosis import diagnose
from .fixes import REGISTRY, apply_fix
from .records import Feed, Fix, Mismatch, ModelSpec, Step

__all__ = ["ExportedScript", "INPUTS_FILENAME", "make_script", "npz_bytes"]

INPUTS_FILENAME = "inputs.npz"
_WIDTH = 100  # comment lines and base64 lines wrap here

def _resize_helper() -> str:
    """lite_debug.resize's code, as the script's own: it resizes exactly as lite-debug did, with
    numpy (and Pillow for Pillow's filter) only."""
    from . import resize

    source = inspect.getsource(resize)
    body = source[source.index("\nimport numpy as np\n") + len("\nimport numpy as np\n"):]
    return "# How lite-debug resized images (its resize module, copied here).\n" + body.strip("\n")


_LOAD_HELPER = '''
def embedded_array(text):
    """An array embedded in this script as a base64 .npy file."""
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)
'''

_REPORT_HELPERS = '''
def describe(name, value, quantization=None, top=5):
    """Print an output's name, shape and dtype, its range and its largest values."""
    value = np.asarray(value)
    print(f"output {name!r}: shape {list(value.shape)}, dtype {value.dtype}")
    if value.size == 0 or value.dtype.kind not in "biuf":
        return
    real = value.astype(np.float64)
    scale, zero_point = quantization or (0.0, 0)
    if scale:
        # A quantized output: real = scale * (q - zero_point).
        real = scale * (real - zero_point)
        print(f"  quantized with scale {scale:.6g}, zero point {zero_point}; values below are real")
    finite = real[np.isfinite(real)]
    if finite.size < real.size:
        print(f"  {real.size - finite.size} of {real.size} values are NaN or infinite")
    if finite.size:
        print(f"  min {finite.min():.6g}, max {finite.max():.6g}, mean {finite.mean():.6g}")
    if value.size > 1:
        flat = np.where(np.isfinite(real), real, -np.inf).ravel()
        order = np.argsort(-flat, kind="stable")[:top]
        ranked = ", ".join(f"{[int(j) for j in np.unravel_index(i, value.shape)]} {real.ravel()[i]:.6g}" for i in order)
        print(f"  top {len(order)}: {ranked}")


def save_npz(path, arrays):
    """Save arrays to an .npz keyed by their exact names (np.savez takes names as keywords)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(value), allow_pickle=False)
'''


@dataclass(frozen=True)
class ExportedScript:
    """A reproduction script, and the inputs it reads when they were too large to embed.

    ``inputs_npz`` is ``None`` when the inputs are embedded in ``text``; otherwise it is the
    content of the ``inputs.npz`` the script expects next to itself.
    """

    text: str
    inputs_npz: bytes | None = None

    def write(self, directory: str | Path, name: str = "reproduce.py") -> Path:
        """Write the script (and ``inputs.npz`` if any) into ``directory``; return the script's path."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_text(self.text, encoding="utf-8")
        if self.inputs_npz is not None:
            (folder / INPUTS_FILENAME).write_bytes(self.inputs_npz)
        return path


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An ``.npz`` of ``arrays`` keyed by their exact names, which may be any string.

    ``np.savez`` takes the names as keyword arguments, so an input called ``file`` breaks it;
    this writes the archive directly. Raises ``ValueError`` for object arrays, which ``.npy``
    cannot hold without pickling.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(value), allow_pickle=False)
    return buf.getvalue()


def _npy_base64(value: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, np.asarray(value), allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _safe(text: str) -> str:
    """Text fit for one comment line: control characters (newlines, NUL) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _comment(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(
        _safe(text), width=_WIDTH, initial_indent=indent + "# ", subsequent_indent=indent + "#   ",
        break_long_words=False, break_on_hyphens=False,
    ) or [indent + "#"]


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _what(x: np.ndarray) -> str:
    return f"{x.dtype} {_shape(x.shape)}"


def _fix_block(number: int, total: int, fix: Fix, mismatch: Mismatch | None, before: Feed, after: Feed) -> list[str]:
    """The lines that apply one fix, with comments saying what it changes and why."""
    lines = [""]
    target = "" if fix.kind == "reassign" else f" (input {fix.input!r})"
    lines += _comment(f"Fix {number} of {total}{target}: {fix.label}.")
    if mismatch is not None:
        lines += _comment(f"It fixes the {mismatch.kind} {mismatch.severity}: {mismatch.message}")
    else:
        lines += _comment(f"Why: {REGISTRY[fix.kind].why}.")
    if fix.kind == "reassign":
        sources = sorted(set(dict(fix.params)["mapping"].values()))
        lines += ["given = inputs", fix.code]
        lines += _comment("Arrays the mapping does not mention keep their names.")
        lines.append(
            f"inputs.update({{k: v for k, v in given.items() if k not in inputs and k not in {sources!r}}})"
        )
        return lines
    if fix.kind == "resize_input":
        shape = list(after.resize[fix.input])
        lines += _comment(f"lite-debug's line: {fix.code}")
        lines += _comment("Done in step 3: resize_tensor_input with this shape, then allocate_tensors().")
        lines.append(f"resize[{fix.input!r}] = {shape!r}")
        return lines
    old = before.arrays.get(fix.input)
    new = after.arrays[fix.input]
    change = f"{_what(old)} -> {_what(new)}" if old is not None else f"nothing -> {_what(new)}"
    lines += _comment(f"{change}")
    if fix.kind != "generate":
        lines.append(f"x = inputs[{fix.input!r}]")
    lines.append(fix.code)
    lines.append(f"inputs[{fix.input!r}] = x")
    return lines


def _embedded(name: str, value: np.ndarray) -> list[str]:
    encoded = _npy_base64(value)
    chunks = [encoded[i : i + _WIDTH] for i in range(0, len(encoded), _WIDTH)] or [""]
    return [f"inputs[{name!r}] = embedded_array(", '    """'] + ["    " + c for c in chunks] + ['    """', ")"]


def make_script(
    *,
    model_filename: str,
    original: Feed,
    spec: ModelSpec,
    steps: Sequence[Step] | None = None,
    applied: Sequence[Fix] = (),
    signature: str | None = None,
    remaining: Sequence[Mismatch] | None = None,
    embed_limit: int = 4 << 20,
) -> ExportedScript:
    """Return a standalone script that runs the model on ``original`` with the fixes applied.

    ``original`` is the data as the user gave it, bound to the inputs (``bind``); ``steps`` the
    fixes in the order lite-debug applied them, each with the mismatch it answered and the data
    after it (``Workspace.steps``, ``FixOutcome.steps``). A plain list of fixes (``applied``)
    is replayed to know the data after each. ``remaining``: the errors left after the fixes
    (diagnosed here once when not given). The inputs are embedded when their total size is at
    most ``embed_limit`` bytes; otherwise the result's ``inputs_npz`` holds them and the script
    reads ``inputs.npz`` from its own folder.

    The script takes the model's path as its first argument (default ``model_filename``, next
    to the script) and where to save the outputs as its second (default ``outputs.npz`` next to
    the script). It uses the signature runner when ``signature`` is given, the index API
    (``resize_tensor_input``, ``set_tensor``) otherwise.

    Raises ``FixError`` when a fix of ``applied`` does not apply to the data, ``KeyError`` for an
    unknown signature and ``ValueError`` for object arrays, which cannot be saved without pickling.
    """
    spec.io(signature)  # raises KeyError for an unknown signature, before any work
    arrays = {name: np.asarray(value) for name, value in original.arrays.items()}
    total = sum(int(a.nbytes) for a in arrays.values())
    for name, value in arrays.items():
        if value.dtype.hasobject:
            raise ValueError(
                f"The array for {name!r} holds Python objects, which a script cannot embed without pickling; "
                "convert it to a numeric array first."
            )
    embed = total <= embed_limit
    feed = Feed(arrays=arrays, resize=dict(original.resize))
    if steps is None:
        replayed = []
        for fix in applied:
            feed = apply_fix(feed, fix)
            replayed.append(Step(fix=fix, answered=None, feed=feed, click=0))
        steps = replayed
    needs_resize = any(s.fix.kind == "resize_image" for s in steps)
    needs_pillow = any(s.fix.kind == "resize_image" and s.fix.params.get("method") == "pillow" for s in steps)

    blocks: list[list[str]] = []
    before = Feed(arrays=arrays, resize=dict(original.resize))
    for number, step in enumerate(steps, start=1):
        blocks.append(_fix_block(number, len(steps), step.fix, step.answered, before, step.feed))
        before = step.feed
    if remaining is None:
        remaining = [m for m in diagnose(spec, before, signature) if m.severity == "error"]

    out: list[str] = []
    add = out.append
    add("#!/usr/bin/env python3")
    add('"""Reproduce a lite-debug run: the data as given, the fixes applied, the model run.')
    add("")
    needs = "numpy, ai-edge-litert and Pillow" if needs_pillow else "numpy and ai-edge-litert"
    add(f"Generated by lite-debug; it needs only {needs}:")
    add("")
    add("    pip install numpy ai-edge-litert" + (" pillow" if needs_pillow else ""))
    add("    python this_script.py [MODEL.tflite] [OUTPUTS.npz]")
    add("")
    add("The model defaults to the file named below, next to this script; the outputs are saved to")
    add("outputs.npz next to this script unless a second argument names another path.")
    add('"""')
    add("")
    add("import base64")
    add("import io")
    add("import sys")
    add("import zipfile")
    add("from pathlib import Path")
    add("")
    add("import numpy as np")
    add("from ai_edge_litert.interpreter import Interpreter")
    add("")
    out += _comment(f"The model lite-debug ran: {spec.size} bytes, sha256 {spec.sha256}.")
    add(f"MODEL_FILENAME = {model_filename!r}")
    add(f"SIGNATURE = {signature!r}")
    add("HERE = Path(__file__).resolve().parent")
    add("MODEL_PATH = sys.argv[1] if len(sys.argv) > 1 else str(HERE / MODEL_FILENAME)")
    add('OUTPUTS_PATH = sys.argv[2] if len(sys.argv) > 2 else str(HERE / "outputs.npz")')
    add("")
    add("")
    if embed:
        out += _LOAD_HELPER.strip("\n").splitlines()
        add("")
        add("")
    if needs_resize:
        out += _resize_helper().splitlines()
        add("")
        add("")
    out += _REPORT_HELPERS.strip("\n").splitlines()
    add("")
    add("")
    add("# 1. The data as it was given, before any fix, keyed by the model's input names.")
    add("inputs = {}")
    if embed:
        for name, value in arrays.items():
            out += _comment(f"{name!r}: {_what(value)}")
            out += _embedded(name, value)
    else:
        out += _comment(
            f"The data ({total} bytes) is too large to embed: it is in {INPUTS_FILENAME} next to this script."
        )
        add(f"with np.load(HERE / {INPUTS_FILENAME!r}, allow_pickle=False) as npz:")
        for name in arrays:
            add(f"    inputs[{name!r}] = npz[{name!r}]")
    add("")
    add("# Inputs to resize before allocating tensors (the interpreter's shapes are fixed otherwise).")
    add(f"resize = {_resize_literal(original.resize)}")
    add("for name, x in inputs.items():")
    add('    print(f"given  {name!r}: shape {list(x.shape)}, dtype {x.dtype}")')
    add("")
    add("# 2. The fixes lite-debug applied, in order; each works on one input's array, called x.")
    if not steps:
        add("# None: the model accepted the data as it was.")
    for block in blocks:
        out += block
    if remaining:
        add("")
        out += _comment(
            "lite-debug still saw these errors after the fixes, so the interpreter may refuse the data: "
            + " ".join(m.message for m in remaining)
        )
    add("")
    add("for name, x in inputs.items():")
    add('    print(f"fed    {name!r}: shape {list(x.shape)}, dtype {x.dtype}")')
    add("")
    add("# 3. Run the model.")
    add("interpreter = Interpreter(model_path=MODEL_PATH)")
    if signature is not None:
        add("# A signature runner matches the arrays to inputs by name and resizes inputs itself.")
        add("runner = interpreter.get_signature_runner(SIGNATURE)")
        add("names = list(runner.get_input_details())")
        add("missing = [name for name in names if name not in inputs]")
        add("if missing:")
        add('    sys.exit(f"No data for the inputs {missing}; the signature takes {names}.")')
        add("results = runner(**{name: inputs[name] for name in names})")
        add("output_details = runner.get_output_details()")
        add("outputs = {}")
        add("for name, value in results.items():")
        add("    describe(name, value, output_details[name]['quantization'])")
        add("    outputs[name] = value")
    else:
        add("input_details = {d['name']: d for d in interpreter.get_input_details()}")
        add("missing = [name for name in input_details if name not in inputs]")
        add("if missing:")
        add('    sys.exit(f"No data for the inputs {missing}; the model takes {list(input_details)}.")')
        add("for name, shape in resize.items():")
        add("    # The input accepts other sizes (-1 in its shape signature): reallocate for this one.")
        add("    interpreter.resize_tensor_input(input_details[name]['index'], list(shape))")
        add("interpreter.allocate_tensors()")
        add("for name, details in input_details.items():")
        add("    # set_tensor copies the array into the interpreter; it checks the shape and dtype.")
        add("    interpreter.set_tensor(details['index'], inputs[name])")
        add("interpreter.invoke()")
        add("outputs = {}")
        add("for details in interpreter.get_output_details():")
        add("    value = interpreter.get_tensor(details['index'])")
        add("    describe(details['name'], value, details['quantization'])")
        add("    outputs[details['name']] = value")
    add("")
    add("# 4. Save every output as the interpreter returned it (quantized outputs stay integers).")
    add("save_npz(OUTPUTS_PATH, outputs)")
    add('print(f"saved {len(outputs)} output(s) to {OUTPUTS_PATH}")')
    text = "\n".join(out) + "\n"
    return ExportedScript(text=text, inputs_npz=None if embed else npz_bytes(arrays))


def _resize_literal(resize: Mapping[str, Sequence[int]]) -> str:
    return "{" + ", ".join(f"{k!r}: {[int(d) for d in v]!r}" for k, v in resize.items()) + "}"
