"""The dashboard under AppTest: every page renders, and the main paths work by their widget keys.

Each test drives the frame (app.py) the way a browser session would: clicks and uploads go
through ``key=``, and assertions read what the page shows. Runs use the dashboard's own pool
(``pages._ui.pool``), so they start real worker processes.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from lite_debug.bundle import write_bundle
from lite_debug.records import Feed, RunResult
from lite_debug.session import Workspace
from streamlit.testing.v1 import AppTest
from ui_helpers import (
    APP,
    FIXTURES,
    PAGE_FILES,
    app,
    keep_the_frame,
    npy,
    reset_pool,
    segfault_new_worker,
    shown,
    texts,
    upload,
    worker_pids,
)


@pytest.fixture(autouse=True)
def _frame(monkeypatch):
    keep_the_frame(monkeypatch)


@pytest.fixture(scope="module", autouse=True)
def _close_pool_at_the_end():
    yield
    reset_pool()


@pytest.fixture
def fresh_pool(monkeypatch):
    """A new dashboard pool that reads the env set by the test; the default one comes back after."""

    def make(**env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_pool()

    yield make
    reset_pool()


def add_float(data: bool = True) -> Workspace:
    ws = Workspace.open("add_float.tflite", (FIXTURES / "add_float.tflite").read_bytes())
    if data:
        ws.set_feed(Feed({"x": np.arange(4, dtype=np.float32).reshape(1, 4)}), source="test")
    return ws


def slow_loop(iterations: int) -> Workspace:
    ws = Workspace.open("slow_loop.tflite", (FIXTURES / "slow_loop.tflite").read_bytes())
    ws.set_feed(Feed({"iterations": np.array(iterations, np.int32), "x": np.zeros(1, np.float32)}), source="test")
    return ws


def fixed(example_id: str) -> Workspace:
    ws = Workspace.from_example(example_id)
    ws.apply_all()
    return ws


def workspace_of(at) -> Workspace | None:
    return at.session_state["ws"] if "ws" in at.session_state else None


def kinds(at) -> list[str]:
    """The mismatch kinds the diagnose page shows, in order ("**shape** — Input 0 …")."""
    return [shown(e.value).split("**")[1] for e in at.main.error]


def charts(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def run_on_run_page(at):
    at.button(key="run").click().run()
    assert not at.exception
    return at


# -- every page renders ------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGE_FILES)
def test_every_page_renders_with_no_model(page):
    at = app(page=page)
    assert not at.exception
    assert "No model loaded" in texts(at.sidebar.caption)
    if page in ("model", "diagnose", "run", "export"):
        assert "No model is loaded yet" in texts(at.main.info)
    elif page == "start":
        assert at.button(key="example-image-size").label == "Open"
        assert at.file_uploader(key="data-upload").disabled
    else:
        assert at.text_area(key="explain-text").value == ""


@pytest.fixture(scope="module")
def image_size_result():
    """One real run of the fixed image-size example, shared by the pages that show a result."""
    from lite_debug.running import WorkerPool

    pool = WorkerPool(size=1)
    try:
        result = fixed("image-size").run(pool)
    finally:
        pool.close()
    assert result.ok
    return result


WORKSPACES = {
    "broken example": lambda r: Workspace.from_example("image-size"),
    "model only": lambda r: add_float(data=False),
    "two signatures": lambda r: Workspace.from_example("two-signatures-missing-batch"),
    "fixed and run": lambda r: _with_result(fixed("image-size"), r),
}


def _with_result(ws: Workspace, result) -> Workspace:
    ws.result = result
    return ws


@pytest.mark.parametrize("page", PAGE_FILES)
@pytest.mark.parametrize("state", WORKSPACES)
def test_every_page_renders_with_a_workspace(page, state, image_size_result):
    ws = WORKSPACES[state](image_size_result)
    at = app(ws, page=page)
    assert not at.exception
    assert ws.model_name in texts(at.sidebar.markdown)
    assert at.main.title, "every page has a title"
    if state == "model only" and page in ("diagnose", "run"):
        assert "no data" in texts(at.main.warning)
    if state == "fixed and run" and page == "run":
        assert charts(at) and at.main.metric[0].label == "Invoke"


# -- the gallery path --------------------------------------------------------------------------


def test_gallery_example_shows_its_errors_fixes_them_and_runs():
    at = app()
    at.button(key="example-image-size").click().run()
    assert not at.exception
    assert at.main.title[0].value == "Diagnose and fix"
    shown = texts(at.main.error)
    assert kinds(at) == ["batch", "shape", "dtype"]
    assert "batch dimension is missing" in shown
    assert "expects 224×224 images, but the data is 256×256" in shown
    assert "expects float32, but the data is uint8" in shown
    assert at.main.metric[0].value == "3"

    at.button(key="fix-all").click().run()
    assert not at.exception and not at.main.error
    assert at.main.metric[0].value == "0"
    assert "fits the model" in texts(at.main.success)
    code = texts(at.main.code)
    assert "np.expand_dims" in code and "resize_image" in code

    at.button(key="undo").click().run()
    assert kinds(at) == ["batch", "shape", "dtype"] and not at.main.code

    at.button(key="fix-all").click().run()
    at.button(key="run-now").click().run()
    assert not at.exception
    assert at.main.title[0].value == "Run and outputs"
    metrics = {m.label: m.value for m in at.main.metric}
    assert metrics["Invoke"].endswith(" ms") and metrics["Outputs"] == "1"
    (top,) = [c for c in charts(at) if "top 5" in c["layout"]["title"]["text"]]
    assert any("city skyline" in label for label in top["data"][0]["y"])
    # The sidebar is drawn before the page: it must still tell of the run just made.
    assert "Last run: **ok**" in texts(at.sidebar.markdown)


def test_one_fix_button_changes_the_data():
    at = app()
    at.button(key="example-image-size").click().run()
    ws = at.session_state["ws"]
    assert ws.feed.arrays["serving_default_image:0"].shape == (256, 256, 3)

    assert at.button(key="fix-0-0-0").label == "Add a batch dimension"
    at.button(key="fix-0-0-0").click().run()
    assert not at.exception
    assert ws.feed.arrays["serving_default_image:0"].shape == (1, 256, 256, 3)
    assert kinds(at) == ["shape", "dtype"]

    # The shape mismatch is now the first: its first fix stretches to 224×224.
    assert at.button(key="fix-0-0-0").label.startswith("Resize to 224×224")
    at.button(key="fix-0-0-0").click().run()
    assert ws.feed.arrays["serving_default_image:0"].shape == (1, 224, 224, 3)
    assert "resize_image" in texts(at.main.code)


def test_run_page_runs_a_fixed_segmenter_and_plots_it():
    at = app(fixed("segmentation-nchw"), page="run")
    assert "Not run yet." in texts(at.main.caption)
    # Before a run: what it takes and gives, as metrics (the browser then has their code before
    # the click), and none of a run's own numbers.
    before = {m.label: m.value for m in at.main.metric}
    assert before == {"Inputs": "1", "Outputs": "1"}
    run_on_run_page(at)
    kinds = {trace["type"] for chart in charts(at) for trace in chart["data"]}
    assert "heatmap" in kinds
    assert {m.label for m in at.main.metric} >= {"Invoke", "Round trip", "Outputs"}


# -- uploads -----------------------------------------------------------------------------------


def test_upload_a_model_and_data_then_see_the_mismatch():
    at = app()
    at.file_uploader(key="model-upload").set_value(
        upload("add.tflite", (FIXTURES / "add_float.tflite").read_bytes())
    ).run()
    assert not at.exception and not at.main.error
    assert at.session_state["ws"].model_name == "add.tflite"
    assert "add.tflite" in texts(at.sidebar.markdown)

    at.file_uploader(key="data-upload").set_value(upload("x.npy", npy(np.zeros(4)))).run()
    assert not at.exception and not at.main.error
    assert "with data from x.npy" in texts(at.main.success)
    assert "2 error(s)" in texts(at.sidebar.error)

    at.switch_page("pages/diagnose.py").run()
    shown = texts(at.main.error)
    assert "batch dimension is missing" in shown and "expects float32, but the data is float64" in shown


def test_uploads_are_kept_without_a_copy_and_the_uploaders_emptied():
    # Streamlit hands a widget's value to the script as a deep copy on every rerun: a 100 MB
    # model sitting in the uploader would cost 100 MB per click. The pages read uploads in
    # callbacks instead and empty the uploaders, so the workspace holds the uploaded object.
    model = (FIXTURES / "add_float.tflite").read_bytes()
    data = npy(np.zeros((1, 4), np.float32))
    at = app()
    at.file_uploader(key="model-upload").set_value(upload("add.tflite", model)).run()
    at.file_uploader(key="data-upload").set_value(upload("x.npy", data)).run()
    assert not at.exception and not at.main.error
    assert at.session_state["ws"].model_bytes is model
    assert at.session_state["data-files"][0][1] is data
    assert all(not u.value for u in at.file_uploader)
    assert {u.key for u in at.file_uploader} == {"model-upload-1", "data-upload-1"}
    captions = texts(at.main.caption)
    assert "add.tflite" in captions and "x.npy" in captions


@pytest.mark.parametrize(
    "data, says",
    [
        (b"", "is empty (0 bytes)"),
        (b"<!DOCTYPE html><html><head><title>Download</title></head><body></body></html>", "HTML page"),
        (np.random.default_rng(0).bytes(4096), "not a TFLite flatbuffer"),
    ],
    ids=["empty", "html", "random"],
)
def test_a_broken_model_file_shows_a_sentence(data, says):
    at = app()
    at.file_uploader(key="model-upload").set_value(upload("m.tflite", data)).run()
    assert not at.exception
    (error,) = at.main.error
    assert says in shown(error.value) and shown(error.value).endswith(".")
    assert workspace_of(at) is None


@pytest.mark.parametrize(
    "name, data, says",
    [
        ("t.npy", npy(np.zeros((1, 4), np.float32))[:-7], "is truncated"),
        ("o.npy", npy(np.array([{"a": 1}], dtype=object)), "object array"),
    ],
    ids=["truncated", "object-dtype"],
)
def test_a_broken_data_file_shows_a_sentence(name, data, says):
    at = app(add_float())
    at.file_uploader(key="data-upload").set_value(upload(name, data)).run()
    assert not at.exception
    (error,) = at.main.error
    assert says in shown(error.value) and name in shown(error.value) and shown(error.value).endswith(".")
    # The data from before the failed upload is still there.
    assert at.session_state["ws"].data_source == "test"


def test_a_bundle_uploaded_as_the_model_restores_model_and_data():
    x = np.array([[1.5, -2.0, 0.25, 8.0]], np.float32)
    zipped = write_bundle((FIXTURES / "add_float.tflite").read_bytes(), Feed({"x": x}), model_name="add_float.tflite")
    at = app()
    at.file_uploader(key="model-upload").set_value(upload("report.zip", zipped)).run()
    assert not at.exception and not at.main.error
    ws = at.session_state["ws"]
    assert ws.model_name == "add_float.tflite"
    np.testing.assert_array_equal(ws.feed.arrays["x"], x)
    assert "bundle report.zip" in texts(at.sidebar.markdown)
    assert "The data fits the model" in texts(at.sidebar.success)


# -- runs that fail ----------------------------------------------------------------------------


def test_a_failed_run_is_explained_with_the_raw_message_in_an_expander():
    at = app()
    at.button(key="example-select-tf-op").click().run()
    at.switch_page("pages/run.py").run()
    run_on_run_page(at)
    assert "FlexMatrixInverse" in shown(at.main.error[0].value)
    explanation = texts(at.main.markdown)
    assert "**Cause.**" in explanation and "**Fix.**" in explanation
    (raw,) = [e for e in at.main.expander if e.label == "The interpreter's own message"]
    assert "Select TensorFlow op" in texts(raw.code)


def test_a_timeout_is_reported_and_the_next_model_still_runs(fresh_pool):
    fresh_pool(LITE_DEBUG_RUN_SECONDS="2")
    at = app(slow_loop(10**9), page="run")
    run_on_run_page(at)
    assert "took longer than the 2 s limit" in texts(at.main.error)

    at.session_state["ws"] = add_float()
    at.run()
    run_on_run_page(at)
    assert not at.main.error
    assert {m.label: m.value for m in at.main.metric}["Outputs"] == "1"


def test_a_crash_names_its_signal_and_the_next_run_works(fresh_pool):
    fresh_pool(LITE_DEBUG_RUN_SECONDS="30")
    at = app(slow_loop(10**9), page="run")
    killer = segfault_new_worker(before=worker_pids())
    run_on_run_page(at)
    killer.join(timeout=5)
    assert killer.result.get("pid"), "no worker was found to kill"
    shown = texts(at.main.error)
    assert "crashed (SIGSEGV)" in shown and "only its worker process died" in shown

    at.session_state["ws"].set_feed(
        Feed({"iterations": np.array(3, np.int32), "x": np.zeros(1, np.float32)}), source="test"
    )
    run_on_run_page(at)
    assert not at.main.error
    assert killer.result["pid"] not in worker_pids()


# -- explain and export ------------------------------------------------------------------------


def test_explain_a_real_message():
    at = app(page="explain")
    at.text_area(key="explain-text").input(
        "ValueError: Cannot set tensor: Dimension mismatch. Got 256 but expected 224 for dimension 1 of input 0."
    )
    at.button(key="explain").click().run()
    assert not at.exception
    assert "Dimension 1 of input 0 is 256, the model expects 224" in texts(at.main.success)
    shown = texts(at.main.markdown)
    assert "**Cause.**" in shown and "**Fix.**" in shown


def test_explain_garbage_warns():
    at = app(page="explain")
    at.text_area(key="explain-text").input("lorem ipsum \x00 ))) <<<")
    at.button(key="explain").click().run()
    assert not at.exception
    assert "Message not recognised" in texts(at.main.warning)


def test_explain_with_nothing_pasted_asks_for_a_message():
    at = app(page="explain")
    at.button(key="explain").click().run()
    assert not at.exception and "Paste a message first." in texts(at.main.warning)


@pytest.mark.parametrize("ws", [lambda: fixed("image-size"), lambda: add_float()], ids=["fixed", "as-is"])
def test_export_offers_a_script_that_compiles_and_a_bundle(ws):
    ws = ws()
    at = app(ws, page="export")
    assert not at.exception and not at.main.error
    keys = {el.key for el in at.get("download_button")}
    assert {"download-script", "download-bundle", "download-model"} <= keys
    text = ws.script().text
    compile(text, "reproduce.py", "exec")
    if ws.applied:
        assert "np.expand_dims" in text


def test_sessions_are_isolated():
    one, other = app(), app()
    one.button(key="example-image-size").click().run()
    assert one.session_state["ws"] is not None
    other.switch_page("pages/diagnose.py").run()
    assert not other.exception
    assert "No model is loaded yet" in texts(other.main.info)
    assert "No model loaded" in texts(other.sidebar.caption)
    assert workspace_of(other) is None



def test_data_in_the_uploader_follows_a_new_model():
    # A user uploads data, then swaps the model: the data must be diagnosed against the new one,
    # not silently dropped while the uploader still shows it.
    from lite_debug.gallery import example

    at = app()
    add = (FIXTURES / "add_float.tflite").read_bytes()
    at.file_uploader(key="model-upload").set_value(upload("a.tflite", add)).run()
    at.file_uploader(key="data-upload").set_value([upload("x.npy", npy(np.zeros((1, 4), np.float32)))]).run()
    assert at.session_state["ws"].has_data
    ex = example("segmentation-nchw")
    # The model uploader was emptied once the first model opened: it has a new key now.
    (model_uploader,) = [u for u in at.file_uploader if u.key.startswith("model-upload")]
    assert model_uploader.key != "model-upload" and not model_uploader.value
    model_uploader.set_value(upload("seg.tflite", ex.model_bytes)).run()
    ws = at.session_state["ws"]
    assert ws.model_name == "seg.tflite" and ws.has_data
    assert any(m.severity == "error" for m in ws.mismatches)  # [1, 4] data against a [1, 64, 64, 3] input
    assert not at.exception


def test_closing_the_model_forgets_its_data():
    at = app()
    add = (FIXTURES / "add_float.tflite").read_bytes()
    at.file_uploader(key="model-upload").set_value(upload("a.tflite", add)).run()
    at.file_uploader(key="data-upload").set_value([upload("x.npy", npy(np.zeros((1, 4), np.float32)))]).run()
    assert at.session_state["ws"].has_data
    at.button(key="sidebar-close").click().run()
    assert workspace_of(at) is None and "No model loaded" in texts(at.sidebar.caption)
    (model_uploader,) = [u for u in at.file_uploader if u.key.startswith("model-upload")]
    model_uploader.set_value(upload("b.tflite", add)).run()
    ws = at.session_state["ws"]
    assert ws.model_name == "b.tflite" and not ws.has_data and not at.exception


def test_the_run_page_warns_of_errors_left_in_the_diagnosis():
    ws = Workspace.from_example("image-size")  # wrong size, no batch dimension, wrong dtype
    at = app(ws, "run")
    assert "3 error(s) remain in the diagnosis" in texts(at.warning)
    assert "samples at once" not in texts(at.caption)


def test_a_batch_is_fixed_run_and_opened_sample_by_sample():
    from lite_debug.gallery import example

    ex = example("uint8-float-data")
    ws = Workspace._for_model("digits.tflite", ex.model_bytes)
    floats = np.random.default_rng(0).random((300, 28, 28, 1), dtype=np.float32)
    ws.set_feed(Feed({ws.inputs[0].name: floats}), source="batch.npz")
    at = app(ws, "diagnose")
    assert "holds 300 samples" in texts(at.markdown)
    at.button(key="fix-batch").click().run()
    assert ws.batch_ready and [f.kind for f in ws.applied] == ["quantize"]
    at.switch_page("pages/run.py").run()
    # Its only "error" is its number of samples: no warning before running them one by one,
    # and the single run says what it would do with the whole stack.
    assert [m.kind for m in ws.errors] == ["batch"]
    assert not at.warning and "all 300 samples at once" in texts(at.caption)
    assert "A batch of 300 samples" in texts(at.sidebar.info) and not at.sidebar.error
    at.button(key="run-batch").click().run()
    assert not at.exception
    assert ws.batch_result.status == "ok" and ws.batch_result.count == 300
    assert [m.value for m in at.metric][:2] == ["300", "0"]
    assert at.dataframe  # the per-output summary
    at.switch_page("pages/diagnose.py").run()
    at.number_input(key="batch-sample").set_value(7).run()
    at.button(key="open-sample").click().run()
    x = next(iter(ws.feed.arrays.values()))
    assert x.shape == (1, 28, 28, 1) and ws.mismatches == []
    assert np.array_equal(x[0], np.clip(np.round(floats[7] * 255), 0, 255).astype(np.uint8))
    at.button(key="undo").click().run()
    assert next(iter(ws.feed.arrays.values())).shape == (300, 28, 28, 1)


# -- trust: choices shown, runs expected to fail said so, no "fits" beside a failure ------------


def _photo_workspace() -> Workspace:
    from test_inspection import REAL, need_real_models

    from lite_debug.loading import load_data

    need_real_models()
    ws = Workspace.open("face_detection_short_range.tflite", (REAL / "face_detection_short_range.tflite").read_bytes())
    (x,) = load_data("grace_hopper.jpg", (REAL / "grace_hopper.jpg").read_bytes())
    ws.set_feed(Feed({"input": x}), source="grace_hopper.jpg")
    return ws


def test_the_choices_are_shown_with_their_reasons_and_can_be_changed_after_applying():
    ws = _photo_workspace()
    at = app(ws, "diagnose")
    assert not at.exception and "holds" not in texts(at.markdown)  # a photo is no batch of its rows
    box = at.selectbox(key="choice-value range:input")
    assert box.value == "[-1, 1]" and set(box.options) >= {"[0, 1]  (x / 255)", "[-1, 1]  (x / 127.5 − 1)"}
    shown_md = texts(at.markdown)
    assert "from the model" in shown_md and "mean [127.5] and std [127.5]" in shown_md  # its metadata
    assert "a guess" in shown_md and "A guess:" in shown_md  # the resize filter and mode still are
    at.button(key="fix-all").click().run()
    assert ws.errors == [] and float(ws.feed.arrays["input"].min()) < -0.5
    at.selectbox(key="choice-value range:input").select("[0, 1]").run()
    assert not at.exception and float(ws.feed.arrays["input"].min()) >= 0 and ws.errors == []
    assert at.selectbox(key="choice-value range:input").value == "[0, 1]"
    assert "your pick" in texts(at.markdown)


def test_the_sweep_runs_each_candidate_and_one_can_be_used():
    ws = _photo_workspace()
    at = app(ws, "diagnose")
    at.button(key="sweep").click().run()
    assert not at.exception and ws.sweep is not None and len(ws.sweep) == 6
    best = next(i for i, c in enumerate(ws.sweep) if c.best)
    at.button(key=f"sweep-use-{best}").click().run()
    assert not at.exception
    picks = ws.sweep[best].picks
    assert all(ws.preferences[k] == v for k, v in picks.items())


def test_run_it_says_the_run_is_expected_to_fail_and_why():
    at = app(Workspace.from_example("image-size"), "diagnose")
    button = at.button(key="run-now")
    assert button.label == "Run it anyway"
    assert "The run is expected to fail: " in texts(at.caption)
    assert "batch dimension is missing" in texts(at.caption)


def test_the_sidebar_never_says_fits_beside_a_failed_run():
    ws = Workspace.from_example("image-size")
    ws.apply_all()
    assert ws.errors == []
    ws.result = RunResult(status="error", error_type="RuntimeError", error_message="boom")
    at = app(ws, "diagnose")
    assert not at.sidebar.success
    assert "The last run failed (error)" in texts(at.sidebar.error)


def test_hostile_names_are_shown_as_text(tmp_path):
    from fuzzing import pack_model, unpack_model

    m = unpack_model((FIXTURES / "add_float.tflite").read_bytes())
    m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]].name = b"![x](http://127.0.0.1:9/p.png) [Click](http://evil/) `a"
    ws = Workspace.open("[Click here](http://evil/).tflite", pack_model(m))
    ws.set_feed(Feed({ws.inputs[0].name: np.zeros((1, 5), np.float32)}), source="![y](http://127.0.0.1:9/q.png)")
    at = app(ws, "diagnose")
    assert not at.exception
    sources = [e.value for e in (*at.markdown, *at.error, *at.warning, *at.caption, *at.sidebar.markdown)]
    for raw in sources:
        # No link or image syntax survives unescaped, and no bare URL is left for GFM to link.
        assert not re.search(r"(?<!\\)\]\(|(?<!\\)!\[", raw), raw
        assert "http:" not in raw and "http\\:" not in raw.replace("http\u2060\\:", ""), raw
    joined = texts([*at.markdown, *at.error])
    assert "![x](http://127.0.0.1:9/p.png) [Click](http://evil/) `a" in joined


# -- bug-report archives on the Start page ---------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_an_archive_opens_with_its_data_and_its_reported_error():
    from lite_debug.gallery import EXAMPLES_DIR, example

    ex = example("image-size")
    report = _zip({
        "issue-1234/model.tflite": ex.model_bytes,
        "issue-1234/input.png": (EXAMPLES_DIR / ex.input_files[0]).read_bytes(),
        "issue-1234/traceback.txt": ("Traceback (most recent call last):\n  File \"run.py\", line 3\nValueError: " + ex.observed_error + "\n").encode(),
        "__MACOSX/._model.tflite": b"junk",
    })
    at = app()
    at.file_uploader(key="model-upload").set_value(upload("issue-1234.zip", report)).run()
    assert not at.exception and not at.main.error
    ws = at.session_state["ws"]
    assert ws.model_name == "model.tflite" and ws.container == "issue-1234.zip" and ws.has_data
    assert "1 model (issue-1234/model.tflite)" in texts(at.caption)
    at.switch_page("pages/diagnose.py").run()
    assert "Reported in issue-1234/traceback.txt" in texts(at.markdown)
    ws.apply_all()
    ws.undo()  # back to the data as reported: the run fails; the run page explains it
    at.switch_page("pages/run.py").run()
    at.button(key="run").click().run()
    assert ws.reproduced in ("the same", "a different error")


def test_an_archive_with_two_models_asks_which():
    from lite_debug.gallery import example

    two = _zip({"a/first.tflite": example("image-size").model_bytes, "b/second.tflite": example("uint8-float-data").model_bytes})
    at = app()
    at.file_uploader(key="model-upload").set_value(upload("two.zip", two)).run()
    assert not at.exception and "Which model should open?" in texts(at.info)
    at.selectbox(key="choose-model-path").select("b/second.tflite").run()
    at.button(key="choose-model-open").click().run()
    assert not at.exception and at.session_state["ws"].model_name == "second.tflite"


def test_a_file_named_zip_that_is_not_one_says_so():
    at = app()
    at.file_uploader(key="model-upload").set_value(upload("model.zip", b"this is not a zip at all" * 10)).run()
    assert "is named like a .zip archive but is not one" in texts(at.main.error)
    assert "not a TFLite flatbuffer" not in texts(at.main.error)


def test_a_bundle_reopens_with_its_failure_history_and_recorded_run():
    ws = Workspace.from_example("image-size")
    ws.apply_all()
    ws.run()
    data = ws.bundle()
    at = app()
    at.file_uploader(key="model-upload").set_value(upload("case.zip", data)).run()
    again = at.session_state["ws"]
    assert again.recorded is not None and len(again.recorded.errors) == 3 and len(again.steps) == 3
    at.switch_page("pages/diagnose.py").run()
    assert not at.exception and "3 error(s) before any fix; 3 fix(es) replayed; recorded run: ok" in texts(at.markdown)
    at.button(key="undo").click().run()
    assert again.steps == [] and len(again.errors) == 3
    at.switch_page("pages/export.py").run()
    code = texts(at.code)
    assert "base64" in code or "embedded" in code
    assert len(code) < 40_000  # the embedded photo is elided, not a 300 KB wall


# -- cases: a reload and a shared address find the same workspace -------------------------------


def test_the_address_names_the_case_and_a_new_session_opens_it():
    at = app()
    at.button(key="example-image-size").click().run()
    at.button(key="fix-all").click().run()
    case = at.query_params["case"]
    case = case[0] if isinstance(case, list) else case
    assert case and at.session_state["ws"].case_id == case
    # A reload, or a teammate with the address: a new session on ?case=…
    other = AppTest.from_file(str(APP), default_timeout=30)
    other.query_params["case"] = case
    other.run()
    assert not other.exception
    ws = other.session_state["ws"]
    assert ws.model_name == "image_classifier.tflite" and len(ws.steps) == 3 and ws.errors == []
    # A change there is a new case; the shared one stays as it was.
    other.switch_page("pages/diagnose.py").run()
    other.button(key="undo").click().run()
    changed = other.query_params["case"]
    changed = changed[0] if isinstance(changed, list) else changed
    assert changed != case


def test_a_bad_case_address_says_so():
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["case"] = "A" * 24
    at.run()
    assert not at.exception and "No case" in texts(at.main.error)


def test_a_model_that_cannot_load_shows_before_any_run():
    at = app()
    at.button(key="example-select-tf-op").click().run()
    job = at.session_state["check-job"]
    job.join(60)
    at.run()
    assert not at.exception
    ws = at.session_state["ws"]
    assert ws.check is not None and ws.errors[0].kind == "unsupported_op"
    assert "FlexMatrixInverse" in texts(at.main.error)
    assert not at.sidebar.success and "does not load in this runtime" in texts(at.sidebar.caption)
    assert at.button(key="run-now").label == "Run it anyway"
    assert "The run is expected to fail: The model does not load" in texts(at.caption)
# -- the run page's views of outputs --------------------------------------------------------------


def real_workspace(name: str) -> Workspace:
    from test_inspection import REAL, need_real_models

    need_real_models()
    ws = Workspace.open(f"{name}.tflite", (REAL / f"{name}.tflite").read_bytes())
    t = ws.inputs[0]
    h, w = t.shape[1:3]
    yy, xx = np.mgrid[0:h, 0:w]
    ws.set_feed(Feed({t.name: np.stack([xx / w, yy / h, ((xx + yy) % 64) / 64], -1).astype(np.float32)[None]}), "test")
    return ws


def page_text(at) -> str:
    """The page as a reader sees it (Markdown and captions, escapes taken out)."""
    return texts(at.main.markdown) + "\n" + texts(at.main.caption)


def readings(at) -> list[str]:
    return [sb.value for sb in at.main.selectbox if str(sb.key).startswith("view-")]


@pytest.mark.parametrize(
    "name, says, kinds",
    [
        ("face_detection_short_range",
         ["read as box regressors of 896 anchors", "read as 896 anchor scores, sigmoid applied; not classes"],
         ["anchor_boxes", "anchor_scores"]),
        ("selfie_segmentation", ["read as a 256×256 mask", "labelled 'selfie' by labels.txt"], ["mask"]),
        ("hand_landmark_lite", ["read as 21 3-D points, drawn over the input"], ["keypoints", "scalar", "scalar", "keypoints"]),
    ],
)
def test_real_models_get_their_view_with_the_assumption_stated(name, says, kinds):
    at = app(real_workspace(name), page="run")
    run_on_run_page(at)
    text = page_text(at)
    for sentence in says:
        assert sentence in text
    assert text.count("Assumed:") >= 1
    assert "classes" not in texts(at.main.caption) and "top 5" not in text
    # One selector per output (its readings and its values), set to what was guessed.
    assert readings(at) == kinds
    assert charts(at)  # drawn


def test_the_image_classifier_shows_top_classes_with_labels_and_the_ssd_detector_boxes():
    ws = fixed("image-size")
    at = app(ws, page="run")
    run_on_run_page(at)
    assert readings(at) == ["classification"]
    assert "labels.txt names 10 classes" in page_text(at)
    (bars,) = charts(at)
    assert bars["data"][0]["type"] == "bar" and any(":" in y for y in bars["data"][0]["y"])

    data = (FIXTURES / "ssd_detector.tflite").read_bytes()
    ws = Workspace.open("ssd_detector.tflite", data)
    x = np.zeros((1, 64, 64, 3), np.float32)
    x[0, 40:, 40:, 2] = 1.0
    ws.set_feed(Feed({ws.inputs[0].name: x}), "test")
    at = app(ws, page="run")
    run_on_run_page(at)
    assert readings(at) == ["detections"] * 4
    assert "uses TFLite_Detection_PostProcess" in page_text(at)
    (picture,) = charts(at)  # the boxes once, over the input; the other three are tables
    assert picture["layout"]["shapes"] and "blue thing" in picture["layout"]["annotations"][0]["text"]
    # Boxes in fractions (an anchor reaching past the edge included) are scaled to the 64×64 input.
    assert all(shape["x0"] >= 28 and shape["y0"] >= 28 for shape in picture["layout"]["shapes"])


def test_another_reading_can_be_chosen_and_a_new_run_goes_back_to_the_guess():
    ws = real_workspace("face_detection_short_range")
    at = app(ws, page="run")
    run_on_run_page(at)
    at.selectbox(key="view-1").set_value("array").run()
    assert not at.exception
    assert "Chosen: shown as values" in page_text(at)
    assert at.selectbox(key="view-1").value == "array"
    assert at.dataframe  # the slice explorer's table
    at.selectbox(key="view-0").set_value("values").run()
    assert not at.exception and len(at.dataframe) == 2
    assert at.get("download_button")  # the download goes with the values
    run_on_run_page(at)
    assert readings(at) == ["anchor_boxes", "anchor_scores"]


def test_per_sample_outputs_are_not_classes_on_the_page():
    from lite_debug.records import OutputTensor, RunResult

    ws = add_float()
    ws.set_feed(Feed({"x": np.zeros((4, 4), np.float32)}), source="test")  # four samples
    v = np.array([0.5, 1.5, -2.0, 3.0], np.float32)
    ws.result = RunResult(status="ok", outputs=(OutputTensor("score", 0, v, v),), invoke_ms=0.1, total_ms=1.0)
    at = app(ws, page="run")
    assert not at.exception
    assert "for each of 4 samples, not as classes" in page_text(at)
    assert readings(at) == ["per_sample"]


def test_outputs_the_page_could_not_show_each_show_values_or_a_sentence():
    from lite_debug.records import OutputTensor, RunResult

    def o(values, name, i):
        a = np.asarray(values)
        return OutputTensor(name, i, a, a)

    outputs = (
        o(np.zeros((4, 0), np.float32), "empty", 0),
        o(np.array([1.0, 2.0], np.float32), "same", 1),
        o(np.array([3.0, 4.0], np.float32), "same", 2),
        o(np.array([[1 + 2j, 3 - 1j]], np.complex64), "cplx", 3),
        o(np.array([1.0, 2.0, 3.0], np.float32), "cut\x00here", 4),
        o(np.array(["a", "b"]), "words", 5),
        o(np.array([[9.0, 8.0]], np.float32), "**bold** :red[x] <b>hi</b> [link](http://x)", 6),
    )
    ws = add_float()
    ws.result = RunResult(status="ok", outputs=outputs, invoke_ms=0.1, total_ms=1.0)
    at = app(ws, page="run")
    assert not at.exception
    text = page_text(at)
    assert "holds no values (shape [4, 0])" in text
    assert "complex values shown as their magnitude" in text
    assert "cut\\x00here" in text  # written out, not cut at the NUL
    assert "is not numbers" in text
    # Both outputs named 'same' are shown, each with its own widgets.
    assert text.count("#### same") == 2
    keys = {str(sb.key) for sb in at.selectbox}
    for i in range(7):  # every output's values, each with its own keys
        if f"view-{i}" in keys and "values (table)" in at.selectbox(key=f"view-{i}").options:
            at.selectbox(key=f"view-{i}").set_value("values").run()
    assert not at.exception
    assert {b.key for b in at.get("download_button")} >= {f"download-{i}" for i in range(7)}
    # A name from the file is text: every Markdown mark in it is escaped.
    from pages._ui import md

    source = "\n".join(e.value for e in at.main.markdown)
    assert "#### " + md("**bold** :red[x] <b>hi</b> [link](http:") in source
    tables = [d.value for d in at.dataframe]
    assert any("(1+2j)" in str(t.values) for t in tables)  # the complex values as text


def test_before_a_run_the_page_shows_the_input_as_a_picture():
    at = app(real_workspace("selfie_segmentation"), page="run")
    assert "Not run yet." in texts(at.main.caption)
    (fig,) = charts(at)
    assert fig["data"][0]["type"] == "image" and fig["data"][0]["source"].startswith("data:image/png")
    assert fig["layout"]["title"]["text"].startswith("The input input_1")
    run_on_run_page(at)
    titles = [f["layout"]["title"]["text"] for f in charts(at)]
    assert titles == ["activation_10: selfie over the input (256×256)"]  # the preview gives way to the output


def test_the_warm_up_takes_the_servers_long_lived_objects_out_of_the_collectors_sight():
    """Streamlit collects garbage after every script run: with the engine and plotly imported,
    a full collection walked 125,000 objects (120 ms, in which the server sent the browser
    nothing). After the warm-up, those objects are frozen and a collection sees only what
    came after."""
    import gc

    from pages._ui import load_and_freeze

    gc.unfreeze()  # an AppTest of this process may have run the warm-up already
    assert gc.get_freeze_count() == 0
    load_and_freeze()
    import plotly.graph_objects  # noqa: F401 - imported by the warm-up

    assert gc.get_freeze_count() > 50_000
    seen = {id(o) for o in gc.get_objects()}
    assert id(plotly.graph_objects.Figure) not in seen  # a class the warm-up imported: frozen


def test_a_model_refused_before_any_worker_loads_it_says_not_run_rather_than_does_not_load():
    """The damaged segmenter (a RESHAPE from float32 into uint16) is refused before it is sent to
    a worker: the sidebar and the diagnosis say it is not run here, not that the runtime fails."""
    from lite_debug.running import WorkerPool

    data = (FIXTURES / "fuzz" / "93745a7c06a1153d.tflite").read_bytes()
    ws = Workspace.open("damaged_segmenter.tflite", data)
    pool = WorkerPool(size=1)
    try:
        ws.check = pool.check_model(ws.model_bytes, ws.spec, timeout=60)
    finally:
        pool.close()
    assert ws.check.status == "skipped"
    at = app(ws, "diagnose")
    assert not at.exception
    side = texts(at.sidebar.caption)
    assert "The model is not run here" in side and "does not load" not in side
    assert "The model is not loaded in a worker: Not run: op 4 (RESHAPE)" in shown(texts(at.main.error))
    # With data that fits, the one error left is the model's: the pages say so, not that the
    # interpreter will refuse the data.
    ws.set_feed(Feed({ws.inputs[0].name: np.zeros((1, 64, 64, 3), np.float32)}), source="test")
    assert [e.input_index for e in ws.errors] == [-1]
    for page in ("run", "layers", "compare"):
        at = app(ws, page)
        assert not at.exception
        said = texts(at.warning)
        assert "1 error(s) remain in the diagnosis, about the model itself: it will probably not run" in said, page
        assert "refuse the data" not in said, page
