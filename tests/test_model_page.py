"""The Model page under AppTest: op list, graph view, tensors and metadata, on real models;
strings from the model shown as text, never as Markdown."""

from __future__ import annotations

import pytest

import crafted
from lite_debug.session import Workspace
from test_graph import build_stateful, keras_model
from test_browser import browser, open_app, server  # noqa: F401  (fixtures for the browser test)
from test_inspection import ADD_FLOAT, REAL, need_real_models
from test_metadata import afile, model_metadata, subgraph, tensor
from ui_helpers import app, keep_the_frame, texts


@pytest.fixture(autouse=True)
def _frame(monkeypatch):
    keep_the_frame(monkeypatch)


def graphviz(at) -> list[str]:
    return [el.proto.spec for el in at.get("graphviz_chart")]


def frames(at) -> list:
    return [el.value for el in at.main.dataframe]


def markdown_text(at) -> str:
    """Everything the page sent through Markdown: titles, headers, captions, callouts, markdown."""
    parts = [at.main.title, at.main.header, at.main.subheader, at.main.caption, at.main.markdown,
             at.main.info, at.main.warning, at.main.error, at.main.success]
    return "\n".join(texts(p) for p in parts)


@pytest.fixture(scope="module")
def hand():
    need_real_models()
    return Workspace.open("hand_landmark_lite.tflite", (REAL / "hand_landmark_lite.tflite").read_bytes())


def test_the_op_list_graph_and_metadata_of_a_real_model(hand):
    at = app(hand, page="model")
    assert not at.exception
    sub = hand.spec.graph.main
    tables = frames(at)
    ops = next(df for df in tables if "output names" in df.columns)
    assert len(ops) == len(sub.operators) == 167
    assert list(ops["op"]) == [o.name for o in sub.operators]
    tensors = next(df for df in tables if "read by" in df.columns and "quantization" in df.columns)
    assert len(tensors) == len(sub.tensors)
    # the graph view: the first operator that computes (0 and 1 dequantize float16 weights)
    # and the operators one step around it
    start = sub.first_computing_operator()
    assert start == 2 and sub.operators[2].name == "CONV_2D"
    (dot,) = graphviz(at)
    assert f'op{start} [shape=box, style="filled,bold"' in dot and f"#{start} CONV_2D" in dot
    around, _ = sub.neighbourhood(op=start, hops=1)
    # drawn: every operator around it but the DEQUANTIZE ops of weights, counted in their reader's box
    weights = {j for j in around if sub.operators[j].name == "DEQUANTIZE" and all(sub.is_weight(t) for t in sub.operators[j].outputs)}
    assert weights and all(f"op{j} [" in dot for j in set(around) - weights)
    assert all(f"op{j} [" not in dot for j in weights) and "2 weight tensors" in dot
    # metadata: normalisation, labels file, description
    shown = texts(at.main.info)
    assert "mean [0, 0, 0] and std [255, 255, 255]" in shown and "[0, 255] becomes [0, 1]" in shown
    files = next(df for df in tables if "attached to" in df.columns)
    assert list(files["name"]) == ["handedness.txt"] and list(files["packed in the model"]) == ["11 bytes"]
    about = next(df for df in tables if list(df.columns) == ["field", "value"])
    assert "HandLandmarkDetector" in list(about["value"])
    assert not at.main.warning  # not stateful, nothing custom


def test_filtering_the_op_list_and_centring_the_graph(hand):
    at = app(hand, page="model")
    at.text_input(key="op-filter").set_value("DEPTHWISE").run()
    ops = next(df for df in frames(at) if "output names" in df.columns)
    sub = hand.spec.graph.main

    def matches(o) -> bool:
        return "depthwise" in " ".join([o.name, *(sub.tensors[t].name for t in (*o.inputs, *o.outputs) if t >= 0)]).lower()

    assert list(ops["#"]) == [o.index for o in sub.operators if matches(o)]
    assert (ops["op"] == "DEPTHWISE_CONV_2D").sum() == 16 and len(ops) < len(sub.operators)
    j = int(ops[ops["op"] == "DEPTHWISE_CONV_2D"]["#"].iloc[3])
    at.selectbox(key="graph-op").set_value(j).run()
    at.slider(key="graph-hops").set_value(2).run()
    assert not at.exception
    (dot,) = graphviz(at)
    assert f'op{j} [shape=box, style="filled,bold"' in dot
    around, _ = sub.neighbourhood(op=j, hops=2)
    assert all(f"op{k} [" in dot for k in around if sub.operators[k].name != "DEQUANTIZE")
    assert "weight tensor" in dot
    # centred on a tensor instead: the model's input
    at.radio(key="graph-centre").set_value("tensor").run()
    at.selectbox(key="graph-tensor").set_value(hand.spec.graph.main.inputs[0]).run()
    (dot,) = graphviz(at)
    assert f't{hand.spec.graph.main.inputs[0]} [shape=ellipse, style="filled,bold"' in dot


