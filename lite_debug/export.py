"""Export a run as a standalone Python script that reproduces it without lite-debug.

``make_script`` writes the script a user would have written by hand: load the data as it was
given, apply each fix lite-debug applied (the same line of Python the dashboard shows), resize
the inputs that need it, run the interpreter, print and save the outputs. The script needs
only ``numpy`` and ``ai-edge-litert`` (and Pillow when it reads an image or resizes with
Pillow's filter), so it can be attached to a bug report or run on a machine without lite-debug.

The script takes ``--model PATH``, ``--out PATH`` and ``--data PATH``: other data to run the
same fixes on (an ``.npy`` for a single input, an ``.npz`` keyed by input names, or, when the
data was an image, an image file read as lite-debug reads one). Without ``--data`` it runs on
the data lite-debug was given: embedded in the script as base64 ``.npy`` when the arrays total
at most ``EMBED_LIMIT`` bytes, otherwise in an ``inputs.npz`` the caller writes next to it
(``ExportedScript`` carries both, ``ExportedScript.write`` puts them in a folder), or in
``.npy`` files a bundle holds beside it. ``script_for_display`` shows the script with the
embedded data cut to one line.
"""

from __future__ import annotations

import base64
import inspect
import io
import re
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .diagnosis import diagnose
from .fixes import REGISTRY, apply_fix
from .records import Feed, Fix, Mismatch, ModelSpec, Step

__all__ = ["EMBED_LIMIT", "ExportedScript", "INPUTS_FILENAME", "make_script", "npz_bytes", "script_for_display"]

INPUTS_FILENAME = "inputs.npz"
EMBED_LIMIT = 256 << 10  # bytes of data embedded in a script; more goes beside it
_WIDTH = 100  # comment lines and base64 lines wrap here
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib")

def _resize_helper() -> str:
    """lite_debug.resize's code, as the script's own: it resizes exactly as lite-debug did, with
    numpy (and Pillow for Pillow's filter) only."""
    from . import resize

    source = inspect.getsource(resize)
    body = source[source.index("\nimport numpy as np\n") + len("\nimport numpy as np\n"):]
    return "# How lite-debug resized images (its resize module, copied here).\n" + body.strip("\n")


# Fix kinds whose line of Python calls lite_debug.audio's helpers.
AUDIO_HELPER_KINDS = ("resample", "fit_length", "split_windows")


def audio_helpers() -> str:
    """lite_debug.audio's resample, pad_or_trim and windows, as the script's own: it cuts and
    resamples recordings exactly as lite-debug did (numpy, and scipy's resample_poly)."""
    from . import audio

    parts = [inspect.getsource(f) for f in (audio.resample, audio.pad_or_trim, audio.windows)]
    return "# How lite-debug resampled and cut the recording (its audio module, copied here).\nimport math\n\n\n" + (
        "\n\n".join(p.strip("\n") for p in parts)
    )


_LOAD_HELPER = '''
def embedded_array(text):
    """An array embedded in this script as a base64 .npy file."""
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)
'''

def _image_helper() -> str:
    """How lite-debug reads an image file, as the script's own: its loading module's conversion
    copied, so that --data with a photo gives the array the dashboard would have."""
    from . import loading

    source = inspect.getsource(loading._image_to_array)
    # Without its annotations: the script has no "from __future__ import annotations", and
    # Image is imported only when an image is read.
    convert = "def image_to_array(img):" + source[source.index("\n"):]
    return (
        "def load_image(path):\n"
        '    """An image file as lite-debug reads one: turned by its EXIF orientation, uint8 H×W (gray),\n'
        '    H×W×2 (gray and alpha), H×W×3 or H×W×4 (uint16 for 16-bit gray)."""\n'
        "    from PIL import Image, ImageOps  # only when an image is read\n"
        "\n"
        f"    with Image.open(path, formats={loading._IMAGE_FORMATS!r}) as img:\n"
        "        img.load()\n"
        "        # Viewers show photos turned by their EXIF orientation; so does lite-debug.\n"
        "        shown = ImageOps.exif_transpose(img) or img\n"
        "        return np.ascontiguousarray(image_to_array(shown))\n"
        "\n\n" + convert.strip("\n")
    )


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

    ``inputs_npz`` is ``None`` when the inputs are embedded in ``text`` (or read from files a
    bundle holds); otherwise it is the content of the ``inputs.npz`` the script expects next
    to itself.
    """

    text: str
    inputs_npz: bytes | None = None

    @property
    def display(self) -> str:
        """The script to show on screen: embedded data cut to one line (``script_for_display``)."""
        return script_for_display(self.text)

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


def _embedded(name: str, value: np.ndarray, indent: str = "    ") -> list[str]:
    encoded = _npy_base64(value)
    chunks = [encoded[i : i + _WIDTH] for i in range(0, len(encoded), _WIDTH)] or [""]
    inner = indent + "    "
    return (
        [f"{indent}inputs[{name!r}] = embedded_array(", f'{inner}"""']
        + [inner + c for c in chunks]
        + [f'{inner}"""', f"{indent})"]
    )


