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
- People paste what they have: notebook output (``----> 2 interpreter.allocate_tensors()``), log
  lines around the message with their prefixes (``E/tflite  (27994): ``, ``ERROR: ``), Java and
  Flutter wrappers, or the message retyped in lower case (matched again ignoring case when
  nothing matched as written).

``explain(..., diagnosis=...)`` takes what ``diagnose()`` found in the data that was fed; where a
mismatch names the input the message names, the cause and the fix say what the diagnosis says,
so the two never contradict each other.

All recognised messages live in one ordered table, ``_RULES``: adding a kind is one entry. The
order is the priority: root causes first, then the generic lines ("Node number 3 (X) failed to
prepare.") that only say where a failure happened.

This module is pure Python: it imports neither the interpreter nor streamlit.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence, Union

from lite_debug.records import XNNPACK_CUSTOM_OPS, Explanation, Mismatch

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
    ``refine`` sees the facts of a match and returns them completed, or None when the match is
    not this kind after all (a kernel check is a type check only if it tests a type).
    ``folded`` are the same patterns ignoring case, for messages retyped by hand.
    """

    kind: str
    patterns: tuple[re.Pattern[str], ...]
    title: Text
    cause: Text
    fix: Text
    root: bool = True
    unless: tuple[str, ...] = ()
    refine: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    folded: tuple[re.Pattern[str], ...] = ()


def _rule(
    kind: str,
    *patterns: str,
    title: Text,
    cause: Text,
    fix: Text,
    root: bool = True,
    unless: tuple[str, ...] = (),
    refine: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
) -> _Rule:
    return _Rule(
        kind,
        tuple(re.compile(p) for p in patterns),
        title,
        cause,
        fix,
        root,
        unless,
        refine,
        # Kernel checks are printed by code, never retyped; their patterns are also the costliest.
        tuple(re.compile(p, re.IGNORECASE) for p in patterns if _EXPR not in p),
    )


# Facts that are numbers when the message gives digits; everything else stays text (a tensor
# name such as "1" must not become an int).
_NUMERIC_FACTS = frozenset(
    {
        "node", "input", "dimension", "tensor", "max_index", "version", "supported_version",
        "count", "code", "delegate_index", "got", "expected", "errno", "minimum", "max_rank",
        "min_rank", "type_code", "required", "installed",
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


def _refine_dtype(f: dict[str, Any]) -> dict[str, Any]:
    """Type names as the interpreter prints them, also when the message was retyped in lower case."""
    return {k: (v.upper() if k in ("got_type", "expected_type") else v) for k, v in f.items()}


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
    if got == "NOTYPE":
        text += (
            " NOTYPE is how older runtimes (TensorFlow 2.3 and before) name a NumPy type they cannot "
            "map, most often float64."
        )
        if exp == "FLOAT64":
            return text + " Such a runtime takes no float64 array, even for this float64 input."
        return text
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
    if got == "NOTYPE" and exp == "FLOAT64":
        return (
            "Convert the model with float32 inputs (a tf.TensorSpec of tf.float32, or cast in the "
            "model), or run it with a newer runtime (`pip install -U ai-edge-litert`), whose "
            "set_tensor() takes float64."
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


# TfLiteType codes as kernels print them ("Type 4 is currently not supported by Exp.", "(10 != 1)"),
# and the kTfLite names of kernel checks.
_TYPE_CODES = {
    0: "NOTYPE", 1: "FLOAT32", 2: "INT32", 3: "UINT8", 4: "INT64", 5: "STRING", 6: "BOOL", 7: "INT16",
    8: "COMPLEX64", 9: "INT8", 10: "FLOAT16", 11: "FLOAT64", 12: "COMPLEX128", 13: "UINT64",
    14: "RESOURCE", 15: "VARIANT", 16: "UINT32", 17: "UINT16", 18: "INT4", 19: "BFLOAT16",
}
_KTFLITE_TYPE = re.compile(r"kTfLite(Float16|Float32|Float64|U?Int(?:4|8|16|32|64)|Bool|String|Complex64|BFloat16)\b")


def _type_name(value: Any) -> str:
    """A TFLite type as the interpreter names it in Python ("INT64"), from a code or any spelling."""
    text = str(value).strip("'\"")
    if re.fullmatch(r"\d{1,2}", text):
        return _TYPE_CODES.get(int(text), text)
    return text.upper()


def _refine_type_check(f: dict[str, Any]) -> dict[str, Any] | None:
    """Facts of a type check; None when a kernel check tests something other than a type."""
    check = f.get("check")
    if check is not None and not re.search(r"type|kTfLite", check, re.IGNORECASE):
        return None
    facts = dict(f)
    if "type" in facts:
        facts["type"] = _type_name(facts["type"])
    elif check is not None and "got" in facts and re.search(r"type", check.split("!=")[0], re.IGNORECASE):
        # "filter->type != kTfLiteFloat32 (10 != 1)": the left side is the tensor's type code.
        facts["type"] = _type_name(facts["got"])
    if check is not None:
        allowed = [_type_name(m.group(1)) for m in _KTFLITE_TYPE.finditer(check)]
        if allowed and "||" in check:
            facts["allowed"] = ", ".join(dict.fromkeys(allowed))
    return facts


def _type_cause(f: Facts) -> str:
    kind = f.get("type")
    what = f"{kind} tensors" if kind else "the type of one of its tensors"
    text = f"{f['The_op']}{f['at_node']} has no kernel for {what} in this runtime"
    if f.get("allowed"):
        text += f" (it takes {f['allowed']})"
    if f.get("check"):
        text += f": its check `{f['check']}` failed"
    text += "."
    if kind == "INT64":
        return text + (
            " int64 tensors come from the TensorFlow graph (NumPy and many tf ops default to int64 "
            "for indices, shapes, argmax and casts), and the converter kept them although many "
            "TensorFlow Lite kernels, more so in older runtimes, implement only int32."
        )
    if kind == "FLOAT16":
        return text + (
            " float16 weights are meant for a DEQUANTIZE op or for the GPU delegate; here a CPU "
            "kernel received them directly, typically for ops that the GPU delegate did not take."
        )
    if kind == "INT16":
        return text + " 16-bit activations (16x8 quantization) are implemented for fewer ops than int8."
    return text + " The converter accepted the model, but the kernel of this runtime does not implement that type."


def _type_fix(f: Facts) -> str:
    if f.get("type") == "FLOAT16":
        return (
            "Run the model with the delegate it was made for (the GPU delegate), or convert it "
            "without float16 weights (drop `converter.target_spec.supported_types = [tf.float16]`) "
            "so that CPU kernels get float32."
        )
    casts = {"INT64": "tf.int32", "BOOL": "tf.int32", "FLOAT64": "tf.float32"}
    target = casts.get(f.get("type", ""), "a type it supports")
    return (
        f"Cast the tensor to {target} in the model before {f['the_op']} (`tf.cast`) and re-convert; or "
        "convert with `converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, "
        "tf.lite.OpsSet.SELECT_TF_OPS]` so that TensorFlow's own kernel runs it (the runtime then "
        "needs the Flex delegate); or upgrade the runtime (`pip install -U ai-edge-litert`), since "
        f"newer kernels implement more types{_where_checked(f)}."
    )


def _rank_limit_cause(f: Facts) -> str:
    limit = f"at most {f['max_rank']} dimensions" if "max_rank" in f else "only a limited number of dimensions"
    check = f" (its check `{f['check']}` failed)" if f.get("check") else ""
    return (
        f"{f['The_op']}{f['at_node']} takes tensors of {limit} in this runtime{check}, and the model "
        "gives it one with more. Channel shuffles (ShuffleNet), attention blocks and 5-D video or volume "
        "tensors produce such shapes; newer runtimes raise these limits (TRANSPOSE took 4 "
        "dimensions in early TensorFlow Lite releases, 6 later, 8 now)."
    )


def _rank_limit_fix(f: Facts) -> str:
    limit = f"at most {f['max_rank']}" if "max_rank" in f else "the supported number of"
    return (
        "Upgrade the runtime that runs the model (`pip install -U ai-edge-litert`, or a newer "
        "tensorflow / tflite-runtime), which takes more dimensions for many ops; otherwise change "
        f"the model so that {f['the_op']} sees {limit} dimensions (merge axes with a reshape before "
        f"it and split them after) and convert it again{_where_checked(f)}."
    )


def _where_checked(f: Facts) -> str:
    return f" (the check is in {f['source']})" if f.get("source") else ""


def _broadcast_cause(f: Facts) -> str:
    shapes = f" {f['shapes']}" if f.get("shapes") else ""
    return (
        f"{f['The_op']}{f['at_node']} combines two tensors element by element, and their "
        f"shapes{shapes} cannot be broadcast together: in every dimension the sizes must be equal or "
        "one of them 1. Usually an input was resized (resize_tensor_input) or given at another size "
        "than the model was converted for, so one operand follows the new size while the other keeps "
        "a size fixed in the model; inputs that must agree (two sequences, an image and its mask) "
        "given at different sizes fail the same way."
    )


def _broadcast_fix(f: Facts) -> str:
    where = f" at node {f['node']}" if "node" in f else ""
    return (
        "Feed every input at the shape in get_input_details(), or resize all related inputs to "
        "matching sizes before allocate_tensors(). If you changed no input size, the converted model "
        f"is inconsistent: open it in a model viewer such as Netron{where}, compare the two operand "
        "shapes with the original model, and convert it again (with dynamic None dimensions where "
        "sizes must vary)."
    )


_TF1_CONTROL_FLOW = (
    "Enter|Exit|Merge|Switch|LoopCond|NextIteration|RefEnter|RefExit|RefMerge|RefSwitch|"
    r"TensorArray(?:V3|ReadV3|WriteV3|GatherV3|ScatterV3|SizeV3|ConcatV3|SplitV3|GradV3|CloseV3)"
)

# Interpreter methods that older runtimes lack, and the TensorFlow release that added them.
_API_SINCE = {
    "get_signature_runner": "2.5",
    "get_signature_list": "2.5",
    "_get_full_signature_list": "2.5",
    "SignatureRunner": "2.5",
    "OpResolverType": "2.5",
}


def _api_missing_cause(f: Facts) -> str:
    attr = f["attr"]
    owner = f"The {f['owner']} object" if f.get("owner") else f"The module {f['module']}"
    text = f"{owner} of the runtime you run has no attribute {attr!r}."
    if attr == "set_num_threads":
        return text + (
            " set_num_threads() is not part of the TensorFlow Lite Python API: some patched builds "
            "and tutorials have it. The number of threads is an argument of the constructor."
        )
    if attr in _API_SINCE:
        return text + (
            f" {attr} exists from TensorFlow (and tflite-runtime) {_API_SINCE[attr]} on, so the "
            "installed runtime is older than the code calling it; libraries such as pycoral call "
            "it and need the runtime version they were released with."
        )
    return text + (
        " The code was written for another version of the runtime (most often a newer one) than the "
        "one installed, or for another package's Interpreter."
    )


def _api_missing_fix(f: Facts) -> str:
    if f["attr"] == "set_num_threads":
        return (
            "Pass the threads when you create the interpreter: `Interpreter(model_path=path, "
            "num_threads=4)`, and remove the set_num_threads() call."
        )
    return (
        "Check the version that runs (`python -c \"import tflite_runtime; print(tflite_runtime.__version__)\"` "
        "or tf.__version__) and upgrade: `pip install -U ai-edge-litert` with "
        "`from ai_edge_litert.interpreter import Interpreter`, or the tflite-runtime / tensorflow "
        f"version the code needs{' (' + _API_SINCE[f['attr']] + ' or later)' if f['attr'] in _API_SINCE else ''}."
    )


def _dynamic_tensor_cause(f: Facts) -> str:
    which = f"tensor #{f['tensor']}" if isinstance(f.get("tensor"), int) and f["tensor"] >= 0 else "a tensor"
    return (
        f"A delegate that needs every tensor size fixed before the model runs (GPU, NNAPI, Edge TPU "
        f"or the default XNNPACK) was applied to a graph where {which} gets its size only while the "
        "model runs: a shape computed from the data (tf.shape, tf.where, tf.unique, non-max "
        "suppression), a dynamic (None) dimension, or control flow. When the runtime applies its "
        "default XNNPACK delegate this is only a warning: those ops run on the CPU kernels and the "
        "results are not affected. For a delegate you asked for (GPU, NNAPI), creating the "
        "interpreter fails."
    )


def _edgetpu_mismatch_cause(f: Facts) -> str:
    code = f" (it read data type {f['code']})" if "code" in f else ""
    return (
        f"The Edge TPU custom op{f['at_node']} could not read its own data{code}: the Edge TPU "
        "runtime (libedgetpu) and the TensorFlow Lite it runs in (tflite_runtime, pycoral, or the "
        "TensorFlow Lite a C++ program was built with) are versions that do not work together."
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
        "op_missing_from_resolver",
        r"Didn't find op for built-?in opcode '(?P<op>[^']+)' version '1'(?!\d)",
        r"Failed to get registration from op code (?P<op>[A-Z][A-Z_0-9]*)",
        title="The runtime has no kernel for {op} at all",
        cause=(
            "The runtime found no kernel for the builtin op {op}, not even its version 1, so this "
            "is not a model newer than the runtime: the interpreter was built with an op resolver "
            "that leaves {op} out (a TensorFlow Lite Micro MicroMutableOpResolver without the "
            "call that adds {op}, a selective build, or a custom op resolver)."
        ),
        fix=(
            "Register {op} in the op resolver (for TensorFlow Lite Micro, the resolver's Add... "
            "call for {op}, for example AddFullyConnected() for FULLY_CONNECTED, and a template "
            "size large enough for all ops), or use a runtime built with all builtin ops."
        ),
    ),
    _rule(
        "op_version_unsupported",
        r"Didn't find op for built-?in opcode '(?P<op>[^']+)' version '(?P<version>\d+)'",
        title="Op {op} version {version} is newer than this runtime",
        cause=(
            "The model uses version {version} of the builtin op {op}, which this TensorFlow Lite "
            "runtime does not implement: the model was converted by a newer TensorFlow than the "
            "runtime. Conversion options such as quantization can also raise an op's version."
        ),
        fix=_UPGRADE,
        unless=("op_missing_from_resolver",),
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
    _rule(
        "interpreter_api_missing",
        r"'(?P<owner>Interpreter|InterpreterWithCustomOps|SignatureRunner)' object has no attribute '(?P<attr>\w+)'",
        r"module '(?P<module>(?:tflite_runtime|ai_edge_litert)[\w.]{0,80}|tensorflow[\w.]{0,80}\.lite[\w.]{0,80})' "
        r"has no attribute '(?P<attr>\w+)'",
        title="This runtime has no {attr}",
        cause=_api_missing_cause,
        fix=_api_missing_fix,
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
    _rule(
        "edgetpu_runtime_version",
        r"Package requires runtime version \((?P<required>\d+)\), which is newer than this runtime "
        r"version \((?P<installed>\d+)\)",
        title="The Edge TPU model needs runtime {required}, the installed runtime is {installed}",
        cause=(
            "The model was compiled by edgetpu_compiler for Edge TPU runtime version {required}, and "
            "the installed Edge TPU runtime (libedgetpu) is version {installed}: a model from a newer "
            "compiler needs a runtime at least as new."
        ),
        fix=(
            "Upgrade the Edge TPU runtime (the libedgetpu1-std or libedgetpu1-max package) to one "
            "that supports version {required}, or compile the model for the installed runtime: "
            "`edgetpu_compiler -m {installed} model.tflite`."
        ),
    ),
    _rule(
        "edgetpu_runtime_mismatch",
        r"Unsupported data type in custom op handler: (?P<code>-?\d+)",
        r"Null custom op data\.?\s*(?:ERROR: )?Node number (?P<node>\d+) \((?P<op>edgetpu-custom-op|"
        r"EdgeTpuDelegateForCustomOp)\)",
        title="The Edge TPU runtime and TensorFlow Lite versions do not match",
        cause=_edgetpu_mismatch_cause,
        fix=(
            "Install versions made for each other: the tflite_runtime and pycoral wheels of the same "
            "Coral release as the libedgetpu package (compare `dpkg -l | grep libedgetpu` with "
            "`python3 -c 'import tflite_runtime; print(tflite_runtime.__version__)'`). For a C++ "
            "program, build it against the TensorFlow Lite version that libedgetpu was built with, "
            "and load that libedgetpu (LD_LIBRARY_PATH)."
        ),
    ),
    _rule(
        "edgetpu_prepare_failed",
        r"Failed to prepare for TPU\.? ?(?P<detail>[^.]{0,200})",
        title="The Edge TPU could not prepare the model",
        cause=lambda f: (
            "The Edge TPU delegate could not set up the compiled part of the model on the device"
            + (f": {f['detail']!r}." if f.get("detail") else ".")
        ),
        fix=(
            "Check that the Edge TPU is connected and free (one interpreter per Edge TPU, or pass "
            "the device to load_delegate), and that libedgetpu, tflite_runtime and the compiler "
            "version of the model match."
        ),
        unless=("edgetpu_runtime_version",),
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
        refine=_refine_dtype,
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
        "tf1_control_flow",
        rf"Encountered unresolved custom op: (?P<op>{_TF1_CONTROL_FLOW})\b",
        rf"Didn't find custom op for name '(?P<op>{_TF1_CONTROL_FLOW})'",
        title="The model contains {op}, a TensorFlow 1 control-flow op",
        cause=(
            "The model contains {op}{at_node}, an op of TensorFlow 1.x control flow (tf.while_loop "
            "and tf.cond in a TF1 graph become Enter, Exit, Merge, Switch, LoopCond, NextIteration "
            "and TensorArray ops), which the converter kept as a custom op because of "
            "allow_custom_ops=True. TensorFlow Lite has no kernel for these: it runs loops and "
            "conditions only as its own WHILE and IF ops."
        ),
        fix=(
            "Convert the model with control flow v2: build the graph after "
            "`tf.compat.v1.enable_control_flow_v2()` (or export a TF2 SavedModel) so that loops become "
            "WHILE, and convert without allow_custom_ops; or convert with "
            "`converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, "
            "tf.lite.OpsSet.SELECT_TF_OPS]`, which needs a runtime with the Flex delegate."
        ),
    ),
    _rule(
        "unresolved_custom_op",
        r"Encountered unresolved custom op: (?P<op>\S+?)\.?(?:\s|$)",
        r"Didn't find custom op for name '(?P<op>[^']+)'",
        title="The model uses custom op {op}, which this interpreter does not have",
        cause=_custom_op_cause,
        fix=_custom_op_fix,
        unless=("tf1_control_flow",),
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
        r"NumDimensions\(input\) != 4 \((?P<got>\d+) != 4\)",
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
        "reshape_stretch",
        r"(?P<check>stretch_dim != -1) \((?P<got>-?\d+) != -1\)",
        title="RESHAPE cannot infer the -1 dimension of its target shape",
        cause=(
            "The RESHAPE op{at_node} has a target shape with a dimension to infer (-1), and it cannot "
            "infer it: the target holds a second -1 or a 0. Only one dimension of a reshape can be "
            "inferred, so this happens when a model has more than one dynamic (None) dimension "
            "feeding the reshape, or when a shape computed inside the model came out empty."
        ),
        fix=(
            "Give the inputs fixed sizes before allocate_tensors() "
            "(`interpreter.resize_tensor_input(index, [1, n, ...])` with every dimension set), or "
            "convert the model again with at most one None dimension feeding that reshape (for "
            "example a fixed batch of 1); if the target shape is computed in the model, build it "
            "from explicit sizes and convert again."
        ),
    ),
    _rule(
        "broadcast_shapes",
        r"Given shapes, (?P<shapes>.{1,300}?), are not broadcastable",
        r"(?P<check>d1 == d2 \|\| d1 == 1 \|\| d2 == 1) was not true",
        title="{The_op} cannot broadcast its operands",
        cause=_broadcast_cause,
        fix=_broadcast_fix,
    ),
    _rule(
        "kernel_rank_unsupported",
        r"(?<!\w)(?P<op_name>\w{1,60}) op only supports (?P<min_rank>\d)D-(?P<max_rank>\d)D input arrays",
        r"(?P<check>(?:NumDimensions\([\w>.-]{1,80}\)|(?<![\w>.-])[\w>.-]{1,80}->dims->size) <= (?P<max_rank>\d{1,2})) "
        r"was not true",
        r"Tensor rank \d+ exceeds max rank (?P<max_rank>\d+)",
        title="{The_op} takes at most {max_rank} dimensions here",
        cause=_rank_limit_cause,
        fix=_rank_limit_fix,
    ),
    _rule(
        "kernel_type_unsupported",
        r"\bType '?(?P<type>\w{1,20})'? \((?P<type_code>\d+)\) (?:is )?not supported",
        r"\bType '?(?P<type>\w{1,20})'? is (?:currently )?(?:not |un)supported by (?:op )?(?P<op_name>\w+)",
        r"\bType '?(?P<type>\w{1,20})'? (?:is )?(?:currently )?not (?:currently )?supported",
        r"(?<!\w)(?P<op_name>\w{1,60}) only (?:currently )?supports [^.]{1,200}?, got '?(?P<type>\w{1,20})'?",
        r"Inputs and outputs not all float\|uint8\|int16 types",
        r"Input type (?P<type>\w{1,20}) with Output type \w{1,20} is not currently supported",
        rf"(?P<check>{_TERM} != {_TERM}) \((?P<got>[^()\s]{{1,40}}) != (?P<expected>[^()\s]{{1,40}})\)",
        rf"(?P<check>{_TERM}(?: {_OPS} {_TERM}){{0,12}}) was not true",
        title=lambda f: (
            f"{f['The_op']} does not support {f['type']} tensors" if f.get("type")
            else f"{f['The_op']} does not support the type of its input"
        ),
        cause=_type_cause,
        fix=_type_fix,
        refine=_refine_type_check,
    ),
    _rule(
        "kernel_check_failed",
        rf"(?P<check>{_TERM} != {_TERM}) \((?P<got>[^()\s]{{1,40}}) != (?P<expected>[^()\s]{{1,40}})\)",
        rf"(?P<check>{_TERM}(?: {_OPS} {_TERM}){{0,12}}) was not true",
        title="A check inside {the_op} failed: {check}",
        cause=_kernel_check_cause,
        fix=_kernel_check_fix,
        unless=(
            "reshape_element_count", "concatenation_mismatch", "conv_input_rank", "fully_connected_cols",
            "reshape_stretch", "broadcast_shapes", "kernel_rank_unsupported", "kernel_type_unsupported",
        ),
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
    _rule(
        "delegate_dynamic_tensors",
        r"Attempting to use a delegate that only supports static-sized tensors with a graph that has "
        r"dynamic-sized tensors(?: \(tensor ?#(?P<tensor>-?\d+) is a dynamic-sized tensor\))?",
        title="A delegate that needs fixed shapes met a dynamic-sized tensor",
        cause=_dynamic_tensor_cause,
        fix=(
            "Convert the model with fixed input shapes (no None dimensions, for example "
            "`tf.TensorSpec([1, 224, 224, 3])`) and keep ops whose output size depends on the data "
            "(tf.where, tf.unique, non-max suppression) out of the part you want on the delegate, "
            "then convert again; or run without that delegate, on the CPU. As a warning next to "
            "'Created TensorFlow Lite XNNPACK delegate for CPU', it needs no fix."
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
        r"Node (?P<op>[A-Z][A-Z_0-9]*) \(number (?P<node>\w+)\) failed to prepare",
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
        r"Node (?P<op>[A-Z][A-Z_0-9]*) \(number (?P<node>\w+)\) failed to invoke",
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
# What logs put in front of each line of a message: Android logcat ("E/tflite  (27994): ", with
# or without a date), "ERROR: " / "WARNING: " / "TensorFlow Lite Error: " of the C++ tools, an
# Arduino serial monitor's "07:31:13.216 -> ", and the "> " of a quoted reply.
_LOG_PREFIX = re.compile(
    r"(?m)^[ \t]{0,40}(?:(?:\d{4}-\d\d-\d\d )?(?:\d\d:\d\d:\d\d[.,]\d{1,9} )?(?:\d{1,9}-\d{1,9}/[\w.]{1,100} )?"
    r"[VDIWEF]/[\w.-]{1,60}[ \t]{0,10}(?:\([ \t\d]{1,12}\))?:|(?:ERROR|WARNING|INFO|TensorFlow Lite Error):|"
    r"\d\d:\d\d:\d\d\.\d{1,9} ->|(?:>[ \t]?){1,5})[ \t]?"
)
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
    r"Op builtin_code|Invoke called on model|Given shapes|Attempting to use a delegate|"
    r"Failed to prepare for TPU|Didn't find custom op|Type (?:'?[A-Z]{2,}|\d))"
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
    text = _LOG_PREFIX.sub("", _ANSI.sub("", text))
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
    text = _LOG_PREFIX.sub("", _ANSI.sub("", text).replace("\r\n", "\n"))
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


def explain(
    message_or_exception: str | BaseException, *, diagnosis: Sequence[Mismatch] | None = None
) -> Explanation:
    """Explain an interpreter error in plain words.

    Accepts an exception, its message, or a whole pasted traceback. Returns an ``Explanation``
    whose ``kind`` is the root cause (``"unknown"`` when nothing is recognised), with ``facts``
    read from the message and ``matched`` listing every kind found, the primary one first.
    For an exception that is not recognised, the exceptions it was raised from are tried too.

    ``diagnosis`` is what ``diagnose()`` found in the data that was fed. When one of its
    mismatches names the input the message names, the cause and the fix say what that mismatch
    says (arrays bound to the wrong inputs are not cured by a cast), and ``facts`` records it
    (``diagnosis_kind``, ``diagnosis_input``, ``diagnosis_message``, ``diagnosis_fix``); the
    ``kind`` stays the message's. Never raises.
    """
    explanation = _explain(message_or_exception)
    if diagnosis:
        explanation = _agree(explanation, diagnosis)
    return explanation


def _explain(message_or_exception: str | BaseException) -> Explanation:
    if isinstance(message_or_exception, BaseException):
        explanation = _explain_text(str(message_or_exception))
        linked = message_or_exception.__cause__ or message_or_exception.__context__
        if not explanation.recognised and linked is not None and linked is not message_or_exception:
            inner = _explain(linked)
            if inner.recognised:
                return inner
        return explanation
    return _explain_text(_from_traceback(str(message_or_exception)[-_MAX_TEXT:]))


# Which kinds of mismatch in the data make set_tensor() say which message.
_MISMATCH_CAUSES: dict[str, frozenset[str]] = {
    "association": frozenset({"dimension_mismatch", "rank_mismatch", "dtype_mismatch", "byte_size_mismatch"}),
    "batch": frozenset({"dimension_mismatch", "rank_mismatch"}),
    "rank": frozenset({"rank_mismatch"}),
    "layout": frozenset({"dimension_mismatch"}),
    "channels": frozenset({"dimension_mismatch"}),
    "shape": frozenset({"dimension_mismatch"}),
    "dynamic": frozenset({"dimension_mismatch"}),
    "dtype": frozenset({"dtype_mismatch", "value_not_convertible", "byte_size_mismatch"}),
    "quantization": frozenset({"dtype_mismatch"}),
}
_PER_INPUT_KINDS = frozenset().union(*_MISMATCH_CAUSES.values())


def _apply_fix(fix: Any) -> str:
    """The sentence that points to a diagnosis' fix, with its line of Python."""
    return f"Apply the diagnosis' fix: {fix.label.rstrip('.')}" + (f" (`{fix.code}`)." if fix.code else ".")


def _agree(explanation: Explanation, diagnosis: Sequence[Mismatch]) -> Explanation:
    """The explanation made to say what the diagnosis says about the input the message names.

    A mismatch of a kind that causes this message wins; failing that, any error on the same
    input (the interpreter reports only the first problem it checks). A diagnosis about other
    inputs leaves the explanation as it is. The input is matched by the tensor name the message
    gives; without one, by the message's input number, which is a tensor index: in converted
    models it is the input's position, the number a mismatch carries.
    """
    if explanation.kind in _PLACEHOLDER_FAILURES:
        return _at_placeholder(explanation, diagnosis)
    if explanation.kind not in _PER_INPUT_KINDS:
        return explanation
    facts = explanation.facts
    name, index = facts.get("name"), facts.get("input")

    def same_input(m: Mismatch) -> bool:
        if m.input_index < 0:
            return False
        if name:
            return m.input_name == name
        return isinstance(index, int) and m.input_index == index

    candidates = [m for m in diagnosis if same_input(m)]
    causing = [m for m in candidates if explanation.kind in _MISMATCH_CAUSES.get(m.kind, ())]
    errors = [m for m in candidates if m.severity == "error"]
    chosen = (causing or errors or [None])[0]
    if chosen is None:
        return explanation
    first = chosen.fixes[0] if chosen.fixes else None
    if chosen in causing:
        cause = (
            f"The diagnosis of the data finds the cause: {chosen.message} The interpreter's "
            f"message ({explanation.title}) is what that leads to."
        )
    else:
        cause = (
            f"The diagnosis of the data reports for this input: {chosen.message} The interpreter "
            f"stops at the first problem it checks ({explanation.title}); fix what the diagnosis "
            "reports first."
        )
    if first is not None:
        fix = _apply_fix(first)
    else:
        where = f"input {chosen.input_index} ({chosen.input_name!r})"
        fix = f"Fix what the diagnosis reports for {where}. {explanation.fix}"
    agreed = {
        **dict(facts),
        "diagnosis_kind": chosen.kind,
        "diagnosis_input": chosen.input_index,
        "diagnosis_message": chosen.message,
    }
    if first is not None:
        agreed["diagnosis_fix"] = first.code or first.label
    return replace(explanation, cause=cause, fix=fix, facts=agreed)


# A graph that fails to prepare, or a delegate that fails to set up, at allocate_tensors():
# with a resizable input left at its declared shape, that shape is a placeholder ([1, 1] for
# "any number of samples"), and allocating at it can fail where the data's shape would not.
_PLACEHOLDER_FAILURES = frozenset({"node_failed_to_prepare", "xnnpack_delegate_failed", "default_delegate_failed"})


def _at_placeholder(explanation: Explanation, diagnosis: Sequence[Mismatch]) -> Explanation:
    """The explanation of a failed prepare when the diagnosis says a resizable input was left at
    its declared shape (a ``dynamic`` error): resize it first; as it was, unless there is one."""
    left = next((m for m in diagnosis if m.kind == "dynamic" and m.severity == "error"), None)
    if left is None:
        # No data to resize to (the command line's generated data is of the declared shape):
        # the model check's warning says the same of the placeholder, and what to do.
        placeholder = next((m for m in diagnosis if m.input_index < 0 and m.severity == "warning"
                            and m.kind in ("prepare", "delegate")), None)
        if placeholder is None:
            return explanation
        return replace(
            explanation,
            cause=placeholder.message,
            fix="Run data of the size the model is made for (a recording, an image): resize the input to its shape "
                "with resize_tensor_input() before allocate_tensors().",
            facts={**dict(explanation.facts), "diagnosis_kind": placeholder.kind, "diagnosis_message": placeholder.message},
        )
    first = left.fixes[0] if left.fixes else None
    cause = (
        f"The diagnosis of the data finds: {left.message} The interpreter was allocated at the shape the model "
        f"declares, a placeholder, and {explanation.title[:1].lower() + explanation.title[1:]} there; that says "
        "nothing yet about the shape of the data."
    )
    fix = _apply_fix(first) if first is not None else "Resize the input to the shape of the data before allocate_tensors()."
    facts = {**dict(explanation.facts), "diagnosis_kind": left.kind, "diagnosis_input": left.input_index,
             "diagnosis_message": left.message}
    if first is not None:
        facts["diagnosis_fix"] = first.code or first.label
    return replace(explanation, cause=cause, fix=fix, facts=facts)


# What explain() reads of a text: the end, where the exception is. The reporter cuts each
# line at 1023 characters, so even glued and repeated messages fit many times over.
_MAX_TEXT = 64 << 10
_MAX_MESSAGE = 16 << 10


def _explain_text(raw: str) -> Explanation:
    message, source = _clean(raw[-_MAX_TEXT:])
    message = message[-_MAX_MESSAGE:]
    current, earlier = _split_current(message)
    hits = _matches(current)
    if not hits and _RETYPED.search(current):
        # A message retyped by hand ("cannot set tensor: got value of type uint8 …").
        hits = _matches(current, folded=True)
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


# Words of every message worth a second, case-blind pass: without them none would match anyway.
_RETYPED = re.compile(r"tensor|delegate|interpreter|opcode|custom op|dimension|type|shape|model", re.IGNORECASE)

_KERNEL_KINDS = frozenset(
    {
        "reshape_element_count", "concatenation_mismatch", "conv_input_rank", "fully_connected_cols",
        "kernel_check_failed", "reshape_stretch", "broadcast_shapes", "kernel_rank_unsupported",
        "kernel_type_unsupported",
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


def _matches(text: str, folded: bool = False) -> list[tuple[_Rule, dict[str, Any]]]:
    """Rules that match ``text`` in priority order, each once, with the facts of its first match.

    ``folded`` matches ignoring case, for a message someone retyped.
    """
    hits: list[tuple[_Rule, dict[str, Any]]] = []
    kinds: set[str] = set()
    # Several rules share a pattern (a kernel check, then whether it checks a type): scan once.
    scanned: dict[re.Pattern[str], list[re.Match[str]]] = {}
    checks = "!=" in text or "was not true" in text
    for rule in _RULES:
        if rule.kind in kinds or any(k in kinds for k in rule.unless):
            continue
        found = _search(rule, text, folded, scanned, checks)
        if found is not None:
            hits.append((rule, found))
            kinds.add(rule.kind)
    return hits


# How many matches of one pattern a rule with a ``refine`` hook looks at before giving up.
_MAX_REFINED = 20


def _search(
    rule: _Rule,
    text: str,
    folded: bool = False,
    scanned: dict[re.Pattern[str], list[re.Match[str]]] | None = None,
    checks: bool = True,
) -> dict[str, Any] | None:
    for pattern in rule.folded if folded else rule.patterns:
        if not checks and _EXPR in pattern.pattern:
            continue  # a kernel check needs "!=" or "was not true"; the scan costs the most
        if scanned is not None and pattern in scanned:
            found = scanned[pattern]
        else:
            found = list(itertools.islice(pattern.finditer(text), _MAX_REFINED if rule.refine else 1))
            if scanned is not None:
                scanned[pattern] = found
        for match in found:
            facts: dict[str, Any] | None = {
                k: _typed(k, v) for k, v in match.groupdict().items() if v is not None
            }
            if rule.refine is not None:
                facts = rule.refine(facts)  # type: ignore[arg-type]
            if facts is not None:
                return facts
    return None


def _typed(key: str, value: str) -> Any:
    if key in _NUMERIC_FACTS and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def _values(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The facts plus the phrases the templates share (``at_node``, ``the_op``, …)."""
    values = dict(facts)
    op, node = facts.get("op"), facts.get("node")
    if not op and facts.get("op_name"):
        op = facts["op_name"]
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