def test_custom_ops_of_a_real_model_are_listed_as_text():
    need_real_models()
    ws = Workspace.open("face_landmark_with_attention.tflite", (REAL / "face_landmark_with_attention.tflite").read_bytes())
    at = app(ws, page="model")
    assert not at.exception
    assert "3 custom op(s), 3 of them unknown to this runtime" in texts(at.main.warning)
    listed = next(df for df in frames(at) if "what it needs" in df.columns)
    assert set(listed["op"]) == {"TransformLandmarks", "Landmarks2TransformMatrix", "TransformTensorBilinear"}


HOSTILE = ":red[alarm] **bold** <b>html</b> [link](javascript:alert(1)) $x^2$ :material/home:"


def test_strings_from_the_model_never_reach_markdown():
    model = crafted.unpack_model(ADD_FLOAT.read_bytes())
    model.subgraphs[0].tensors[0].name = HOSTILE.encode()
    model.description = HOSTILE.encode()
    data = crafted.pack_model(model)
    meta = model_metadata(
        [subgraph([tensor(HOSTILE, HOSTILE)], [tensor("y", files=[afile(HOSTILE, 2, HOSTILE)])])],
        name=HOSTILE, description=HOSTILE, author=HOSTILE,
    )
    ws = Workspace.open(HOSTILE, crafted.add_metadata(data, meta))
    at = app(ws, page="model")
    assert not at.exception
    assert HOSTILE not in markdown_text(at) and "alarm" not in markdown_text(at)
    assert HOSTILE in texts(at.main.text)  # the file name and the description, as text
    cells = "\n".join(df.to_string() for df in frames(at))
    assert cells.count("alarm") >= 5  # tensor name, metadata name, description, author, file


def test_a_stateful_model_says_so():
    tf = pytest.importorskip("tensorflow")
    ws = Workspace.open("counter.tflite", build_stateful(tf))
    at = app(ws, page="model")
    assert not at.exception
    warning = texts(at.main.warning)
    assert "keeps state between runs" in warning and "VAR_HANDLE" in warning


def test_a_model_with_no_metadata_and_a_corrupt_graph():
    ws = Workspace.open("add.tflite", ADD_FLOAT.read_bytes())
    at = app(ws, page="model")
    assert not at.exception
    assert "no TFLite Support metadata" in texts(at.main.caption)
    base = ADD_FLOAT.read_bytes()
    field = crafted.field_position(base, [("vector", 8, 0), ("field", 10, 0)])
    aliased = crafted.alias_vector(base, field, 1000, crafted.operator_table(0, (0, 1), (2,)))
    at = app(Workspace.open("aliased.tflite", aliased), page="model")
    assert not at.exception
    assert "naming only 1 distinct table" in texts(at.main.error)


def test_the_normalisation_in_the_graph_is_shown():
    tf = pytest.importorskip("tensorflow")
    rescale = keras_model(tf, lambda k, x: k.layers.Conv2D(4, 3, padding="same")(k.layers.Rescaling(1 / 127.5, offset=-1)(x)))
    at = app(Workspace.open("rescale.tflite", rescale), page="model")
    assert not at.exception
    assert "MUL → ADD" in texts(at.main.info) and "expects data in [0, 255]" in texts(at.main.info)
    at = app(Workspace.from_example("image-size"), page="model")
    assert "Neither the graph" in texts(at.main.caption)


# -- in Chromium --------------------------------------------------------------------------------------


@pytest.mark.browser
def test_the_graph_view_renders_offline_in_chromium(open_app):  # noqa: F811  (test_browser's fixture)
    # The browser fixtures of test_browser.py: a `streamlit run` server and Debian's Chromium.
    need_real_models()
    from test_browser import settle, shot

    page = open_app()
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="Model (.tflite), or a bug-report archive")
    uploader.locator("input[type=file]").set_input_files(str(REAL / "hand_landmark_lite.tflite"))
    page.get_by_test_id("stSidebar").get_by_text("hand_landmark_lite.tflite").first.wait_for()
    settle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Model").click()
    page.get_by_role("heading", name="Model").first.wait_for()
    page.get_by_role("tab", name="Graph").click()
    # d3-graphviz lays the DOT out in the page with its bundled WASM: nothing fetched
    chart = page.locator("[data-testid=stGraphVizChart]:visible svg")
    chart.locator("g.node").first.wait_for()
    texts_in_svg = chart.locator("text").all_text_contents()
    assert "#2 CONV_2D" in texts_in_svg and "input_1" in texts_in_svg
    assert chart.locator("g.edge").count() >= 2
    shot(page, "model-page-graph", show=chart)


def test_a_model_of_10000_tensors_sends_a_bounded_table():
    ws = Workspace.open("chain.tflite", crafted.chain_model(5000))
    at = app(ws, page="model", timeout=120)
    assert not at.exception
    ops = next(df for df in frames(at) if "output names" in df.columns)
    tensors = next(df for df in frames(at) if "quantization" in df.columns)
    assert len(ops) == 5000 and len(tensors) == 5000
    assert "10,001 of 10,001 tensors (the first 5,000 shown" in texts(at.main.caption)
    # more operators than a select box holds: the centre is picked by number
    at.number_input(key="graph-op").set_value(4999).run()
    (dot,) = graphviz(at)
    assert 'op4999 [shape=box, style="filled,bold"' in dot and "(output)" in dot