_EMBEDDED_OPEN = re.compile(r"^(\s*)inputs\[.*\] = embedded_array\($")


def script_for_display(text: str) -> str:
    """The script with every embedded array's base64 replaced by one line saying how much was
    cut, for showing on screen; the script itself (to download or run) is ``text``."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        quote = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if _EMBEDDED_OPEN.match(lines[i]) and quote == '"""':
            end = next((j for j in range(i + 2, len(lines)) if lines[j].strip() == '"""'), None)
            if end is not None:
                inner = lines[i + 1][: len(lines[i + 1]) - len(lines[i + 1].lstrip())]
                chars = sum(len(line.strip()) for line in lines[i + 2 : end])
                out += [lines[i + 1], f"{inner}… {chars:,} characters of base64 (the .npy of the data) not shown here; "
                        "the downloaded script holds them …", lines[end]]
                i = end + 1
                continue
        i += 1
    return "\n".join(out)


def _looks_like_image(value: np.ndarray, data_source: str) -> bool:
    """Whether the data as given is one image as lite-debug decodes image files (so the
    script reads an image file given with --data the same way)."""
    decoded = (value.dtype == np.uint8 and value.ndim == 3 and value.shape[-1] in (2, 3, 4)) or (
        value.dtype in (np.uint8, np.uint16) and value.ndim == 2
    )
    if not decoded or min(value.shape[:2]) < 2:
        return False
    if not data_source:
        return value.ndim == 3 and value.shape[-1] in (3, 4)
    return any(ext in data_source.lower() for ext in _IMAGE_EXTENSIONS)


