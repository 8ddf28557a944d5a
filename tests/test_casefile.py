"""Saved cases: a workspace dumped and loaded again keeps the failure, the history and the run;
a hostile manifest is refused with a sentence."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re

import numpy as np
import pytest

from lite_debug.archive import ErrorText
from lite_debug.casefile import (
    MAX_STEPS,
    Recorded,
    VersionDifference,
    compare_outputs,
    compare_versions,
    dump_workspace,
    load_workspace,
    versions,
)
from lite_debug.diagnosis import diagnose
from lite_debug.errors import BundleError
from lite_debug.explain import explain
from lite_debug.fixes import make_fix
from lite_debug.gallery import examples
from lite_debug.records import OutputTensor, Quantization, RunResult
from lite_debug.running import Limits, WorkerPool
from lite_debug.session import Workspace
from test_inspection import REAL, need_real_models


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(size=1, limits=Limits(run_seconds=20, load_seconds=20))
    yield p
    p.close()


def round_trip(ws: Workspace) -> Workspace:
    manifest, members = dump_workspace(ws)
    manifest = json.loads(json.dumps(manifest))  # what a file holds: JSON only
    return load_workspace(manifest, lambda digest: bytes(members[digest]))


def same_feed(a, b) -> bool:
    return (
        list(a.arrays) == list(b.arrays)
        and all(a.arrays[k].dtype == b.arrays[k].dtype and np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
        and {k: tuple(v) for k, v in a.resize.items()} == {k: tuple(v) for k, v in b.resize.items()}
    )


def assert_same_history(back: Workspace, ws: Workspace) -> None:
    assert same_feed(back.original, ws.original)
    assert [s.click for s in back.steps] == [s.click for s in ws.steps]
    assert [s.fix.to_dict() for s in back.steps] == [s.fix.to_dict() for s in ws.steps]
    assert [s.answered.to_dict() if s.answered else None for s in back.steps] == [
        s.answered.to_dict() if s.answered else None for s in ws.steps
    ]
    for mine, theirs in zip(back.steps, ws.steps):
        assert same_feed(mine.feed, theirs.feed)
    assert [(a, b.to_dict() if hasattr(b, "to_dict") else b) for a, b in back.clicks] == [
        (a, b.to_dict() if hasattr(b, "to_dict") else b) for a, b in ws.clicks
    ]
    assert back.preferences == ws.preferences and back.signature == ws.signature


def _fix_the_example(ws: Workspace) -> None:
    if ws.example_id == "reshape-breaks-on-resize":
        # Resizing the batch breaks this model's Reshape: keep one sample, as one click of its own.
        (m,) = [m for m in ws.errors if m.kind == "dynamic"]
        ws.apply(next(f for f in m.fixes if f.kind == "take_sample"))
    else:
        ws.apply_all()


@pytest.mark.parametrize("ex_id", [e.id for e in examples()])
def test_a_gallery_case_keeps_its_data_history_and_run(ex_id, pool):
    ws = Workspace.from_example(ex_id)
    before = diagnose(ws.spec, ws.original, ws.signature, choices=ws.choices)
    _fix_the_example(ws)
    result = ws.run(pool)

    back = round_trip(ws)

    assert_same_history(back, ws)
    assert same_feed(back.feed, ws.feed)
    assert [m.to_dict() for m in back.recorded.diagnosis] == [m.to_dict() for m in before]
    if any(m.severity == "error" for m in before):
        assert back.recorded.errors  # the original failure, as diagnosed before any fix
    assert back.result is None and not back.result_stale  # not run here yet
    recorded = back.recorded.run
    assert recorded.status == result.status and recorded.error_message == result.error_message
    assert (recorded.explanation is None) == (result.explanation is None)
    assert compare_versions(back.recorded.versions) == []  # saved and opened on this machine
    assert back.recorded.notes == ()

    rerun = back.run(pool)

    compared = compare_outputs(back.recorded, rerun)
    assert sorted(compared) == sorted(o.name for o in result.outputs)
    for name, c in compared.items():
        assert c["max_abs"] == 0.0 and c["equal"] and c["shape_equal"] and c["dtype_equal"], name


def test_undo_after_opening_takes_back_a_click_as_before():
    ws = Workspace.from_example("image-size")
    ws.apply_all()
    fix = make_fix("swap_rgb_bgr", next(iter(ws.feed.arrays)))
    ws.apply(fix)
    back = round_trip(ws)

    back.undo()
    assert len(back.clicks) == 1 and all(s.click == 0 for s in back.steps)
    assert same_feed(back.feed, ws.steps[-2].feed)
    back.undo()
    assert back.steps == [] and back.feed is back.original and back.can_undo is False
    assert back.errors  # the original failure again


def test_a_sample_of_a_batch_is_a_click_that_survives():
    ws = Workspace.from_example("uint8-float-data")
    (x,) = ws.original.arrays.values()
    ws.set_feed(
        ws.original.replace(arrays={k: np.concatenate([x, x * 0.5, x]) for k in ws.original.arrays}), source="stack"
    )
    assert ws.batch is not None
    ws.open_sample(1)
    ws.apply_all()

    back = round_trip(ws)

    assert_same_history(back, ws)
    assert back.clicks[0] == ("sample", 1)


def test_a_run_before_the_last_fixes_is_kept_as_stale():
    ws = Workspace.from_example("image-size")
    ws.result = RunResult(
        status="error", error_type="ValueError", error_message="Cannot set tensor: Dimension mismatch."
    )
    ws.apply_all()
    assert ws.result_stale
    back = round_trip(ws)
    assert back.recorded.stale and back.recorded.run.status == "error"


@pytest.fixture(scope="module")
def photo_case(pool):
    need_real_models()
    name = "face_detection_short_range.tflite"
    ws = Workspace.open(name, (REAL / name).read_bytes())
    ws.load_files([("grace_hopper.jpg", (REAL / "grace_hopper.jpg").read_bytes())])
    ws.choose("resize method:input", "pillow")
    ws.apply_all()
    text = "ValueError: Cannot set tensor: Dimension mismatch. Got 600 but expected 128 for dimension 1 of input 0."
    ws.reported = ErrorText(path="issue.md", text=text, explanation=explain(text))
    ws.run(pool)
    return ws


def test_a_real_photo_on_a_mediapipe_model_round_trips(photo_case, pool):
    ws = photo_case
    back = round_trip(ws)

    assert_same_history(back, ws)
    (photo,) = back.original.arrays.values()
    assert photo.shape == (600, 512, 3) and photo.dtype == np.uint8  # the photo as given, not as fixed
    assert back.preferences == {"resize method:input": "pillow"}
    assert any(s.fix.kind == "resize_image" and s.fix.params["method"] == "pillow" for s in back.steps)
    assert {m.kind for m in back.recorded.errors} >= {"batch", "shape"}
    assert back.reported.path == "issue.md" and back.reported.text == ws.reported.text
    assert back.reported.explanation.to_dict() == ws.reported.explanation.to_dict()
    assert back.data_source == "grace_hopper.jpg"

    rerun = back.run(pool)
    assert back.reproduced == "no error"  # the report's error does not happen once fixed
    compared = compare_outputs(back.recorded, rerun)
    assert len(compared) == 2 and all(c["max_abs"] == 0.0 for c in compared.values())

    # The picks still replay the history: another resize filter, every click done again.
    back.choose("resize method:input", "tf")
    ws_again = round_trip(ws)
    ws_again.choose("resize method:input", "tf")
    assert_same_history(back, ws_again)
    assert any(s.fix.kind == "resize_image" and s.fix.params["method"] == "tf" for s in back.steps)


def test_recorded_and_new_outputs_side_by_side():
    def out(name, raw, q=Quantization()):
        from lite_debug.quantization import dequantize

        return OutputTensor(name=name, index=0, raw=raw, values=dequantize(raw, q), quantization=q)

    q = Quantization(scale=(0.5,), zero_point=(10,))
    old = RunResult(
        status="ok",
        outputs=(
            out("a", np.array([1.0, 2.0, np.nan], np.float32)),
            out("b", np.array([12, 14], np.uint8), q),
            out("gone", np.zeros(2)),
        ),
    )
    new = RunResult(
        status="ok",
        outputs=(
            out("a", np.array([1.0, 2.5, np.nan], np.float32)),
            out("b", np.array([12, 15], np.uint8), q),
            out("new", np.zeros(3)),
        ),
    )

    c = compare_outputs(Recorded(run=old), new)

    assert c["a"]["max_abs"] == 0.5 and not c["a"]["equal"] and c["a"]["nonfinite_differs"] == 0
    assert c["b"]["max_abs"] == 0.5  # dequantized: one step of 0.5
    assert c["gone"]["shape"] is None and c["gone"]["max_abs"] is None
    assert c["new"]["recorded_shape"] is None and list(c) == ["a", "b", "gone", "new"]
    other = RunResult(status="ok", outputs=(out("a", np.zeros((2, 2), np.float32)),))
    assert compare_outputs(old, other)["a"]["shape_equal"] is False
    assert compare_outputs(Recorded(), new) == {} and compare_outputs(old, None) == {}
    nan = RunResult(status="ok", outputs=(out("a", np.array([1.0, np.nan, np.nan], np.float32)),))
    assert compare_outputs(old, nan)["a"] == {
        "max_abs": 0.0,
        "nonfinite_differs": 1,
        "equal": False,
        "shape_equal": True,
        "dtype_equal": True,
        "recorded_shape": [3],
        "shape": [3],
    }
    json.dumps(compare_outputs(old, nan), allow_nan=False)  # plain JSON for --json


def test_versions_are_compared_runtime_first():
    here = versions()
    recorded = {**here, "ai-edge-litert": "0.0.1", "numpy": "1.0.0", "tflite-runtime": "2.5"}
    recorded.pop("platform")
    diffs = compare_versions(recorded, here)
    assert [d.name for d in diffs] == ["numpy", "ai-edge-litert", "tflite-runtime", "platform"]
    assert diffs[1].sentence == f"ai-edge-litert was 0.0.1 for the recorded run and is {here['ai-edge-litert']} here."
    assert diffs[2] == VersionDifference("tflite-runtime", "2.5", None) and "not installed here" in diffs[2].sentence
    assert diffs[3].recorded is None and "had none" in diffs[3].sentence
    assert diffs[0].to_dict() == {"name": "numpy", "recorded": "1.0.0", "current": here["numpy"]}


# -- hostile manifests ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved():
    ws = Workspace.from_example("image-size")
    ws.apply_all()
    x = np.linspace(0, 1, 10, dtype=np.float32).reshape(1, 10)
    ws.result = RunResult(status="ok", outputs=(OutputTensor("out", 0, x, x),))
    manifest, members = dump_workspace(ws)
    return json.loads(json.dumps(manifest)), {k: bytes(v) for k, v in members.items()}


def _address(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _set(path: str, value):
    """A change to one place of the manifest, named like the messages name it."""

    def change(m, members):
        keys = re.findall(r"[^.\[\]]+", path)
        target = m
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last = keys[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


def _model_not_a_model(m, members):
    junk = b"this is a text file, not a model" * 10
    members[_address(junk)] = junk
    m["model"]["member"] = _address(junk)


def _changed_member(m, members):
    digest = m["original"]["arrays"][0]["member"]
    members[digest] = members[digest][:-1] + b"\0"


def _missing_member(m, members):
    del members[m["run"]["outputs"][0]["member"]]


def _pickled_array(m, members):
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    members[_address(buf.getvalue())] = buf.getvalue()
    m["original"]["arrays"][0].update(member=_address(buf.getvalue()), dtype="float32", shape=[1])


def _step(fix: dict, after_shape=None):
    def change(m, members):
        m["steps"][0]["fix"] = fix
        if after_shape is not None:
            m["steps"][0]["after"]["arrays"][0]["shape"] = after_shape

    return change


NAME = "serving_default_image:0"
HOSTILE = [
    ("not an object", lambda m, _: m.clear() or m.update({"steps": []}), "lacks 'format'"),
    ("a version as text", _set("version", "1"), "format version should be a whole number"),
    ("a newer version", _set("version", 99), "newer than the 1 this lite-debug reads"),
    ("another format", _set("format", "pickle"), "names the format 'pickle'"),
    ("steps that are no list", _set("steps", 5), "steps should be a list, not a number"),
    ("a huge list of steps", _set("steps", [{}] * (MAX_STEPS + 1)), "more than the 4,096 allowed"),
    ("a shape as text", _set("original.arrays.0.shape", "256x256"), "original.arrays[0].shape should be a list"),
    ("a shape of a terabyte", _set("original.arrays.0.shape", [100000, 100000, 100]), "more than the 1,073,741,824"),
    ("a member outside the case", _set("model.member", "../../etc/passwd"), "should be a content address"),
    ("a member it does not hold", _missing_member, "does not hold"),
    ("a member changed after saving", _changed_member, "whose content does not have that address"),
    ("a pickled array", _pickled_array, "cannot be read as an array"),
    ("a model that is no model", _model_not_a_model, "model 'image_classifier.tflite' cannot be opened: the model"),
    ("an unknown fix", _set("steps.0.fix.kind", "rm_rf"), "steps[0].fix.kind is 'rm_rf', none of"),
    (
        "code in a parameter",
        _step(
            {
                "kind": "quantize",
                "input": NAME,
                "params": {"dtype": "uint8", "scale": 0.1, "zero_point": "__import__('os').system('echo owned')"},
            }
        ),
        "steps[0].fix.params.zero_point should be a whole number, not text",
    ),
    (
        "a parameter a fix does not take",
        _step({"kind": "add_batch", "input": NAME, "params": {"evil": 1}}),
        "has 'evil', which the fix 'add_batch' does not take",
    ),
    (
        "a parameter missing",
        _step({"kind": "reshape", "input": NAME, "params": {}}),
        "lacks 'shape', which the fix 'reshape' needs",
    ),
    (
        "a fix that does not apply",
        _step({"kind": "reshape", "input": NAME, "params": {"shape": [7, 7]}}),
        "does not apply to the data it was saved with",
    ),
    (
        "a fix for no input",
        _step({"kind": "add_batch", "input": "nope", "params": {}}),
        "there is no data for input 'nope'",
    ),
    (
        "zeros of 200 GB",
        _step({"kind": "generate", "input": NAME, "params": {"shape": [50000, 50000, 20], "dtype": "float32"}}),
        "would make an array of 50,000,000,000 values",
    ),
    (
        "a resize to 65536 squared",
        _step({"kind": "resize_image", "input": NAME, "params": {"height": 65536, "width": 65536}}),
        "would make an array of",
    ),
    (
        "a replay of other shapes",
        _set("steps.0.after.arrays.0.shape", [2, 256, 256, 3]),
        "gives data of other shapes than it recorded",
    ),
    ("a step of no click", _set("steps.0.click", 7), "steps[0].click is 7, outside 0…0"),
    ("an unknown signature", _set("signature", "serve"), "signature is 'serve', which the model does not have"),
    ("a name of 10,000 characters", _set("original.arrays.0.name", "x" * 10000), "is 10,000 characters long"),
    (
        "a pick that is not text",
        _set("preferences", {"resize method:x": 3}),
        "preferences['resize method:x'] should be text",
    ),
    ("a diagnosis of numbers", _set("diagnosis", [5]), "diagnosis[0] should be an object, not a number"),
    ("a bogus run status", _set("run.status", "fine"), "run.status is 'fine', none of"),
    (
        "per-channel scales that do not fit",
        _set(
            "run.outputs.0.quantization", {"scale": [1.0, 2.0, 3.0], "zero_point": [0, 0, 0], "quantized_dimension": 0}
        ),
        "has 3 scales on dimension 0 of an output of shape [1, 10]",
    ),
    ("an infinite time", _set("run.invoke_ms", 1e400), "run.invoke_ms is inf, not a finite number"),
    ("a report without its explanation", _set("reported", {"path": "a", "text": "b"}), "reported lacks 'explanation'"),
    ("a mismatch of an unknown kind", _set("diagnosis.0.kind", "evil"), "diagnosis[0].kind is 'evil', none of"),
    ("a click of an unknown action", _set("clicks.0.action", "exec"), "clicks[0].action is 'exec', none of"),
]


@pytest.mark.parametrize("change, words", [pytest.param(c, w, id=i) for i, c, w in HOSTILE])
def test_a_hostile_manifest_is_refused_with_a_sentence(saved, change, words):
    manifest, members = copy.deepcopy(saved)

    change(manifest, members)

    with pytest.raises(BundleError) as caught:
        load_workspace(manifest, lambda digest: members[digest])
    message = str(caught.value)
    assert words in message
    assert message[0].isupper() and message.endswith(".") and "\n" not in message


def test_a_manifest_that_is_not_a_dict_is_refused():
    for value in ([], "manifest", None, 5):
        with pytest.raises(BundleError, match="manifest should be an object"):
            load_workspace(value, lambda d: b"")


def test_the_script_of_a_loaded_case_holds_only_code_lite_debug_wrote(saved):
    # The code and label a manifest records are not trusted: fixes are made again from their kind.
    manifest, members = copy.deepcopy(saved)
    manifest["steps"][0]["fix"]["code"] = "import os; os.system('echo owned')"
    manifest["steps"][0]["fix"]["label"] = "harmless"
    back = load_workspace(manifest, lambda digest: members[digest])
    assert back.steps[0].fix.code == "x = np.expand_dims(x, 0)" and back.steps[0].fix.label == "Add a batch dimension"
    assert "owned" not in back.script().text


def test_values_that_replay_differently_are_noted_not_refused(saved):
    manifest, members = copy.deepcopy(saved)
    manifest["steps"][-1]["after"]["arrays"][0]["values_sha256"] = "0" * 64
    back = load_workspace(manifest, lambda digest: members[digest])
    (note,) = back.recorded.notes
    assert note.startswith("Replaying fix 3 of the history") and "other values" in note


def test_a_good_case_opens_after_a_refused_one(saved):
    # A refused case leaves nothing half-built behind: the next good one opens.
    manifest, members = copy.deepcopy(saved)
    with pytest.raises(BundleError):
        load_workspace({**manifest, "steps": 5}, lambda digest: members[digest])
    assert len(load_workspace(manifest, lambda digest: members[digest]).steps) == 3


def _leaves(value, path=()):
    """Every place in a JSON value, as a path of keys and indices."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            yield from _leaves(v, (*path, i))


ODD = [None, -1, 0, 2**63, 1e308, -0.5, True, "", "x" * 300, "../../x", [], [1, 2], {}, {"a": None}, "sha256:" + "0" * 64]


def test_any_one_value_changed_opens_or_gives_a_sentence(saved):
    # A small fuzz of the reader: every place of the manifest, a few odd values each.
    import random

    manifest, members = saved
    places = [p for p in _leaves(manifest) if p]
    rng = random.Random(12)
    opened = refused = 0
    for path in places:
        for value in rng.sample(ODD, 3):
            m = copy.deepcopy(manifest)
            target = m
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            try:
                load_workspace(m, lambda digest: members[digest])
                opened += 1
            except BundleError as exc:
                message = str(exc)
                assert message[0].isupper() and message.endswith("."), message
                refused += 1
    assert refused > 100 and opened > 10  # some changes are harmless (a label, a message)
