"""Explain TFLite / LiteRT interpreter errors in plain words.

``explain()`` takes an exception, its message, or a whole traceback pasted from a bug report, and
returns an ``Explanation``: a stable ``kind``, a title, the cause and the fix as full sentences
that name what the message names, and the ``facts`` read from it (op, node, input, dimension, …).

The interpreter's messages are awkward to match, and this module copes with each of these:

- One failure reports several lines, which reach Python glued together with no separator
  (``…failed to prepare.Failed to apply the default…``).
- The error reporter's buffer is never emptied, so every message also repeats what earlier
  calls on the same interpreter reported: the same error several times, or an old error in
  front of the new one. The newest error is at the end.
- Kernel checks start with a build-specific source path and line
  (``tensorflow/lite/kernels/reshape.cc:69``, ``./tflite/kernels/internal/reshape_utils.h``).
- Wording changes between versions, so every kind is matched by a pattern, never by a whole
  string.

All recognised messages live in one ordered table, ``_RULES``: adding a kind is one entry. The
order is the priority: root causes first, then the generic lines ("Node number 3 (X) failed to
prepare.") that only say where a failure happened.

This module is pure Python: it imports neither the interpreter nor streamlit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Union

from lite_debug.records import XNNPACK_CUSTOM_OPS, Explanation

__all__ = ["clean_message", "explain", "known_kinds"]

Facts = Mapping[str, Any]
Text = Union[str, Callable[[Facts], str]]


@dataclass(frozen=True)
class _Rule:
    """One recognisable message: its patterns and what to say about it.

    ``title``, ``cause`` and ``fix`` are ``str.format`` templates over the facts (plus the
    helper values of ``_values``), or functions of them where the advice depends on the values.
    ``root`` is False for generic lines that say where something failed but not why.
    ``unless`` names more specific kinds that make this one redundant.
    """

    kind: str
    patterns: tuple[re.Pattern[str], ...]
    title: Text
    cause: Text
    fix: Text
    root: bool = True
    unless: tuple[str, ...] = ()


def _rule(
    kind: str,
    *patterns: str,
    title: Text,
    cause: Text,
    fix: Text,
    root: bool = True,
    unless: tuple[str, ...] = (),
) -> _Rule:
    return _Rule(kind, tuple(re.compile(p) for p in patterns), title, cause, fix, root, unless)


# Facts that are numbers when the message gives digits; everything else stays text (a tensor
# name such as "1" must not become an int).
_NUMERIC_FACTS = frozenset(
    {
        "node", "input", "dimension", "tensor", "max_index", "version", "supported_version",
        "count", "code", "delegate_index", "got", "expected", "errno", "minimum",
    }
)

# TFLite type names as the interpreter prints them, and the NumPy spelling a fix should use.
_NUMPY_TYPES = {
    "FLOAT32": "np.float32", "FLOAT16": "np.float16", "FLOAT64": "np.float64",
    "INT8": "np.int8", "UINT8": "np.uint8", "INT16": "np.int16", "UINT16": "np.uint16",
    "INT32": "np.int32", "UINT32": "np.uint32", "INT64": "np.int64", "UINT64": "np.uint64",
    "BOOL": "np.bool_", "STRING": "np.bytes_", "COMPLEX64": "np.complex64",
    "COMPLEX128": "np.complex128",
}
_FLOAT_TYPES = frozenset({"FLOAT16", "FLOAT32", "FLOAT64"})
_QUANTIZED_TYPES = frozenset({"INT8", "UINT8", "INT16"})

# The advice every shape failure inside the graph shares.
_NO_DELEGATE = (
    "experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES "
    "(from ai_edge_litert.interpreter import OpResolverType)"
)
_UPGRADE = (
    "Upgrade the runtime that runs the model (`pip install -U ai-edge-litert`, or the "
    "tflite-runtime / tensorflow package you use) to at least the TensorFlow version that "
    "converted it, or convert the model with the TensorFlow version that matches the runtime."
)


# -- texts that depend on the values ----------------------------------------------------------


def _dimension_cause(f: Facts) -> str:
    d, got, exp = f["dimension"], f["got"], f["expected"]
    text = f"Dimension {d} of input {f['input']} is {got} in your data, but the model expects {exp}."
    if _is_channels(f):
        return text + (
            f" This looks like the colour channels: your image has {_CHANNELS[got]} but the "
            f"model wants {_CHANNELS[exp]}."
        )
    if d == 0:
        return text + f" Dimension 0 is normally the batch: the model was converted for batches of {exp}."
    return text + (
        " The data was prepared at another size than the model was converted for "
        "(for an image: another height or width)."
    )


def _dimension_fix(f: Facts) -> str:
    d, exp, i = f["dimension"], f["expected"], f["input"]
    resize = (
        f"If get_input_details() shows -1 at position {d} of that input's 'shape_signature', "
        f"you can instead call `interpreter.resize_tensor_input({i}, x.shape)` and then "
        "`interpreter.allocate_tensors()` before set_tensor()."
    )
    if _is_channels(f):
        mode = {1: "'L'", 3: "'RGB'", 4: "'RGBA'"}[exp]
        return (
            f"Convert the image to {_CHANNELS[exp]} before building x, for example with PIL "
            f"`image.convert({mode})`, so that dimension {d} is {exp}."
        )
    if d == 0:
        return f"Pass {exp} item(s) per call, for example `x[:{exp}]` in a loop over your data. {resize}"
    return (
        f"Resize or crop the data so that dimension {d} is {exp}, the size in get_input_details()'s "
        f"'shape' for tensor {i} (for an image, resize it to the model's height and width). {resize}"
    )


_CHANNELS = {1: "1 channel (grayscale)", 3: "3 channels (RGB)", 4: "4 channels (RGBA)"}


def _is_channels(f: Facts) -> bool:
    return f["dimension"] > 0 and f["got"] in _CHANNELS and f["expected"] in _CHANNELS


def _rank_cause(f: Facts) -> str:
    got, exp = f["got"], f["expected"]
    text = f"Your data for input {f['input']} has {got} dimensions, but the model expects {exp}."
    if got == exp - 1:
        return text + " It is most likely missing the batch dimension in front."
    if got == exp + 1:
        return text + " It has one dimension too many, such as a batch dimension added twice."
    return text


def _rank_fix(f: Facts) -> str:
    got, exp, i = f["got"], f["expected"], f["input"]
    if got == exp - 1:
        return (
            "Add the batch dimension in front: `x = np.expand_dims(x, 0)` (a shape like "
            f"(224, 224, 3) becomes (1, 224, 224, 3)), then call `interpreter.set_tensor({i}, x)` again."
        )
    if got == exp + 1:
        return (
            "Remove the extra dimension: `x = np.squeeze(x, 0)` if it has size 1, or reshape to "
            f"the input's shape with `x = x.reshape(details['shape'])`, where details is the entry "
            f"of get_input_details() whose 'index' is {i}."
        )
    return (
        f"Reshape x to the {exp}-dimensional shape in get_input_details() for tensor {i}: "
        "`x = x.reshape(details['shape'])` if the number of values agrees, otherwise rebuild the data."
    )


def _dtype_cause(f: Facts) -> str:
    got, exp = f["got_type"], f["expected_type"]
    name = f" (tensor {f['name']!r})" if f.get("name") else ""
    text = f"The array you passed for input {f['input']}{name} has type {got}, but the model expects {exp}."
    if got == "FLOAT64" and exp == "FLOAT32":
        return text + (
            " NumPy makes float64 arrays by default (np.array of Python floats, np.random.rand, "
            "division of integer arrays), while the model was converted for float32."
        )
    if got in _FLOAT_TYPES and exp in _QUANTIZED_TYPES:
        return text + (
            " The model is quantized: it takes integers that stand for real values through the "
            "input's scale and zero point."
        )
    if got in {"UINT8", "INT8"} and exp in _FLOAT_TYPES:
        return text + (
            " Images loaded as 8-bit integers are going into a float model, which usually also "
            "expects values normalised the way it was trained."
        )
    if got == "INT64" and exp == "INT32":
        return text + " NumPy integer arrays are int64 by default."
    if got == "STRING":
        return text + (
            " NumPy made an array of strings or Python objects, for example from a list that mixes "
            "types or has rows of different lengths."
        )
    return text


def _dtype_fix(f: Facts) -> str:
    got, exp = f["got_type"], f["expected_type"]
    np_exp = _NUMPY_TYPES.get(exp, "details['dtype']")
    if got in _FLOAT_TYPES and exp in _QUANTIZED_TYPES:
        return (
            "Quantize with the input's own parameters: `scale, zero_point = details['quantization']` "
            f"then `x = np.clip(np.round(x / scale + zero_point), np.iinfo({np_exp}).min, "
            f"np.iinfo({np_exp}).max).astype({np_exp})`, where details is the entry of "
            f"get_input_details() whose 'index' is {f['input']}. If x already holds raw 0-255 "
            f"pixel values and scale is about 1/255, `x.astype({np_exp})` is enough."
        )
    if got in {"UINT8", "INT8"} and exp in _FLOAT_TYPES:
        return (
            f"Convert and scale the data as the model was trained, for example "
            f"`x = x.astype({np_exp}) / 255.0` (check the model's preprocessing: some expect "
            "-1..1), then call set_tensor() again."
        )
    return (
        f"Cast the array before set_tensor(): `x = x.astype({np_exp})` (or "
        "`x.astype(details['dtype'])` with the input's entry of get_input_details())."
    )


def _custom_op_cause(f: Facts) -> str:
    op = f["op"]
    text = (
        f"The model contains the custom op {op}{f['at_node']}. Custom ops are not part of "
        "TensorFlow Lite, and no implementation or delegate for this one was given to the "
        "interpreter, so allocate_tensors() cannot prepare it."
    )
    if op.startswith("edgetpu"):
        return text + " It is the op of a model compiled for the Coral Edge TPU."
    if op in XNNPACK_CUSTOM_OPS:
        return text + (
            f" {op} is a MediaPipe op that the default XNNPACK delegate implements, so it is missing "
            "only when the interpreter runs without the default delegates."
        )
    return text + (
        " A TensorFlow op that the converter kept as a custom op (converting with "
        "allow_custom_ops=True) fails the same way."
    )


def _custom_op_fix(f: Facts) -> str:
    op = f["op"]
    if op.startswith("edgetpu"):
        return (
            "Run it with the Edge TPU delegate on a machine with the accelerator: "
            "`Interpreter(model_path=path, experimental_delegates=[load_delegate('libedgetpu.so.1')])`, "
            "or use the CPU version of the model (the one not compiled with edgetpu_compiler)."
        )
    if op in XNNPACK_CUSTOM_OPS:
        return (
            "Create the interpreter with the default op resolver, without "
            "experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, so that "
            f"XNNPACK provides {op}."
        )
    return (
        f"Either provide {op}: register its implementation with "
        "`InterpreterWithCustomOps(model_path=path, custom_op_registerers=[...])` or load the "
        f"delegate that implements it; or re-convert the model without allow_custom_ops after "
        f"replacing the part that produces {op} with builtin ops."
    )


def _file_unreadable_cause(f: Facts) -> str:
    errno = f["errno"]
    text = (
        "The runtime opened the model path but could not map it into memory "
        f"(error {errno}: {os.strerror(errno)})."
    )
    if errno == 19:
        return text + (
            " This happens when model_path is a directory, such as a SavedModel folder, instead of "
            "a .tflite file."
        )
    return text


def _num_threads_cause(f: Facts) -> str:
    if "minimum" in f:
        return f"num_threads must be an integer of at least {f['minimum']}, and the value given is smaller."
    return (
        "num_threads must be a Python int, and the value given has another type, for example a "
        "string read from a configuration file or an environment variable."
    )


def _signature_count_fix(f: Facts) -> str:
    if f["count"] == 0:
        return (
            "This model has no signatures: use get_input_details(), set_tensor(), invoke() and "
            "get_tensor() instead, or re-convert it from a SavedModel to get one."
        )
    return (
        "List the keys with `interpreter.get_signature_list()` and pass one: "
        "`interpreter.get_signature_runner('serving_default')`."
    )


def _kernel_check_cause(f: Facts) -> str:
    values = f" ({f['got']} != {f['expected']})" if "got" in f else ""
    return (
        f"{f['The_op']}{f['at_node']} checked `{f['check']}` while it was prepared or run, and the "
        f"check failed{values}. Such checks fail when an input has a shape or type the converted "
        "model does not support, most often after resize_tensor_input()."
    )


def _kernel_check_fix(f: Facts) -> str:
    where = f" (the check is in {f['source']})" if f.get("source") else ""
    return (
        "Keep the inputs at the shapes and types in get_input_details(); if you resized an input, "
        "go back to the model's shape, or re-convert the model with dynamic (None) dimensions"
        f"{where}."
    )


def _delegate_failed_cause(f: Facts) -> str:
    detail = f" with the message {f['detail']!r}" if f.get("detail") else " without saying why"
    return (
        f"The library {f['library']} was loaded, but creating the delegate failed{detail}. For the "
        "Coral Edge TPU this usually means no accelerator was found: it is not plugged in, your "
        "user may not access it, or the driver and runtime versions differ."
    )


# -- the table --------------------------------------------------------------------------------

# A C expression as the kernel check macros print it: names, ->, ., ::, calls and subscripts.
# Every repetition is bounded: a pattern that starts with a character class is tried at each
# position of the text, and an unbounded one makes a long pasted text cost quadratic time.
_EXPR = r"(?:[\w>.:-]|\([^()]{0,200}\)|\[[^\]]{0,200}\]){1,160}"
_TERM = rf"{_EXPR}(?: (?:[-+*/%]|<<|>>) {_EXPR}){{0,6}}"
_OPS = r"(?:==|!=|<=|>=|<|>|&&|\|\|)"

_RULES: tuple[_Rule, ...] = (
    # Building the interpreter: the file and the flatbuffer.
    _rule(
        "file_not_found",
        r"Could not open '(?P<path>[^']*)'",
        r"(?:^|\s)Failed to open (?P<path>\S.*?)\s*$",
        title="The model file {path} cannot be opened",
        cause=(
            "The interpreter could not open the model file '{path}': nothing exists at that path, "
            "or it cannot be read. A relative path is looked up from the current working directory, "
            "which is often not the script's folder; typos and trailing spaces in the name give the "
            "same error."
        ),
        fix=(
            "Check `os.path.exists({path!r})` and pass an absolute path, for example "
            "`str(pathlib.Path(__file__).parent / 'model.tflite')`; if the file exists, check that "
            "you may read it."
        ),
    ),
    _rule(
        "model_file_empty",
        r"mmap of size 0 requested",
        title="The model file is empty",
        cause=(
            "The file given as model_path has 0 bytes: a download or copy that failed, or a file "
            "that was created but never written."
        ),
        fix="Check `os.path.getsize(path)` and download or export the model again.",
    ),
    _rule(
        "model_file_unreadable",
        r"Mmap of '[^']*' at offset '[^']*' failed with error '(?P<errno>\d+)'",
        title="The model file cannot be read into memory",
        cause=_file_unreadable_cause,
        fix=(
            "Pass the path of the .tflite file itself, not a directory; if you have a SavedModel, "
            "convert it first with `tf.lite.TFLiteConverter.from_saved_model(folder).convert()`."
        ),
    ),
    _rule(
        "not_a_flatbuffer",
        r"not a valid Flatbuffer buffer",
        r"Model provided has model identifier '(?P<identifier>.{0,4}?)', should be '(?P<expected>\w+)'",
        title="The data is not a TFLite model",
        cause=lambda f: (
            "The bytes given to the interpreter are not a valid TFLite flatbuffer"
            + (
                f": bytes 4 to 7 read {f['identifier']!r} where a TFLite model has {f['expected']!r}"
                if "identifier" in f
                else ""
            )
            + ". Usual reasons: an HTML page saved instead of the model (a download link that "
            "went wrong), a Git LFS pointer file, a truncated or corrupted download, or a model in "
            "another format (SavedModel, Keras, ONNX) renamed to .tflite."
        ),
        fix=(
            "Look at the first bytes: `open(path, 'rb').read(8)[4:8]` must be b'TFL3'. A file that "
            "starts with b'<' is HTML and one that starts with b'version https://git-lfs' is a Git "
            "LFS pointer (run `git lfs pull`). Download the raw file again, or convert the original "
            "model with tf.lite.TFLiteConverter."
        ),
    ),
    _rule(
        "schema_version",
        r"schema version (?P<version>\d+) not equal to supported version (?P<supported_version>\d+)",
        title="Model schema version {version} is not supported",
        cause=(
            "The file declares TFLite schema version {version}, but this runtime reads only version "
            "{supported_version}: the file is very old, hand-built or corrupted."
        ),
        fix=(
            "Convert the model again with a current tf.lite.TFLiteConverter; if you downloaded it, "
            "download it again and compare its size with the source."
        ),
    ),
    _rule(
        "op_version_unsupported",
        r"Didn't find op for builtin opcode '(?P<op>[^']+)' version '(?P<version>\d+)'",
        title="Op {op} version {version} is newer than this runtime",
        cause=(
            "The model uses version {version} of the builtin op {op}, which this TensorFlow Lite "
            "runtime does not implement: the model was converted by a newer TensorFlow than the "
            "runtime. Conversion options such as quantization can also raise an op's version."
        ),
        fix=_UPGRADE,
    ),
    _rule(
        "builtin_op_unknown",
        r"Op builtin_code out of range: (?P<code>-?\d+)",
        title="The model uses builtin op number {code}, unknown to this runtime",
        cause=(
            "The model uses builtin op number {code}, which did not exist when this runtime was "
            "built: the model was converted by a newer TensorFlow than the runtime."
        ),
        fix=_UPGRADE,
    ),
    _rule(
        "no_model_given",
        r"model_path`? or `?model_content`? must be specified",
        title="No model was given to the Interpreter",
        cause=(
            "The Interpreter was created with neither model_path nor model_content. An empty "
            "string or an empty bytes object counts as missing, so a file read that returned b'' "
            "ends up here too."
        ),
        fix=(
            "Pass exactly one: `Interpreter(model_path='/absolute/path/model.tflite')` or "
            "`Interpreter(model_content=data)`, and check `len(data) > 0` after reading the file."
        ),
    ),
    _rule(
        "both_models_given",
        r"Can't both provide `?model_path`? and `?model_content`?",
        title="Both model_path and model_content were given",
        cause="The Interpreter was given model_path and model_content at once, and it takes only one model.",
        fix="Pass only one of them: `Interpreter(model_path=path)` or `Interpreter(model_content=data)`.",
    ),
    _rule(
        "invalid_num_threads",
        r"num_threads should (?:be )?>= ?(?P<minimum>-?\d+)",
        r"type of num_threads should be int",
        title="num_threads is not valid",
        cause=_num_threads_cause,
        fix=(
            "Pass a positive integer: `Interpreter(..., num_threads=int(n))` with n at least 1, "
            "for example `os.cpu_count()`."
        ),
    ),
    # Delegates.
    _rule(
        "delegate_library_not_found",
        r"(?P<library>[^\s:]{1,400}): cannot open shared object file",
        r"Could not find module '(?P<library>[^']+)'",
        r"dlopen\((?P<library>[^,)]+)",
        title="The delegate library {library} was not found",
        cause=(
            "load_delegate() could not load the shared library {library}: it is not installed, or "
            "it is not on the library search path (LD_LIBRARY_PATH on Linux, PATH on Windows)."
        ),
        fix=(
            "Install the runtime that ships {library} (for the Coral Edge TPU, the libedgetpu1-std "
            "package) or pass the library's full path to load_delegate(); catch OSError around "
            "load_delegate() to fall back to the CPU."
        ),
    ),
    _rule(
        "delegate_not_a_delegate",
        r"(?P<library>[^\s:]{1,400}): undefined symbol: tflite_plugin_(?:create|destroy)_delegate",
        title="{library} is not a TFLite delegate",
        cause=(
            "The library {library} was loaded, but it does not export tflite_plugin_create_delegate, "
            "the entry point every external TFLite delegate provides."
        ),
        fix=(
            "Pass the delegate's own library to load_delegate() (for the Coral Edge TPU, "
            "'libedgetpu.so.1'), not a dependency or an unrelated library."
        ),
    ),
    _rule(
        "delegate_load_failed",
        r"Failed to load delegate from (?P<library>\S+)(?: (?P<detail>\S.*))?",
        title="The delegate in {library} failed to start",
        cause=_delegate_failed_cause,
        fix=(
            "Check that the device is connected and visible (for example `lsusb` or "
            "`ls /dev/apex_0`), that your user may access it (udev rules, group membership), and "
            "that driver and runtime versions match; meanwhile catch ValueError around "
            "load_delegate() and run on the CPU without it."
        ),
    ),
    _rule(
        "delegates_need_cpython",
        r"Delegates are currently only supported into CPython",
        title="Delegates need CPython",
        cause="load_delegate() only works on CPython, and this Python is another implementation (such as PyPy).",
        fix="Run the model with CPython, or without the delegate.",
    ),
    # set_tensor / get_tensor / tensor().
    _rule(
        "dimension_mismatch",
        r"Dimension mismatch\. Got (?P<got>\d+) but expected (?P<expected>\d+) for dimension "
        r"(?P<dimension>\d+) of input (?P<input>\d+)",
        title="Dimension {dimension} of input {input} is {got}, the model expects {expected}",
        cause=_dimension_cause,
        fix=_dimension_fix,
    ),
    _rule(
        "rank_mismatch",
        r"Dimension mismatch\. Got (?P<got>\d+) but expected (?P<expected>\d+) for input (?P<input>\d+)",
        title="Input {input} has {got} dimensions, the model expects {expected}",
        cause=_rank_cause,
        fix=_rank_fix,
    ),
    _rule(
        "dtype_mismatch",
        r"Got (?:value|tensor) of type (?P<got_type>\w+) but expected type (?P<expected_type>\w+) "
        r"for input (?P<input>\d+)(?:, name: (?P<name>\S+))?",
        title="Input {input} needs {expected_type} data, got {got_type}",
        cause=_dtype_cause,
        fix=_dtype_fix,
    ),
    _rule(
        "tensor_unallocated",
        r"Tensor is unallocated",
        title="set_tensor() was called before allocate_tensors()",
        cause=(
            "The input tensor has no memory yet: the interpreter reserves it in allocate_tensors(), "
            "and set_tensor() ran before that call."
        ),
        fix=(
            "Call `interpreter.allocate_tensors()` once after creating the interpreter (and again "
            "after every resize_tensor_input()), then set_tensor(), then invoke()."
        ),
    ),
    _rule(
        "tensor_data_null",
        r"Tensor data is null",
        title="The tensor has no data to read",
        cause=(
            "get_tensor() (or the view returned by tensor()) found no memory behind the tensor. "
            "Either allocate_tensors() has not been called yet, or the tensor is an intermediate "
            "one whose memory the runtime reuses or hands to the XNNPACK delegate, so its values "
            "are not kept."
        ),
        fix=(
            "Call `interpreter.allocate_tensors()` first (and invoke() before reading outputs). To "
            "read intermediate tensors, create the interpreter with "
            "experimental_preserve_all_tensors=True and " + _NO_DELEGATE + ", or read only the "
            "indices listed by get_output_details()."
        ),
    ),
    _rule(
        "invalid_tensor_index",
        r"Invalid tensor index (?P<tensor>-?\d+) exceeds max tensor index (?P<max_index>\d+)",
        title="Tensor index {tensor} does not exist in this model",
        cause=(
            "Tensor index {tensor} is out of range: the interpreter only accepts indices below "
            "{max_index}. Tensor indices are not positions in a list of inputs or outputs, and an "
            "index from another model does not carry over."
        ),
        fix=(
            "Take the index from the interpreter instead of counting: "
            "`index = interpreter.get_input_details()[0]['index']` for the first input "
            "(get_output_details() for outputs), and pass that to set_tensor() or get_tensor()."
        ),
    ),
    _rule(
        "value_not_convertible",
        r"Failed to convert value into readable tensor",
        title="The value cannot be turned into a tensor",
        cause=(
            "set_tensor() could not make a regular NumPy array out of the value, for example from "
            "a nested list whose rows have different lengths."
        ),
        fix=(
            "Build a regular array of the input's shape and type first: "
            "`x = np.asarray(value, dtype=details['dtype'])`, and check that x.shape equals "
            "details['shape'] (details from get_input_details())."
        ),
    ),
    _rule(
        "byte_size_mismatch",
        r"numpy array had (?P<got>\d+) bytes but expected (?P<expected>\d+) bytes",
        title="The array has {got} bytes, the tensor {expected}",
        cause="The array passed to set_tensor() holds {got} bytes, but the tensor has room for {expected}.",
        fix="Give the array the tensor's shape and dtype: `x = x.astype(details['dtype']).reshape(details['shape'])`.",
    ),
    # resize_tensor_input.
    _rule(
        "resize_fixed_dimension",
        r"Attempting to resize dimension (?P<dimension>\d+) of tensor (?P<tensor>\d+) with value "
        r"(?P<expected>-?\d+) to (?P<got>-?\d+)",
        title="Dimension {dimension} of tensor {tensor} is fixed in the model",
        cause=(
            "resize_tensor_input(..., strict=True) tried to change dimension {dimension} of tensor "
            "{tensor} from {expected} to {got}, but the model fixes that dimension: strict mode only "
            "changes dimensions that are -1 in the input's shape_signature."
        ),
        fix=(
            "Keep dimension {dimension} at {expected} and adapt the data to it, changing only the "
            "dimensions that are -1 in get_input_details()'s 'shape_signature'. To make it "
            "resizable, re-convert the model with that dimension as None (for example "
            "`tf.TensorSpec([None, ...])`). strict=False lets you try, but an op later in the model "
            "may then fail in allocate_tensors()."
        ),
    ),
    _rule(
        "resize_shape_not_1d",
        r"Shape should be 1D instead of (?P<got>\d+)",
        title="The new shape must be a flat list",
        cause=(
            "resize_tensor_input() received a shape with {got} dimensions, such as [[1, 224, 224, 3]] "
            "or an array of arrays, but a shape is a flat list of sizes."
        ),
        fix=(
            "Pass a flat list: `interpreter.resize_tensor_input(index, [1, 224, 224, 3])` or "
            "`list(x.shape)`, then call `interpreter.allocate_tensors()`."
        ),
    ),
    # Signatures.
    _rule(
        "signature_key_required",
        r"signature_key is None and model has (?P<count>\d+) Signatures",
        title="The model has {count} signatures: name one",
        cause=(
            "get_signature_runner() was called without a key, which only works when the model "
            "has exactly one signature; this model has {count}."
        ),
        fix=_signature_count_fix,
    ),
    _rule(
        "signature_key_invalid",
        r"Invalid signature_key provided(?:: \"(?P<key>[^\"]*)\")?",
        title=lambda f: f"There is no signature {f['key']!r}" if "key" in f else "There is no such signature",
        cause=lambda f: (
            f"The model has no signature named {f['key']!r}." if "key" in f
            else "The signature key given is not one of the model's."
        ) + " Keys are case-sensitive.",
        fix=(
            "Use a key from `interpreter.get_signature_list()` (often 'serving_default'): "
            "`interpreter.get_signature_runner(key)`."
        ),
    ),
    _rule(
        "signature_input_name",
        r"Invalid Input name \((?P<name>[^)]*)\) for SignatureDef",
        title="{name!r} is not an input of this signature",
        cause=(
            "The signature runner was called with the keyword argument {name!r}, but the signature "
            "has no input of that name."
        ),
        fix=(
            "Print `runner.get_input_details()` to see the input names and pass each input as a "
            "keyword argument with exactly that name, for example `runner(x=data)` for an input "
            "called 'x'; {name!r} is not one of them."
        ),
    ),
    _rule(
        "signature_input_count",
        r"Invalid number of inputs provided for running a SignatureDef, expected (?P<expected>\d+) "
        r"vs provided (?P<got>\d+)",
        title="The signature takes {expected} input(s), {got} were given",
        cause="The signature runner was called with {got} inputs, but the signature has {expected}.",
        fix=(
            "Pass exactly the inputs listed by `runner.get_input_details()`, each as a keyword "
            "argument named as there."
        ),
    ),
    # allocate_tensors() / invoke(): the interpreter's state.
    _rule(
        "invoke_not_ready",
        r"Invoke called on model that is not ready",
        title="invoke() ran before the tensors were allocated",
        cause=(
            "The interpreter was not ready to run: allocate_tensors() was not called after the "
            "interpreter was created, or resize_tensor_input() changed an input's shape and "
            "allocate_tensors() was not called again (or it failed)."
        ),
        fix=(
            "Call `interpreter.allocate_tensors()` after creating the interpreter and after every "
            "resize_tensor_input(), then set_tensor() and invoke(). If allocate_tensors() raised "
            "an error, fix that first: its message says why."
        ),
    ),
    _rule(
        "internal_data_reference",
        r"reference to internal data",
        title="A NumPy view into the interpreter's memory is still alive",
        cause=(
            "You hold a NumPy array, or a slice of one, that points straight into the interpreter's "
            "memory, typically the result of `interpreter.tensor(i)()`. The interpreter refuses to "
            "allocate, resize or invoke while such a view exists, because those calls may move the "
            "memory under it. Sharing one interpreter between threads trips the same check."
        ),
        fix=(
            "Keep the function that tensor() returns, not its result: `inp = interpreter.tensor(i)` "
            "and write with `inp()[:] = x` each time, or `del` the view before invoke(). Simpler: "
            "use set_tensor() and get_tensor(), which copy. Use one interpreter per thread."
        ),
    ),
    # allocate_tensors() / invoke(): the root causes inside the graph.
    _rule(
        "unresolved_custom_op",
        r"Encountered unresolved custom op: (?P<op>\S+?)\.?(?:\s|$)",
        title="The model uses custom op {op}, which this interpreter does not have",
        cause=_custom_op_cause,
        fix=_custom_op_fix,
    ),
    _rule(
        "select_tf_ops_unsupported",
        r"Select TensorFlow op\(s\), included in the given model, is\(are\) not supported",
        r"Regular TensorFlow ops are not supported by this interpreter",
        title="The model needs {flex_op}, which this interpreter cannot run",
        cause=(
            "The model was converted with SELECT_TF_OPS and contains {flex_op}{at_node}: a full "
            "TensorFlow op, not a TensorFlow Lite builtin. Running it needs the Flex delegate, which "
            "this interpreter does not link (ai-edge-litert has none, nor do recent tensorflow wheels)."
        ),
        fix=(
            "Re-convert the model with builtin ops only "
            "(`converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]`) after "
            "rewriting the part that needs {tf_op}; the converter's error then lists the ops it "
            "cannot convert. Otherwise run the model with a TensorFlow build that links the Flex "
            "delegate (on Android, add org.tensorflow:tensorflow-lite-select-tf-ops)."
        ),
    ),
    _rule(
        "reshape_element_count",
        r"num_input_elements != num_output_elements \((?P<got>\d+) != (?P<expected>\d+)\)",
        title="RESHAPE gets {got} values but its target shape holds {expected}",
        cause=(
            "The RESHAPE op{at_node} receives {got} values, but the shape it reshapes to holds "
            "{expected}. That target shape was fixed when the model was converted, usually for the "
            "original input size (for example a batch of 1), so after resize_tensor_input() to "
            "another size the two counts no longer agree."
        ),
        fix=(
            "Keep the input at the shape the model was converted for (the 'shape' in "
            "get_input_details()) and loop over batches outside the model, or re-convert the model "
            "with the changing dimensions as None so that the target shape follows the input."
        ),
    ),
    _rule(
        "concatenation_mismatch",
        r"t->dims->data\[d\] != t0->dims->data\[d\] \((?P<got>\d+) != (?P<expected>\d+)\)",
        title="CONCATENATION inputs disagree: {got} against {expected}",
        cause=(
            "The CONCATENATION op{at_node} joins tensors that must have the same size in every "
            "dimension except the joining axis, but one input has {got} where the first has "
            "{expected}. Usually one branch follows a resized input while another keeps a shape "
            "fixed when the model was converted."
        ),
        fix=(
            "Use the input shape the model was converted for, or resize all inputs consistently; to "
            "change sizes freely, re-convert the model with dynamic (None) dimensions."
        ),
    ),
    _rule(
        "concatenation_mismatch",
        r"t->dims->size != t0->dims->size \((?P<got>\d+) != (?P<expected>\d+)\)",
        title="CONCATENATION inputs have {got} and {expected} dimensions",
        cause=(
            "The CONCATENATION op{at_node} joins tensors that must have the same number of "
            "dimensions, but one input has {got} and the first has {expected}."
        ),
        fix=(
            "Give every input of the model the number of dimensions in get_input_details() (add the "
            "batch dimension with `np.expand_dims(x, 0)` where it is missing), or re-convert the model."
        ),
    ),
    _rule(
        "conv_input_rank",
        r"input->dims->size != 4 \((?P<got>\d+) != 4\)",
        title="{The_op} needs a 4-D input, got {got}-D",
        cause=(
            "{The_op}{at_node} takes a 4-D image tensor [batch, height, width, channels], but its "
            "input has {got} dimensions: typically the input was resized to a shape without the "
            "batch dimension."
        ),
        fix=(
            "Give the input 4 dimensions: `interpreter.resize_tensor_input(index, [1, height, width, "
            "channels])` (or keep the model's shape), then `interpreter.allocate_tensors()`, and feed "
            "`np.expand_dims(x, 0)` when x lacks the batch dimension."
        ),
    ),
    _rule(
        "fully_connected_cols",
        r"input->dims->data\[input->dims->size - 1\] != cols \((?P<got>\d+) != (?P<expected>\d+)\)",
        title="FULLY_CONNECTED expects {expected} features, got {got}",
        cause=(
            "The FULLY_CONNECTED op{at_node} multiplies its input by weights made for {expected} "
            "features, but the last dimension of its input is {got}: the feature dimension was "
            "changed, typically by resizing the input's last dimension instead of the batch."
        ),
        fix=(
            "Keep the last dimension of the input at the model's size and resize only the batch, or "
            "the dimensions that are -1 in get_input_details()'s 'shape_signature'."
        ),
    ),
    _rule(
        "gather_index_out_of_bounds",
        r"gather index out of bounds",
        title="An index in the data is out of range",
        cause=(
            "The GATHER op{at_node} was asked, while the model ran, for an index outside the table "
            "it looks up. For text models this is usually a token id at or above the vocabulary "
            "size; otherwise an index input holds values the model was not built for."
        ),
        fix=(
            "Check the index values before set_tensor(): they must lie in 0 <= i < the size of the "
            "table (for example `assert 0 <= x.min() and x.max() < vocab_size`); use the tokenizer "
            "or vocabulary the model was trained with."
        ),
    ),
    _rule(
        "input_lacks_data",
        r"Input tensor (?P<tensor>\d+) lacks data",
        title="Tensor {tensor} has no data when the model runs",
        cause=(
            "When invoke() ran, tensor {tensor}, an input of one of the ops, had no memory. For a "
            "model input this means it was never filled; for an internal tensor it points to a "
            "problem in the converted model or in a delegate."
        ),
        fix=(
            "Call allocate_tensors() and then set_tensor() for every entry of get_input_details() "
            "before invoke(). If tensor {tensor} is not a model input, re-convert the model or run "
            "it with " + _NO_DELEGATE + "."
        ),
    ),
    _rule(
        "kernel_check_failed",
        rf"(?P<check>{_TERM} != {_TERM}) \((?P<got>[^()\s]{{1,40}}) != (?P<expected>[^()\s]{{1,40}})\)",
        rf"(?P<check>{_TERM}(?: {_OPS} {_TERM}){{0,6}}) was not true",
        title="A check inside {the_op} failed: {check}",
        cause=_kernel_check_cause,
        fix=_kernel_check_fix,
        unless=("reshape_element_count", "concatenation_mismatch", "conv_input_rank", "fully_connected_cols"),
    ),
    _rule(
        "xnnpack_delegate_failed",
        r"XNNPack delegate failed to reshape runtime",
        r"failed to create XNNPACK runtime",
        r"\(TfLiteXNNPackDelegate\) failed to (?:prepare|invoke)",
        title="The XNNPACK delegate could not prepare the model",
        cause=(
            "The default XNNPACK delegate, which runs most float ops on the CPU, could not set up "
            "its part of the graph{at_node}. It takes over those ops and reports this instead of "
            "the op's own message. After resize_tensor_input() it usually means the new shape does "
            "not fit an op whose shape was fixed at conversion (a RESHAPE, CONCATENATION or "
            "FULLY_CONNECTED)."
        ),
        fix=(
            "Create the interpreter again with " + _NO_DELEGATE + " and repeat the call: the op's "
            "own kernel then names the check that fails, and the model often runs that way. If you "
            "resized an input, keep the shape the model was converted for or re-convert it with "
            "dynamic (None) dimensions."
        ),
    ),
    # Generic lines that say where a failure happened, not why: primary only when nothing
    # more specific was recognised.
    _rule(
        "default_delegate_failed",
        r"Failed to apply the default TensorFlow Lite delegate indexed at (?P<delegate_index>\d+)",
        title="Preparing the model failed while the default delegate was applied",
        cause=(
            "allocate_tensors() first applies the default TensorFlow Lite delegate (XNNPACK), and "
            "preparing the graph failed while it did. The reason is the error reported before this "
            "line, not the delegate itself."
        ),
        fix=(
            "Fix the earlier error; to see it without the delegate, create the interpreter with "
            + _NO_DELEGATE + "."
        ),
        root=False,
    ),
    _rule(
        "node_failed_to_prepare",
        r"Node number (?P<node>\d+) \((?P<op>[^)]*)\) failed to prepare",
        title="Op {op} (node {node}) failed to prepare",
        cause=(
            "The {op} op at node {node} failed while allocate_tensors() prepared the graph, which "
            "checks every op's input shapes and types. The text before 'Node number' in the "
            "message, if any, is the op's own reason; most often an input was resized to a shape "
            "this op cannot take."
        ),
        fix=(
            "If you resized an input, go back to the shape in get_input_details() or re-convert the "
            "model with dynamic (None) dimensions. If the reason is hidden, create the interpreter "
            "with " + _NO_DELEGATE + " and look at node {node} in a model viewer such as Netron."
        ),
        root=False,
    ),
    _rule(
        "node_failed_to_invoke",
        r"Node number (?P<node>\d+) \((?P<op>[^)]*)\) failed to invoke",
        title="Op {op} (node {node}) failed while the model ran",
        cause=(
            "The {op} op at node {node} failed during invoke(), on the actual data: for example an "
            "index out of range, or a shape computed while running that the op cannot take. The "
            "text before 'Node number' in the message, if any, is the op's own reason."
        ),
        fix=(
            "Check the values you feed (indices below the table size, token ids below the "
            "vocabulary size) and the shapes; look at node {node} in a model viewer such as Netron "
            "to see what it computes."
        ),
        root=False,
    ),
    _rule(
        "registration_failed",
        r"Registration failed",
        title="The runtime could not find the model's ops",
        cause=(
            "While building the interpreter, the runtime found no implementation for one of the "
            "model's ops; the line before this one names it."
        ),
        fix=_UPGRADE,
        root=False,
    ),
    _rule(
        "model_allocation_failed",
        r"The model allocation is null/empty",
        title="The model could not be loaded",
        cause=(
            "The runtime got no model from the path or buffer given; the line before this one "
            "says why."
        ),
        fix=(
            "Check that model_path names a readable, non-empty .tflite file, or that model_content "
            "holds the file's bytes."
        ),
        root=False,
    ),
)


def known_kinds() -> tuple[str, ...]:
    """Every kind ``explain()`` can return, in priority order, ``"unknown"`` last."""
    seen = dict.fromkeys(rule.kind for rule in _RULES)
    return (*seen, "unknown")


# -- cleaning ---------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A line that starts an exception in a traceback: "ValueError: …" or "module.SomeError: …".
_EXCEPTION_LINE = re.compile(
    r"^(?P<type>(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Warning))"
    r"(?:[ \t]*:[ \t]*(?P<message>.*))?$"
)
_INTERPRETER_EXCEPTIONS = ("ValueError", "RuntimeError", "OSError")
# Lines that end an exception's message in a traceback.
_MESSAGE_END = re.compile(
    r"^(?:Traceback \(most recent call last\)|During handling of the above exception|"
    r"The above exception was the direct cause|Exception ignored in|>>> |In \[\d+\]:)"
)
# The build-specific source path before a kernel check (with or without a line number).
_SOURCE = re.compile(r"(?:\.{0,2}/)?(?:[\w+-]{1,100}/){1,30}[\w+-]{1,100}\.(?:cc|cpp|c|h|hpp)(?::\d{1,9})?")
# Where one reported line starts; the interpreter glues such lines to the previous one.
_LINE_START = re.compile(
    r"(?<=\S)(?=Node number \d|Failed to apply the default|Registration failed|"
    r"The model allocation is|Encountered unresolved custom op|Select TensorFlow op|"
    r"Regular TensorFlow ops|XNNPack delegate|Input tensor \d+ lacks|Didn't find op|"
    r"Op builtin_code|Invoke called on model)"
)
_SENTENCE_BREAK = re.compile(r"(?<=[.?!])\s+")
# Where one error's report ends: a failed node, or a failed registration.
_ERROR_END = re.compile(r"failed to (?:prepare|invoke)\.|Registration failed\.")


def clean_message(text: str) -> str:
    """Return the interpreter's message from ``text``, cleaned for reading and matching.

    ``text`` may be a bare message or a whole pasted traceback; from a traceback it keeps the
    last exception's message (preferring one that is recognised). It then drops the source
    path and line printed before kernel checks, puts a space between the lines the interpreter
    glued together, collapses whitespace, and keeps one copy of text repeated back to back.
    Never raises.
    """
    return _clean(_from_traceback(text))[0]


def _clean(text: str) -> tuple[str, str]:
    """The cleaned message, and the first source path it named (``""`` if none)."""
    text = _ANSI.sub("", text)
    source = _SOURCE.search(text)
    text = _SOURCE.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = _LINE_START.sub(" ", text)
    parts = _SENTENCE_BREAK.split(text)
    return " ".join(_collapse_repeats(parts)), source.group(0) if source else ""


def _collapse_repeats(parts: list[str], longest: int = 16) -> list[str]:
    """Keep one copy of any run of sentences repeated back to back (``A B A B A B`` → ``A B``).

    Linear in the number of sentences, so a buffer that grew over thousands of calls stays cheap.
    """
    kept: list[str] = []
    i = 0
    while i < len(parts):
        for size in range(1, longest + 1):
            unit = parts[i : i + size]
            if len(unit) == size and parts[i + size : i + 2 * size] == unit:
                j = i + size
                while parts[j : j + size] == unit:
                    j += size
                kept.extend(unit)
                i = j
                break
        else:
            kept.append(parts[i])
            i += 1
    return kept


def _from_traceback(text: str) -> str:
    """The message of the exception that matters in a pasted traceback, or ``text`` itself.

    A traceback may hold several exceptions (chained ones, and noise such as "Exception ignored
    in …" after the real error). Prefer the last one whose message is recognised, then the last
    ValueError, RuntimeError or OSError (what the interpreter raises), then the last one.
    """
    text = _ANSI.sub("", text).replace("\r\n", "\n")
    found: list[tuple[str, str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        header = _EXCEPTION_LINE.match(lines[i])
        i += 1
        if not header:
            continue
        message = [header.group("message") or ""]
        while i < len(lines) and lines[i].strip() and not _MESSAGE_END.match(lines[i]):
            if _EXCEPTION_LINE.match(lines[i]):
                break
            message.append(lines[i])
            i += 1
        found.append((header.group("type").rsplit(".", 1)[-1], "\n".join(message)))
    if not found:
        return text
    for _, message in reversed(found):
        cleaned = _clean(message)[0]
        if any(_search(rule, cleaned) is not None for rule in _RULES):
            return message
    for kind, message in reversed(found):
        if kind in _INTERPRETER_EXCEPTIONS:
            return message
    return found[-1][1]


# -- explaining -------------------------------------------------------------------------------


def explain(message_or_exception: str | BaseException) -> Explanation:
    """Explain an interpreter error in plain words.

    Accepts an exception, its message, or a whole pasted traceback. Returns an ``Explanation``
    whose ``kind`` is the root cause (``"unknown"`` when nothing is recognised), with ``facts``
    read from the message and ``matched`` listing every kind found, the primary one first.
    For an exception that is not recognised, the exceptions it was raised from are tried too.
    Never raises.
    """
    if isinstance(message_or_exception, BaseException):
        explanation = _explain_text(str(message_or_exception))
        linked = message_or_exception.__cause__ or message_or_exception.__context__
        if not explanation.recognised and linked is not None and linked is not message_or_exception:
            inner = explain(linked)
            if inner.recognised:
                return inner
        return explanation
    return _explain_text(_from_traceback(str(message_or_exception)[-_MAX_TEXT:]))


# What explain() reads of a text: the end, where the exception is. The reporter cuts each
# line at 1023 characters, so even glued and repeated messages fit many times over.
_MAX_TEXT = 64 << 10
_MAX_MESSAGE = 16 << 10


def _explain_text(raw: str) -> Explanation:
    message, source = _clean(raw[-_MAX_TEXT:])
    message = message[-_MAX_MESSAGE:]
    current, earlier = _split_current(message)
    hits = _matches(current)
    if not hits:
        return _unknown(message)
    earlier_kinds = [rule.kind for rule, _ in _matches(earlier)] if earlier else []

    primary = hits[0][0]
    facts: dict[str, Any] = {}
    for _, found in hits:  # the primary's facts win; later rules only fill gaps
        for key, value in found.items():
            facts.setdefault(key, value)
    if source and any(rule.kind in _KERNEL_KINDS for rule, _ in hits):
        facts["source"] = source

    values = _values(facts)
    kinds = [rule.kind for rule, _ in hits]
    cause = _render(primary.cause, values)
    stale = [k for k in dict.fromkeys(earlier_kinds) if k not in kinds]
    if stale:
        cause += (
            f" The message also repeats an earlier error ({', '.join(stale)}) that a previous call "
            "left in the interpreter's error buffer; it is not the cause of this one."
        )
    return Explanation(
        kind=primary.kind,
        title=_render(primary.title, values),
        cause=cause,
        fix=_render(primary.fix, values),
        facts=facts,
        matched=tuple(dict.fromkeys(kinds + earlier_kinds)),
        message=message,
    )


_KERNEL_KINDS = frozenset(
    {
        "reshape_element_count", "concatenation_mismatch", "conv_input_rank", "fully_connected_cols",
        "kernel_check_failed",
    }
)


def _split_current(message: str) -> tuple[str, str]:
    """Split an accumulated message into the newest error and what earlier calls left behind.

    The error reporter never empties its buffer, so the text of a failing call starts with the
    errors of earlier calls on the same interpreter. Reports end at "failed to prepare." /
    "failed to invoke." / "Registration failed."; the newest error is the last report with a
    recognised root cause, together with the generic lines after it (an op inside a WHILE body
    fails to prepare, then the WHILE node fails to invoke: one error).
    """
    ends = [m.end() for m in _ERROR_END.finditer(message)]
    bounds = [0, *ends]
    if not ends or ends[-1] < len(message):
        bounds.append(len(message))
    reports = [message[a:b].strip() for a, b in zip(bounds, bounds[1:])]
    reports = [r for r in reports if r]
    if len(reports) < 2:
        return message, ""
    for start in range(len(reports) - 1, -1, -1):
        if any(rule.root for rule, _ in _matches(reports[start])):
            return " ".join(reports[start:]), " ".join(reports[:start])
    return message, ""


def _matches(text: str) -> list[tuple[_Rule, dict[str, Any]]]:
    """Rules that match ``text`` in priority order, each once, with the facts of its first match."""
    hits: list[tuple[_Rule, dict[str, Any]]] = []
    kinds: set[str] = set()
    for rule in _RULES:
        if rule.kind in kinds or any(k in kinds for k in rule.unless):
            continue
        found = _search(rule, text)
        if found is not None:
            hits.append((rule, found))
            kinds.add(rule.kind)
    return hits


def _search(rule: _Rule, text: str) -> dict[str, Any] | None:
    for pattern in rule.patterns:
        match = pattern.search(text)
        if match:
            return {k: _typed(k, v) for k, v in match.groupdict().items() if v is not None}
    return None


def _typed(key: str, value: str) -> Any:
    if key in _NUMERIC_FACTS and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def _values(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The facts plus the phrases the templates share (``at_node``, ``the_op``, …)."""
    values = dict(facts)
    op, node = facts.get("op"), facts.get("node")
    values["at_node"] = f" at node {node}" if node is not None else ""
    values["the_op"] = f"the {op} op" if op else "an op"
    values["The_op"] = f"The {op} op" if op else "An op"
    flex = op if isinstance(op, str) and op.startswith("Flex") else None
    values["flex_op"] = f"the Select TensorFlow op {flex}" if flex else "Select TensorFlow ops"
    values["tf_op"] = flex[len("Flex"):] if flex else "those ops"
    return values


def _render(text: Text, values: Mapping[str, Any]) -> str:
    return text(values) if callable(text) else text.format_map(values)


def _unknown(message: str) -> Explanation:
    shown = message if len(message) <= 300 else message[:300] + "…"
    cause = (
        f"lite-debug does not recognise this message: {shown!r}. It is not one of the "
        "TensorFlow Lite interpreter errors it knows."
        if message
        else "The message is empty, so there is nothing to recognise."
    )
    return Explanation(
        kind="unknown",
        title="Message not recognised",
        cause=cause,
        fix=(
            "Paste the full error, including the exception type (for example 'RuntimeError: …'), "
            "the whole traceback with the line that raised it (the Interpreter constructor, "
            "allocate_tensors(), set_tensor(), invoke() or get_tensor()), and the output of "
            "`interpreter.get_input_details()`."
        ),
        facts={},
        matched=(),
        message=message,
    )