def make_script(
    *,
    model_filename: str,
    original: Feed,
    spec: ModelSpec,
    steps: Sequence[Step] | None = None,
    applied: Sequence[Fix] = (),
    signature: str | None = None,
    remaining: Sequence[Mismatch] | None = None,
    embed_limit: int = EMBED_LIMIT,
    data_files: Mapping[str, str] | None = None,
    data_source: str = "",
    reads_images: bool | None = None,
) -> ExportedScript:
    """Return a standalone script that runs the model on ``original`` with the fixes applied.

    ``original`` is the data as the user gave it, bound to the inputs (``bind``); ``steps`` the
    fixes in the order lite-debug applied them, each with the mismatch it answered and the data
    after it (``Workspace.steps``, ``FixOutcome.steps``). A plain list of fixes (``applied``)
    is replayed to know the data after each. ``remaining``: the errors left after the fixes
    (diagnosed here once when not given).

    Where the script finds the data as given: with ``data_files`` (input name → a ``.npy``
    path relative to the script, as in a bundle), in those files; otherwise embedded when the
    arrays total at most ``embed_limit`` bytes, else in ``inputs.npz`` next to the script (the
    result's ``inputs_npz``). ``--data PATH`` replaces it: an ``.npy`` for a single input, an
    ``.npz`` keyed by the input names, or an image file when ``reads_images`` (by default:
    the data is one array that looks like a decoded image and ``data_source``, the file names
    it came from, names an image, if given).

    The script takes ``--model`` (default ``model_filename`` next to it) and ``--out`` (default
    ``outputs.npz`` next to it). It uses the signature runner when ``signature`` is given, the
    index API (``resize_tensor_input``, ``set_tensor``) otherwise.

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
    if data_files is not None:
        missing = [name for name in arrays if name not in data_files]
        if missing:
            raise ValueError(f"No file is named for the data of {missing[0]!r}; name one for every array.")
    embed = data_files is None and total <= embed_limit
    if reads_images is None:
        reads_images = len(arrays) == 1 and _looks_like_image(next(iter(arrays.values())), data_source)
    feed = Feed(arrays=arrays, resize=dict(original.resize))
    if steps is None:
        replayed = []
        for fix in applied:
            feed = apply_fix(feed, fix)
            replayed.append(Step(fix=fix, answered=None, feed=feed, click=0))
        steps = replayed
    needs_resize = any(s.fix.kind == "resize_image" for s in steps)
    needs_audio = any(s.fix.kind in AUDIO_HELPER_KINDS for s in steps)
    windows = bool(steps) and any(s.fix.kind == "split_windows" for s in steps) and signature is None and _is_batch(spec, steps[-1].feed)
    needs_pillow = any(s.fix.kind == "resize_image" and s.fix.params.get("method") == "pillow" for s in steps)

    blocks: list[list[str]] = []
    before = Feed(arrays=arrays, resize=dict(original.resize))
    for number, step in enumerate(steps, start=1):
        blocks.append(_fix_block(number, len(steps), step.fix, step.answered, before, step.feed))
        before = step.feed
    if remaining is None:
        remaining = [m for m in diagnose(spec, before, signature) if m.severity == "error"]

    names = list(arrays)
    kinds = ["an .npy" + (" or an image file (PNG, JPEG, BMP)" if reads_images else "") if len(names) == 1 else None,
             "an .npz keyed by " + ("the input name" if len(names) == 1 else "the input names")]
    data_help = " or ".join(k for k in kinds if k)
    out: list[str] = []
    add = out.append
    add("#!/usr/bin/env python3")
    add('"""Reproduce a lite-debug run: the data as given, the fixes applied, the model run.')
    add("")
    pillow = "Pillow" if needs_pillow else "Pillow to read an image" if reads_images else ""
    needs = "numpy and ai-edge-litert" + (f" ({pillow})" if pillow else "") + (" (scipy to resample audio)" if needs_audio else "")
    add(f"Generated by lite-debug; it needs only {needs}:")
    add("")
    add("    pip install numpy ai-edge-litert" + (" pillow" if pillow else "") + (" scipy" if needs_audio else ""))
    add("    python reproduce.py [--model MODEL.tflite] [--data DATA] [--out OUTPUTS.npz]")
    add("")
    add("The model defaults to the file named below, next to this script, and the outputs are saved to")
    add("outputs.npz next to it. --data runs the same fixes on other data: " + data_help + ".")
    add("The fixes were chosen for the data lite-debug was given; data of another shape may need others.")
    add('"""')
    add("")
    add("import argparse")
    if embed:
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
    add("# The names of the data as given, in order; the fixes below work on these.")
    add(f"INPUT_NAMES = {names!r}")
    add("HERE = Path(__file__).resolve().parent")
    add("")
    add('parser = argparse.ArgumentParser(description="Reproduce a lite-debug run.")')
    add('parser.add_argument("--model", default=str(HERE / MODEL_FILENAME), help="the .tflite model (default: %(default)s)")')
    add(f'parser.add_argument("--data", help={("other data to run the fixes on: " + data_help)!r})')
    add('parser.add_argument("--out", default=str(HERE / "outputs.npz"), help="where to save the outputs (default: %(default)s)")')
    add("args = parser.parse_args()")
    add("MODEL_PATH, OUTPUTS_PATH = args.model, args.out")
    add("")
    add("")
    if embed:
        out += _LOAD_HELPER.strip("\n").splitlines()
        add("")
        add("")
    if reads_images:
        out += _image_helper().splitlines()
        add("")
        add("")
    out += _read_data_helper(reads_images).splitlines()
    add("")
    add("")
    if needs_resize:
        out += _resize_helper().splitlines()
        add("")
        add("")
    if needs_audio:
        out += audio_helpers().splitlines()
        add("")
        add("")
    out += _REPORT_HELPERS.strip("\n").splitlines()
    add("")
    add("")
    add("def given_data():")
    add('    """The data as lite-debug was given it, before any fix, keyed by the model\'s input names."""')
    add("    inputs = {}")
    if data_files is not None:
        out += _comment("The data is in the .npy files beside this script (as the bundle holds them).", "    ")
        for name, path in data_files.items():
            if name in arrays:
                add(f"    inputs[{name!r}] = np.load(HERE / {path!r}, allow_pickle=False)")
    elif embed:
        for name, value in arrays.items():
            out += _comment(f"{name!r}: {_what(value)}", "    ")
            out += _embedded(name, value)
    else:
        out += _comment(
            f"The data ({total:,} bytes) is too large to embed: it is in {INPUTS_FILENAME} next to this script.", "    "
        )
        add(f"    with np.load(HERE / {INPUTS_FILENAME!r}, allow_pickle=False) as npz:")
        for name in arrays:
            add(f"        inputs[{name!r}] = npz[{name!r}]")
    add("    return inputs")
    add("")
    add("")
    add("# 1. The data: the file given with --data, or the data lite-debug was given.")
    add("inputs = read_data(args.data) if args.data else given_data()")
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
    add("if not Path(MODEL_PATH).is_file():")
    add('    sys.exit(f"No model at {MODEL_PATH}: put {MODEL_FILENAME} next to this script, or give --model PATH.")')
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
        if windows:
            out += _comment("The recording was cut into windows: run them one at a time, as a batch, and stack the outputs.")
            add("outputs = {}")
            add("for i in range(len(next(iter(inputs.values())))):")
            add("    for name, details in input_details.items():")
            add("        interpreter.set_tensor(details['index'], inputs[name][i:i + 1])")
            add("    interpreter.invoke()")
            add("    for details in interpreter.get_output_details():")
            add("        outputs.setdefault(details['name'], []).append(interpreter.get_tensor(details['index']))")
            add("for details in interpreter.get_output_details():")
            add("    value = outputs[details['name']] = np.concatenate(outputs[details['name']])")
            add("    describe(details['name'], value, details['quantization'])")
        else:
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
    return ExportedScript(text=text, inputs_npz=None if embed or data_files is not None else npz_bytes(arrays))


