"""The trace as Model Explorer node data, checked against the format's own rules.

Model Explorer's rules (google-ai-edge/model-explorer: ``node_data_builder.py`` for the JSON,
the TFLite flatbuffer adapter for graph and node ids, the web app's
``node_data_provider_extension_service.ts`` for how a result finds its node) are encoded in
``validate`` below, independently of ``lite_debug.model_explorer``:

- the file is strict JSON: ``{graph_id: {"results": {key: {"value": number, "bgColor"?,
  "textColor"?}}, "gradient"?: [{"stop": 0..1, "bgColor"?: colour, "textColor"?: colour}],
  "thresholds"?: [...]}}``; a gradient gives the stops 0 and 1;
- a result's key is looked up among the ``tensor_name`` of every node's outputs (the last node
  with that name wins), else taken as a node id; every key must land on the node that made the
  tensor whose value it carries;
- graph ids and node ids are the adapter's.

What the adapter says about the models used here is recorded in
``fixtures/model_explorer/adapter_graphs.json`` (made with ai-edge-model-explorer-adapter; see
``regenerate``). Where that package is installed, a test checks the record against it afresh.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

import flatbuffers
import numpy as np
import pytest

from lite_debug import inspect_model
from lite_debug._schema import schema
from lite_debug.binding import bind
from lite_debug.gallery import EXAMPLES_DIR
from lite_debug.model_explorer import GRADIENT, NONFINITE_COLOR, STATISTICS, dumps, graph_id, node_data
from lite_debug.records import Quantization
from lite_debug.running import WorkerPool
from lite_debug.session import Workspace
from lite_debug.trace import TensorStats, TraceResult, TracedTensor, trace
from lite_debug.records import RunResult

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "model_explorer" / "adapter_graphs.json"
FACE = ROOT / "tests" / "real_models" / "face_detection_short_range.tflite"
PHOTO = ROOT / "tests" / "real_models" / "grace_hopper.jpg"

_GRAPH_KEYS = {"results", "thresholds", "gradient", "hideInAggregatedStatsTable", "hideInChildrenStatsTable",
               "hideAggregatedStats", "showExpandedSummaryOnGroupNode", "showLabelCountColumnsInChildrenStatsTable"}
_COLOUR = re.compile(r"^(#[0-9a-fA-F]{6}|[a-z]+)$")


# -- the models: a real one, and gallery models with their subgraph names taken away -------------------


def _pack(model) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def unnamed(path: Path) -> bytes:
    """The model with every subgraph's name emptied (graph ids then come from signatures)."""
    fb = schema()
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(path.read_bytes(), 0))
    for sub in model.subgraphs:
        sub.name = b""
    return _pack(model)


def shared_name(data: bytes) -> bytes:
    """The model with its second op's output named as its first op's output."""
    fb = schema()
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    sub = model.subgraphs[0]
    sub.tensors[sub.operators[1].outputs[0]].name = sub.tensors[sub.operators[0].outputs[0]].name
    return _pack(model)


def models() -> dict[str, bytes]:
    found = {
        # Unnamed, two signatures on subgraphs 0 and 1: ids "decode" and "encode".
        "autoencoder_unnamed": unnamed(EXAMPLES_DIR / "autoencoder_two_signatures.tflite"),
        # Unnamed, no signature: "main".
        "two_inputs_unnamed": unnamed(EXAMPLES_DIR / "two_inputs.tflite"),
        # Two op outputs of one name: a key by name would land both values on one node.
        "two_inputs_shared_name": shared_name(unnamed(EXAMPLES_DIR / "two_inputs.tflite")),
    }
    if FACE.exists():
        found["face_detection_short_range"] = FACE.read_bytes()  # named: its subgraph's name
    return found


# -- what the adapter says (recorded) ---------------------------------------------------------------------


