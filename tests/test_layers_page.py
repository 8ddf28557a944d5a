"""The Layers page under AppTest: it traces the session's data (as fixed) in the dashboard's
pool, shows the findings, the figures by depth and the table, a tensor's values, and a Model
Explorer download; and it keeps the trace for the data it was made with."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lite_debug.records import Feed
from lite_debug.session import Workspace
from test_trace import FACE, PHOTO, made, need_real  # noqa: F401  (the session's models)
from ui_helpers import app, keep_the_frame, reset_pool, texts

NAN_DATA = np.array([[0.0, 0.0, 0.25, 0.25, 1.0, 1.0, 2.0, 2.0]], np.float32)


@pytest.fixture(autouse=True)
def _frame(monkeypatch):
    keep_the_frame(monkeypatch)


@pytest.fixture(scope="module", autouse=True)
def _close_pool_at_the_end():
    yield
    reset_pool()


def nan_workspace(made, x=NAN_DATA) -> Workspace:  # noqa: F811
    ws = Workspace.open("nan_inf.tflite", made["nan_inf"])
    ws.set_feed(Feed({ws.inputs[0].name: x}), source="test")
    return ws


def charts(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def test_opening_the_page_traces_and_shows_the_first_nan(made):  # noqa: F811
    at = app(nan_workspace(made), page="layers", timeout=120)
    assert not at.exception
    assert at.main.title[0].value == "Layers"
    errors = texts(at.main.error)
    assert "first, in execution order, that holds NaN" in errors and "SQRT" in errors
    assert "infinite value" in errors and "LOG" in errors
    metrics = {m.label: m.value for m in at.main.metric}
    assert metrics["Findings"] == "2" and metrics["Outputs as in the plain run"] == "yes"
    table = at.dataframe[0].value
    finding = dict(zip(table["op"], table["finding"]))
    assert any(op.endswith("SQRT") and kinds == "nan" for op, kinds in finding.items())
    titles = [c["layout"]["title"]["text"] for c in charts(at)]
    assert any(t.startswith("Range of every tensor") for t in titles)
    # The first NaN tensor is shown: its values were fetched and drawn, its place in the graph too.
    assert "Tensor" in texts(at.main.markdown) and at.get("graphviz_chart")
    assert len(charts(at)) > 2
    assert at.get("download_button")


def test_the_trace_is_kept_for_the_data_and_made_again_for_new_data(made):  # noqa: F811
    ws = nan_workspace(made)
    at = app(ws, page="layers", timeout=120)
    kept = at.session_state["layer-traces"]
    assert len(kept) == 1
    assert at.button(key="layers-trace").label == "Trace again"  # the page traced as it opened
    first = next(iter(kept.values()))
    at.run()  # a rerun: the same trace, not a new one
    assert next(iter(at.session_state["layer-traces"].values())) is first
    ws.set_feed(Feed({ws.inputs[0].name: np.full((1, 8), 3.0, np.float32)}), source="test")
    at.run()
    assert len(at.session_state["layer-traces"]) == 2
    assert "No NaN, no Inf" in texts(at.main.success)


def test_with_errors_left_it_waits_for_a_click(made):  # noqa: F811
    ws = Workspace.open("nan_inf.tflite", made["nan_inf"])
    ws.set_feed(Feed({ws.inputs[0].name: np.zeros((8,), np.float32)}), source="test")
    assert ws.errors
    at = app(ws, page="layers", timeout=120)
    assert not at.exception and "fix them first" in texts(at.main.warning)
    assert "layer-traces" not in at.session_state or not at.session_state["layer-traces"]
    assert at.button(key="layers-trace").label == "Trace the layers"
    at.button(key="layers-trace").click().run()
    assert not at.exception and at.main.error  # the interpreter's refusal, explained


def test_without_data_it_points_to_the_start_page(made):  # noqa: F811
    ws = Workspace.open("nan_inf.tflite", made["nan_inf"])
    at = app(ws, page="layers")
    assert not at.exception and "no data" in texts(at.main.warning)


def test_the_real_model_traces_clean_and_offers_model_explorer_data():
    need_real()
    ws = Workspace.open(FACE.name, FACE.read_bytes())
    ws.load_files([(PHOTO.name, PHOTO.read_bytes())])
    ws.apply_all()
    at = app(ws, page="layers", timeout=180)
    assert not at.exception
    assert "No NaN, no Inf" in texts(at.main.success)
    assert at.dataframe[0].value.shape[0] == 165
    assert at.main.metric[0].value == "165 of 165"
    at.text_input(key="layers-filter").input("RELU").run()
    assert set(at.dataframe[0].value["op"].str.split().str[-1]) == {"RELU"}


def test_a_batch_is_traced_one_sample_at_a_time(made):  # noqa: F811
    ws = Workspace.open("nan_inf.tflite", made["nan_inf"])
    ws.set_feed(Feed({ws.inputs[0].name: np.zeros((5, 8), np.float32)}), source="test")
    assert ws.only_the_batch_left
    at = app(ws, page="layers", timeout=120)
    assert not at.exception and "batch of 5 samples" in texts(at.main.info)
    assert "layer-traces" not in at.session_state or not at.session_state["layer-traces"]


def test_the_range_band_is_one_legend_entry_named_for_both_edges():
    from lite_debug.layer_figures import ranges_by_depth
    from lite_debug.records import Quantization
    from lite_debug.trace import TensorStats, TracedTensor

    stats = TensorStats(count=4, min=-1.0, max=2.0, mean=0.5, std=1.0, nan=0, inf=0, zeros=0.0)
    tensors = [TracedTensor(position=i, index=i, name=f"t{i}", op_index=i, op="RELU", shape=(1, 4), dtype="float32",
                            quantization=Quantization(), stats=stats) for i in range(3)]
    shown = [t.name for t in ranges_by_depth(tensors).data if t.showlegend is not False]
    assert shown == ["min to max", "mean"]