def _is_batch(spec: ModelSpec, feed: Feed) -> bool:
    from .batch import batch_plan

    return batch_plan(spec, feed) is not None


def _read_data_helper(reads_images: bool) -> str:
    """read_data: the file given with --data, checked against the names of the data as given."""
    image = (
        f"    if suffix in {_IMAGE_EXTENSIONS!r}:\n"
        "        return {INPUT_NAMES[0]: load_image(path)}\n"
    ) if reads_images else ""
    kinds = "an .npy or an image file" if reads_images else "an .npy"
    return (
        "def read_data(path):\n"
        '    """The data in a file given with --data: an .npz keyed by the input names, or (for data of\n'
        f'    one input) {kinds}."""\n'
        "    path = Path(path)\n"
        "    if not path.is_file():\n"
        '        sys.exit(f"--data: {path} is not a file.")\n'
        "    suffix = path.suffix.lower()\n"
        '    if suffix == ".npz":\n'
        "        with np.load(path, allow_pickle=False) as npz:\n"
        "            given = {name: npz[name] for name in npz.files}\n"
        "        if sorted(given) != sorted(INPUT_NAMES):\n"
        '            sys.exit(f"--data: {path.name} holds the arrays {sorted(given)}; it needs one for each of {INPUT_NAMES}.")\n'
        "        return {name: given[name] for name in INPUT_NAMES}\n"
        "    if len(INPUT_NAMES) != 1:\n"
        '        sys.exit(f"--data: the data has {len(INPUT_NAMES)} arrays, {INPUT_NAMES}: give an .npz keyed by those names.")\n'
        '    if suffix == ".npy":\n'
        "        return {INPUT_NAMES[0]: np.load(path, allow_pickle=False)}\n"
        + image
        + f'    sys.exit(f"--data: {{path.name}} is not {kinds} or an .npz.")\n'
    )


def _resize_literal(resize: Mapping[str, Sequence[int]]) -> str:
    return "{" + ", ".join(f"{k!r}: {[int(d) for d in v]!r}" for k, v in resize.items()) + "}"