def adapter_graphs(data: bytes) -> list[dict]:
    """The adapter's graphs for a model, reduced to what node data depends on: each graph's id,
    and for each node its id, label and output tensor names (in node order)."""
    import ai_edge_model_explorer_adapter as adapter

    with tempfile.NamedTemporaryFile(suffix=".tflite") as fh:
        fh.write(data)
        fh.flush()
        collections = json.loads(adapter.ConvertFlatbufferDirectlyToJson(adapter.VisualizeConfig(), fh.name))
    graphs = []
    for collection in collections:
        for g in collection["subgraphs"]:
            nodes = []
            for n in g["nodes"]:
                names = []
                for out in n.get("outputsMetadata", []):
                    attrs = {a["key"]: a["value"] for a in out["attrs"]}
                    if "tensor_name" in attrs:
                        names.append([attrs["tensor_name"], int(attrs["tensor_index"])])
                nodes.append({"id": n["id"], "label": n["label"], "outputs": names})
            graphs.append({"id": g["id"], "subgraphIndex": g.get("subgraphIndex", 0), "nodes": nodes})
    return graphs


def regenerate() -> None:
    """Write the fixture from the installed adapter (``pip install ai-edge-model-explorer-adapter``)."""
    import ai_edge_model_explorer_adapter as adapter

    record = {
        "made_with": f"ai-edge-model-explorer-adapter {adapter.__version__}, ConvertFlatbufferDirectlyToJson",
        "models": {name: {"sha256": hashlib.sha256(data).hexdigest(), "graphs": adapter_graphs(data)}
                   for name, data in models().items()},
    }
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")


def recorded(name: str) -> dict:
    return json.loads(FIXTURE.read_text())["models"][name]


# -- the format's rules -----------------------------------------------------------------------------------


def strict(text: str) -> dict:
    def refuse(token: str):
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def validate(text: str, graphs: list[dict]) -> dict[tuple[str, str], str]:
    """Check node data against the format and the adapter's graphs; (graph id, key) -> the id
    of the node the key lands on, as Model Explorer's web app resolves it."""
    data = strict(text)
    assert isinstance(data, dict) and data
    by_id = {g["id"]: g for g in graphs}
    landed = {}
    for gid, gdata in data.items():
        assert gid in by_id, f"graph id {gid!r} is none of the adapter's {sorted(by_id)}"
        assert set(gdata) <= _GRAPH_KEYS and "results" in gdata
        gradient = gdata.get("gradient", [])
        if gradient:
            stops = [g["stop"] for g in gradient]
            assert all(isinstance(s, (int, float)) and 0 <= s <= 1 for s in stops)
            assert 0 in stops and 1 in stops, "the stops 0 and 1 must be given"
            for g in gradient:
                assert set(g) <= {"stop", "bgColor", "textColor"}
                assert all(_COLOUR.match(g[k]) for k in ("bgColor", "textColor") if k in g)
        # The web app's map: every node's output tensor names, the last node winning.
        tensor_to_node = {}
        node_ids = set()
        for node in by_id[gid]["nodes"]:
            node_ids.add(node["id"])
            for name, _ in node["outputs"]:
                tensor_to_node[name] = node["id"]
        for key, result in gdata["results"].items():
            assert set(result) <= {"value", "bgColor", "textColor"} and "value" in result
            v = result["value"]
            assert isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            assert all(_COLOUR.match(result[k]) for k in ("bgColor", "textColor") if k in result)
            node = tensor_to_node.get(key, key)
            assert node in node_ids, f"key {key!r} lands on no node"
            landed[(gid, key)] = node
    return landed


def check_landing(landed, graphs, trace_result: TraceResult, keys_to_tensor: dict[str, int]) -> None:
    """Each key lands on the node that outputs the tensor its value was computed from."""
    by_id = {g["id"]: g for g in graphs}
    for (gid, key), node_id in landed.items():
        node = next(n for n in by_id[gid]["nodes"] if n["id"] == node_id)
        assert keys_to_tensor[key] in [index for _, index in node["outputs"]], (key, node)


# -- the tests ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(size=1)
    yield p
    p.close()


def traced(data: bytes, pool, signature=None) -> tuple[TraceResult, object]:
    spec = inspect_model(data)
    inputs, _ = spec.io(signature)
    rng = np.random.default_rng(0)
    x = {t.name: rng.random(t.shape).astype(t.dtype) for t in inputs}
    return trace(data, spec, bind(spec, x, signature), signature, pool=pool), spec


def keys_of(result: TraceResult) -> dict[str, int]:
    """key -> tensor index, for the keys this implementation uses (names, or node ids)."""
    out = {}
    for t in result.tensors:
        out[t.name] = t.index
        if t.op_index is not None:
            out.setdefault(str(t.op_index), t.index)
    return out


def test_the_recorded_adapter_graphs_are_for_these_models():
    record = json.loads(FIXTURE.read_text())
    assert "ai-edge-model-explorer-adapter" in record["made_with"]
    if FACE.exists():
        assert record["models"]["face_detection_short_range"]["sha256"] == hashlib.sha256(FACE.read_bytes()).hexdigest()


def test_the_record_matches_the_adapter_where_it_is_installed():
    pytest.importorskip("ai_edge_model_explorer_adapter")
    for name, data in models().items():
        assert adapter_graphs(data) == recorded(name)["graphs"], name


def test_graph_ids_follow_the_adapter(pool):
    for name, data in models().items():
        spec = inspect_model(data)
        ids = [g["id"] for g in sorted(recorded(name)["graphs"], key=lambda g: g["subgraphIndex"])]
        assert [graph_id(spec, i) for i in range(len(spec.graph.subgraphs))] == ids, name
    assert ids_of("autoencoder_unnamed") == ["decode", "encode"]
    assert ids_of("two_inputs_unnamed") == ["main"]


def ids_of(name: str) -> list[str]:
    return [g["id"] for g in recorded(name)["graphs"]]


def test_node_ids_are_operator_indices_with_their_output_names():
    """What the keys rely on: op #i is node "i", and it lists the names of its outputs."""
    for name, data in models().items():
        spec = inspect_model(data)
        for graph in recorded(name)["graphs"]:
            sub = spec.graph.subgraphs[graph["subgraphIndex"]]
            nodes = {n["id"]: n for n in graph["nodes"]}
            for op in sub.operators:
                listed = nodes[str(op.index)]["outputs"]
                assert [i for _, i in listed] == list(op.outputs)
                assert [n for n, _ in listed] == [sub.tensors[i].name for i in op.outputs]


@pytest.mark.parametrize("statistic", ["max_abs", "mean", "zeros", "nan"])
def test_a_real_trace_validates_and_lands_on_its_nodes(pool, statistic):
    if not FACE.exists():
        pytest.skip("real models missing: run `python scripts/fetch_real_models.py`")
    ws = Workspace.open(FACE.name, FACE.read_bytes())
    ws.load_files([(PHOTO.name, PHOTO.read_bytes())])
    ws.apply_all()
    result = trace(ws.model_bytes, ws.spec, ws.feed, pool=pool)
    text = dumps(node_data(result, ws.spec, statistic))
    graphs = recorded("face_detection_short_range")["graphs"]
    landed = validate(text, graphs)
    check_landing(landed, graphs, result, keys_of(result))
    if statistic != "nan":  # every tensor has a finite value to show: all 165 are there
        assert len(landed) == len(result.tensors) == 165
    values = strict(text)[graphs[0]["id"]]["results"]
    first_conv = result.tensor(3)
    assert values[first_conv.name]["value"] == pytest.approx(STATISTICS[statistic](first_conv.stats))


def test_a_signature_on_an_unnamed_subgraph_goes_under_its_key(pool):
    data = models()["autoencoder_unnamed"]
    result, spec = traced(data, pool, "encode")
    assert result.ok and result.subgraph == 1
    text = dumps(node_data(result, spec))
    graphs = recorded("autoencoder_unnamed")["graphs"]
    landed = validate(text, graphs)
    assert {gid for gid, _ in landed} == {"encode"}
    check_landing(landed, graphs, result, keys_of(result))


def test_an_unnamed_model_without_signatures_is_main(pool):
    data = models()["two_inputs_unnamed"]
    result, spec = traced(data, pool)
    graphs = recorded("two_inputs_unnamed")["graphs"]
    landed = validate(dumps(node_data(result, spec)), graphs)
    assert {gid for gid, _ in landed} == {"main"}
    check_landing(landed, graphs, result, keys_of(result))


def fake(spec, values: dict[int, TensorStats]) -> TraceResult:
    sub = spec.graph.main
    tensors = []
    order = [(t, None) for t in sub.inputs] + [(t, o.index) for o in sub.operators for t in o.outputs]
    for position, (t, op) in enumerate(order):
        tensors.append(TracedTensor(position=position, index=t, name=sub.tensors[t].name, op_index=op,
                                    op="input" if op is None else sub.operators[op].name, shape=sub.tensors[t].shape,
                                    dtype=sub.tensors[t].dtype, quantization=Quantization(), stats=values.get(t)))
    return TraceResult(run=RunResult(status="ok"), tensors=tuple(tensors), outputs_equal=True)


def stats(**kw) -> TensorStats:
    base = dict(count=4, min=-1.0, max=2.0, mean=0.5, std=1.0, nan=0, inf=0, zeros=0.0)
    return TensorStats(**{**base, **kw})


def test_nan_and_inf_tensors_are_red_with_a_finite_value():
    spec = inspect_model(models()["two_inputs_unnamed"])
    sub = spec.graph.main
    a, b = sub.operators[0].outputs[0], sub.operators[1].outputs[0]
    result = fake(spec, {a: stats(nan=2, min=None, max=None, mean=None, std=None), b: stats(inf=1)})
    data = strict(dumps(node_data(result, spec)))["main"]["results"]
    assert data[sub.tensors[a].name] == {"value": 0.0, "bgColor": NONFINITE_COLOR}
    assert data[sub.tensors[b].name] == {"value": 2.0, "bgColor": NONFINITE_COLOR}
    validate(dumps(node_data(result, spec)), recorded("two_inputs_unnamed")["graphs"])


def test_a_shared_tensor_name_falls_back_to_the_node_id(pool):
    """Two tensors named alike: by name, the web app would put both values on the last node;
    by node id each lands on its own op."""
    data = models()["two_inputs_shared_name"]
    result, spec = traced(data, pool)
    sub = spec.graph.main
    first, second = sub.operators[0].outputs[0], sub.operators[1].outputs[0]
    name = sub.tensors[first].name
    assert sub.tensors[second].name == name
    text = dumps(node_data(result, spec))
    results = strict(text)["main"]["results"]
    assert name not in results and {"0", "1"} <= set(results)
    graphs = recorded("two_inputs_shared_name")["graphs"]
    landed = validate(text, graphs)
    assert landed[("main", "0")] == "0" and landed[("main", "1")] == "1"
    check_landing(landed, graphs, result, {**keys_of(result), "0": first, "1": second})


def test_the_gradient_is_the_formats():
    assert GRADIENT[0]["stop"] == 0 and GRADIENT[-1]["stop"] == 1
    assert all(_COLOUR.match(g["bgColor"]) for g in GRADIENT)


def test_unknown_statistic_and_empty_trace_are_refused():
    spec = inspect_model(models()["two_inputs_unnamed"])
    with pytest.raises(ValueError, match="colour"):
        node_data(fake(spec, {}), spec, "median")
    with pytest.raises(ValueError, match="nothing"):
        node_data(TraceResult(run=RunResult(status="error")), spec)


if __name__ == "__main__":  # python tests/test_model_explorer.py --regenerate (needs the adapter)
    if sys.argv[1:] == ["--regenerate"]:
        sys.path[:0] = [str(ROOT), os.environ.get("ADAPTER_PATH", "")]
        regenerate()
        print(f"wrote {FIXTURE}")
