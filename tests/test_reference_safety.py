"""A Keras or SavedModel reference may not read or write the server's files, reach the network or run
code of its own: hostile files are refused, with a sentence, before any of their ops run, and
benign ones still load and compare.

The SavedModels are built once per session in a subprocess (TensorFlow is never imported in the
test process): benign ones (a variable with a cond and a loop, and its conversion; a lookup
table from its own asset file that also prints to stderr; a TF1 ``simple_save`` model, whose
loader runs the saver's restore) and hostile ones (a signature that returns ``tf.io.read_file``,
one that ``tf.io.write_file``s, the read hidden in a ``tf.cond`` branch and in a
``tf.while_loop`` body, a ``tf.print`` to a file, a signature edited to call the saver's own save
function with a path of its choosing, a table whose asset is an absolute path and one whose
initialiser reads a constant path, a TF1 graph that reads a file, a TF1 restore of a constant path,
an object graph naming the saver's save function). The file they read is a FIFO:
a thread waits to write into it, so a model that opened it would be seen doing so. The Keras
files are the session's ``base.keras`` and ``base.h5`` with their config edited here.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from lite_debug.reference_safety import DENIED, denied
from lite_debug.running import Limits, TensorFlowWorker

ROOT = Path(__file__).resolve().parent.parent

RECIPES = textwrap.dedent(
    r'''
    import json
    import os
    import shutil
    import sys
    import zipfile
    from pathlib import Path

    import keras
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    out = Path(sys.argv[1]).resolve()
    secret = str(out / "secret")        # a FIFO the test makes: opening it for reading would block
    target = str(out / "written")       # what the writing models would create
    X = tf.TensorSpec([None, 4], tf.float32)


    def save(module, name, fn):
        tf.saved_model.save(module, str(out / name), signatures={"serving_default": fn})


    def zipped(name):
        with zipfile.ZipFile(out / f"{name}.zip", "w") as z:
            for root, _, files in os.walk(out / name):
                for f in files:
                    full = Path(root) / f
                    z.write(full, f"{name}/{full.relative_to(out / name)}")


    def edit(name, change):
        pb = out / name / "saved_model.pb"
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString(pb.read_bytes())
        change(proto.meta_graphs[0])
        pb.write_bytes(proto.SerializeToString())


    class Scale(tf.Module):
        """Benign: a variable, a cond and a loop."""

        def __init__(self):
            super().__init__()
            self.v = tf.Variable(2.0)

        @tf.function(input_signature=[X])
        def __call__(self, x):
            y = tf.cond(tf.reduce_sum(x) > 0, lambda: x * self.v, lambda: x - self.v)
            _, y = tf.while_loop(lambda i, t: i < 2, lambda i, t: (i + 1, t + 1.0), [tf.constant(0), y])
            return {"y": y}


    m = Scale()
    save(m, "scale", m.__call__)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m)
    (out / "scale.tflite").write_bytes(converter.convert())


    class Table(tf.Module):
        """Benign: a lookup table initialised from the model's own asset file, and a print to stderr."""

        def __init__(self, vocab):
            super().__init__()
            init = tf.lookup.TextFileInitializer(vocab, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                                 tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
            self.table = tf.lookup.StaticHashTable(init, -1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, words):
            tf.print("a reference may print to stderr:", words, output_stream=sys.stderr)
            return {"ids": self.table.lookup(words)}


    (out / "vocab.txt").write_text("zero\none\ntwo\n")
    m = Table(str(out / "vocab.txt"))
    save(m, "table", m.__call__)
    for name in ("table_absolute_asset", "table_const_path"):
        shutil.copytree(out / "table", out / name)
    edit("table_absolute_asset", lambda meta: setattr(meta.asset_file_def[0], "filename", secret))


    def const_path(meta):
        """The initialiser's file name from a constant instead of its asset argument."""
        init = next(f for f in meta.graph_def.library.function if "initializer" in f.signature.name)
        n = init.node_def.add()
        n.name, n.op = "evil_path", "Const"
        n.attr["dtype"].type = types_pb2.DT_STRING
        n.attr["value"].tensor.dtype = types_pb2.DT_STRING
        n.attr["value"].tensor.string_val.append(secret.encode())
        table_init = next(n for n in init.node_def if n.op == "InitializeTableFromTextFileV2")
        table_init.input[1] = "evil_path:output:0"


    edit("table_const_path", const_path)


    class Reads(tf.Module):
        @tf.function(input_signature=[X])
        def __call__(self, x):
            return {"y": x, "secret": tf.io.read_file(secret)}


    class Writes(tf.Module):
        @tf.function(input_signature=[X])
        def __call__(self, x):
            tf.io.write_file(target, "pwned")
            return {"y": x}


    class InCond(tf.Module):
        @tf.function(input_signature=[X])
        def __call__(self, x):
            got = tf.cond(tf.reduce_sum(x) > -1e30, lambda: tf.io.read_file(secret), lambda: tf.constant(""))
            return {"y": x, "secret": got}


    class InLoop(tf.Module):
        @tf.function(input_signature=[X])
        def __call__(self, x):
            _, got = tf.while_loop(lambda i, s: i < 1, lambda i, s: (i + 1, tf.io.read_file(secret)),
                                   [tf.constant(0), tf.constant("")])
            return {"y": x, "secret": got}


    class PrintsToFile(tf.Module):
        @tf.function(input_signature=[X])
        def __call__(self, x):
            tf.print(x, output_stream="file://" + target)
            return {"y": x}


    for cls in (Reads, Writes, InCond, InLoop, PrintsToFile):
        m = cls()
        save(m, cls.__name__.lower(), m.__call__)


    def call_the_saver(meta):
        """The signature's function calls the saver's save function with a path of its own."""
        lib = {f.signature.name: f for f in meta.graph_def.library.function}
        saver = next(n for n in lib if "traced_save" in n)
        wrapper = next(f for n, f in lib.items() if "signature_wrapper" in n)
        inner = lib[next(n.attr["f"].func.name for n in wrapper.node_def if n.op == "StatefulPartitionedCall")]
        var = next(a.name for a in inner.signature.input_arg if a.type == types_pb2.DT_RESOURCE)
        for name, value in (("evil_prefix", target), ("evil_const", "")):
            n = inner.node_def.add()
            n.name, n.op = name, "Const"
            n.attr["dtype"].type = types_pb2.DT_STRING
            n.attr["value"].tensor.dtype = types_pb2.DT_STRING
            n.attr["value"].tensor.string_val.append(value.encode())
        call = inner.node_def.add()
        call.name, call.op = "evil_save", "StatefulPartitionedCall"
        call.input.extend(["evil_prefix:output:0", var, "evil_const:output:0"])
        call.attr["f"].func.name = saver
        call.attr["Tin"].list.type.extend([types_pb2.DT_STRING, types_pb2.DT_RESOURCE, types_pb2.DT_STRING])
        call.attr["Tout"].list.type.extend([types_pb2.DT_STRING])
        for k in ("config", "config_proto", "executor_type"):
            call.attr[k].s = b""
        returned = inner.ret[next(iter(inner.ret))].split(":")[0]
        next(n for n in inner.node_def if n.name == returned).input.append("^evil_save")


    shutil.copytree(out / "scale", out / "calls_the_saver")
    edit("calls_the_saver", call_the_saver)

    # A TF1 SavedModel (simple_save): the loader runs its saver's restore with its own variables/.
    for name, reads in (("tf1", False), ("tf1_reads", True)):
        with tf.Graph().as_default():
            x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
            w = tf.compat.v1.get_variable("w", initializer=tf.eye(4) * 3.0)
            outputs = {"y": tf.matmul(x, w, name="y")}
            if reads:
                outputs["secret"] = tf.io.read_file(secret)
            with tf.compat.v1.Session() as s:
                s.run(tf.compat.v1.global_variables_initializer())
                tf.compat.v1.saved_model.simple_save(s, str(out / name), {"x": x}, outputs)



    def restore_elsewhere(meta):
        """The TF1 restore reads a checkpoint named by a constant, not the file name the loader feeds."""
        next(n for n in meta.graph_def.node if n.op == "RestoreV2").input[0] = "save/filename/input"


    def saver_in_object_graph(meta):
        """The object graph names the saver's save function, so the loader could call it."""
        graph_objects = meta.object_graph_def
        save = next(f.signature.name for f in meta.graph_def.library.function if "traced_save" in f.signature.name)
        graph_objects.concrete_functions[save].CopyFrom(next(iter(graph_objects.concrete_functions.values())))


    for source, name, change in (("tf1", "tf1_restores_elsewhere", restore_elsewhere),
                                 ("scale", "saver_in_object_graph", saver_in_object_graph)):
        shutil.copytree(out / source, out / name)
        edit(name, change)

    for name in ("scale", "table", "table_absolute_asset", "table_const_path", "reads", "writes", "incond", "inloop",
                 "printstofile", "calls_the_saver", "tf1", "tf1_reads", "tf1_restores_elsewhere",
                 "saver_in_object_graph"):
        zipped(name)

    # Keras: the files the test edits (config.json, the .h5's model_config).
    inp = keras.Input((4,), name="x")
    model = keras.Model(inp, keras.layers.Dense(2, activation="relu", name="head")(keras.layers.Dense(3, name="d1")(inp)))
    model.save(out / "base.keras")
    model.save(out / "base.h5")
    np.save(out / "x.npy", np.arange(4, dtype=np.float32).reshape(1, 4))
    # TensorFlow's op list, with each op's input and attribute names, for the deny-list test.
    from tensorflow.core.framework import op_def_pb2  # noqa: E402
    from tensorflow.python.client import pywrap_tf_session  # noqa: E402

    listing = op_def_pb2.OpList()
    listing.ParseFromString(pywrap_tf_session.TF_GetBuffer(pywrap_tf_session.TF_GetAllOpList()))
    (out / "ops.json").write_text(json.dumps(
        {o.name: [a.name for a in o.input_arg] + [a.name for a in o.attr] for o in listing.op}))
    '''
)


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("reference-safety")
    done = subprocess.run(
        [sys.executable, "-c", RECIPES, str(directory)], capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
    )
    if done.returncode != 0:
        raise RuntimeError(f"Building the test models failed:\n{done.stderr[-3000:]}")
    os.mkfifo(directory / "secret")
    return directory


@pytest.fixture(scope="module")
def worker():
    w = TensorFlowWorker(Limits())
    yield w
    w.close()


@contextmanager
def watched(fifo: Path):
    """Yields a list that holds True once anything opened ``fifo`` for reading while the block ran
    (a thread waits to open it for writing, which only returns when a reader has opened it, and
    then writes a secret into it)."""
    opened: list[bool] = []

    def writer() -> None:
        fd = os.open(fifo, os.O_WRONLY)
        opened.append(True)
        try:
            os.write(fd, b"SECRET-of-the-server\n")
        except OSError:
            pass
        os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    seen: list[bool] = []
    try:
        yield seen
    finally:
        seen.extend(opened)
        if not opened:  # release the writer: open the FIFO for reading ourselves
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            thread.join(10)
            os.close(fd)
        thread.join(10)


def cli(*args) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-m", "lite_debug", "compare", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return done.returncode, done.stdout, done.stderr


# -- SavedModels -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, says", [
    ("reads", ["the node 'ReadFile'", "runs the op 'ReadFile', which reads files"]),
    ("writes", ["runs the op 'WriteFile', which writes files"]),
    ("incond", ["of its function 'cond_true", "'ReadFile'"]),
    ("inloop", ["of its function 'while_body", "'ReadFile'"]),
    ("printstofile", ["'PrintV2' printing to 'file://", "writes a file"]),
    ("calls_the_saver", ["runs the op 'SaveV2'", "a saver function, but the function '__inference___call__"]),
    ("table_absolute_asset", ["names the asset file", "leaves the model's assets/ folder"]),
    ("table_const_path", ["runs the op 'InitializeTableFromTextFileV2', which reads files"]),
    ("tf1_reads", ["of its top-level graph runs the op 'ReadFile'"]),
    ("tf1_restores_elsewhere", ["the node 'save/RestoreV2' of its top-level graph runs the op 'RestoreV2'"]),
    ("saver_in_object_graph", ["runs the op 'SaveV2'", "a saver function, but the object graph calls it too"]),
])
def test_hostile_saved_models_are_refused_before_any_op_runs(built, worker, name, says):
    with watched(built / "secret") as opened:
        failed, loaded = worker.load_reference((built / f"{name}.zip").read_bytes(), "saved_model")
    assert loaded is None and failed is not None
    assert failed.error_type == "RefusedReference", failed.error_message
    assert failed.error_message.startswith("The SavedModel was not loaded: ")
    for s in says:
        assert s in failed.error_message
    assert not opened, "the model opened the file it reads"
    assert not list(built.glob("written*")), "the model wrote its file"


def test_cli_a_saved_model_that_reads_a_file_exits_2_with_a_sentence(built):
    with watched(built / "secret") as opened:
        code, out, err = cli(built / "reads.zip", built / "scale.tflite", built / "x.npy", "--json")
    assert code == 2, err
    error = json.loads(out)["error"]
    assert error["type"] == "ModelLoadError"
    assert error["message"].startswith("The SavedModel was not loaded: the node 'ReadFile' of its function")
    with watched(built / "secret") as opened_too:
        code, out, err = cli(built / "calls_the_saver.zip", built / "scale.tflite", built / "x.npy")
    assert code == 2 and out == ""
    assert err.startswith("lite-debug: The SavedModel was not loaded:") and "SaveV2" in err
    assert "Traceback" not in err and "SECRET" not in out + err
    assert not opened and not opened_too and not list(built.glob("written*"))


def test_the_compare_page_shows_the_refusal_as_a_sentence(built, monkeypatch):
    from lite_debug.records import Feed
    from lite_debug.session import Workspace
    from ui_helpers import app, keep_the_frame, reset_pool, texts, upload

    keep_the_frame(monkeypatch)
    ws = Workspace.open("scale.tflite", (built / "scale.tflite").read_bytes())
    ws.set_feed(Feed({ws.inputs[0].name: np.ones((1, 4), np.float32)}), source="test")
    try:
        at = app(ws, page="compare", timeout=180)
        at.radio(key="compare-kind").set_value("keras").run()
        at.file_uploader(key="compare-keras").set_value(upload("reads.zip", (built / "reads.zip").read_bytes())).run()
        with watched(built / "secret") as opened:
            at.button(key="compare-run").click().run()
    finally:
        reset_pool()
    assert not at.exception and not opened
    assert "The SavedModel was not loaded: the node 'ReadFile' of its function" in texts(at.main.error)


def test_benign_saved_models_still_load_and_compare(built, worker):
    """A variable, a cond and a loop (the saver's functions in the file); a table from the model's own
    asset file (printing to stderr); a TF1 model (the loader runs its restore with variables/)."""
    code, out, err = cli(built / "scale.zip", built / "scale.tflite", built / "x.npy")
    assert code == 0, out + err
    assert "SavedModel scale.zip, run with TensorFlow" in out and "within the tolerance" in out

    failed, loaded = worker.load_reference((built / "table.zip").read_bytes(), "saved_model")
    assert failed is None, failed.detail
    got = worker.run_reference([("words", np.array([b"one", b"two", b"zero", b"nine"], dtype=object))], ["ids"])
    assert got.ok, got.detail
    assert got.outputs[0].raw.tolist() == [1, 2, 0, -1]

    failed, loaded = worker.load_reference((built / "tf1.zip").read_bytes(), "saved_model")
    assert failed is None, failed.detail
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    got = worker.run_reference([("x", x)], ["y"])
    assert got.ok and np.array_equal(got.outputs[0].raw, x * 3.0)


def test_every_denied_op_is_a_tensorflow_op_and_every_op_naming_a_file_is_denied(built):
    """The deny list against the installed TensorFlow's op list: no typo in it, and every op with an
    input or attribute that names a file, a path, a URL or an address is denied, checked by its
    attribute, or one we read and found harmless (a new TensorFlow op fails here until reviewed)."""
    ops = json.loads((built / "ops.json").read_text())
    assert not [op for op in DENIED if op not in ops]
    pattern = re.compile(r"file|path|dir$|directory|url|uri|address|logdir|pattern|prefix|vocab|stream|descriptor"
                         r"|memory_region|server|target$|db_", re.I)
    checked_by_attribute = {"PrintV2", "DecodeProtoV2", "EncodeProto"}
    reviewed = {  # the name matched, but nothing is opened: a handle, a count, a regex, a label
        "ApproxTopK", "CTCBeamSearchDecoder", "NegTrain", "RegexFullMatch", "RegexReplace", "StaticRegexFullMatch",
        "StaticRegexReplace", "SetStatsAggregatorDataset", "ExperimentalSetStatsAggregatorDataset",
        "TensorSliceDataset", "ConvertToSparseCoreCsrWrappedCooTensor", "GetMinibatchSplitsWithPhysicalReplica",
        "GetMinibatchesInCsrWithPhysicalReplica", "GetStatsFromListOfSparseCoreCooTensors",
        "SortListOfSparseCoreCooTensors",
    }
    open_ = sorted(op for op, names in ops.items()
                   if any(pattern.search(n) for n in names) and denied(op) is None
                   and op not in checked_by_attribute | reviewed and "BoostedTrees" not in op)  # quantile "streams"
    assert open_ == []
    for op in ("ReadFile", "WriteFile", "SaveV2", "RestoreV2", "MergeV2Checkpoints", "ImmutableConst", "MatchingFiles",
               "TFRecordDataset", "WholeFileReaderV2", "ReaderReadV2", "DebugIdentityV2", "RpcClient",
               "CollectiveReduceV2", "EagerPyFunc"):
        assert denied(op), op
    for op in ("Conv2D", "MatMul", "StatefulPartitionedCall", "If", "While", "LookupTableFindV2", "HashTableV2",
               "DebugGradientIdentity", "StringFormat", "Print"):
        assert denied(op) is None, op


# -- Keras -------------------------------------------------------------------------------------------------


def edited_keras(base: Path, change) -> bytes:
    """``base.keras`` with its config.json changed by ``change(config)``."""
    src = zipfile.ZipFile(base)
    config = json.loads(src.read("config.json"))
    change(config)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for info in src.infolist():
            z.writestr(info.filename, json.dumps(config) if info.filename == "config.json" else src.read(info.filename))
    return buf.getvalue()


def edited_h5(base: Path, tmp: Path, change=None, weights=None) -> bytes:
    """``base.h5`` with its model config changed by ``change(config)`` or its weights by ``weights(file)``."""
    import h5py

    path = tmp / "edited.h5"
    shutil.copy(base, path)
    with h5py.File(path, "r+") as f:
        if change is not None:
            config = json.loads(f.attrs["model_config"])
            change(config)
            f.attrs["model_config"] = json.dumps(config)
        if weights is not None:
            weights(f)
    return path.read_bytes()


def external_kernel(secret: Path):
    """Replace the first weight dataset with one stored in ``secret``."""
    def change(f) -> None:
        import h5py

        datasets: list[str] = []
        f.visititems(lambda n, o: datasets.append(n) if isinstance(o, h5py.Dataset) else None)
        name = datasets[0]
        shape = f[name].shape
        del f[name]
        f.create_dataset(name, shape=shape, dtype="<f4", external=[(str(secret), 0, 4 * int(np.prod(shape)))])
    return change


def a_lambda(function: dict, legacy: bool = False):
    """Put a Lambda layer calling ``function`` between the input and the first Dense."""
    def change(config: dict) -> None:
        layers = config["config"]["layers"]
        dense = layers[1]
        lam = {"class_name": "Lambda", "name": "lam",
               "config": {"name": "lam", "function": function, "arguments": {}, "output_shape": None}}
        if legacy:
            lam["inbound_nodes"] = copy.deepcopy(dense["inbound_nodes"])
            dense["inbound_nodes"] = [[["lam", 0, 0, {}]]]
        else:
            lam.update(module="keras.layers", registered_name=None, inbound_nodes=copy.deepcopy(dense["inbound_nodes"]))
            dense["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["lam", 0, 0]
        layers.insert(1, lam)
    return change


def fn(module: str, name: str) -> dict:
    return {"module": module, "class_name": "function", "config": name, "registered_name": "function"}


BYTECODE = {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None}}


def first_dense(**config):
    def change(c: dict) -> None:
        c["config"]["layers"][1]["config"].update(config)
    return change


def replaced_first_dense(class_name: str, config: dict):
    def change(c: dict) -> None:
        layer = c["config"]["layers"][1]
        layer["class_name"] = class_name
        layer["config"] = config
    return change


def keras_cases(built: Path, tmp: Path) -> dict[str, tuple[bytes, str, str]]:
    base, h5, secret = built / "base.keras", built / "base.h5", built / "secret"
    return {
        # What Keras 3.15's safe mode refuses on its own too:
        "lambda bytecode": (edited_keras(base, a_lambda(BYTECODE)), "keras", "a Lambda layer"),
        "lambda naming os.system": (edited_keras(base, a_lambda(fn("os", "system"))), "keras", "a Lambda layer"),
        "lambda naming keras.utils.get_file": (edited_keras(base, a_lambda(fn("keras.utils", "get_file"))), "keras",
                                               "a Lambda layer"),
        "enable_unsafe_deserialization": (edited_keras(base, lambda c: c["config"]["layers"].insert(1, {
            "module": "keras.config", "class_name": "enable_unsafe_deserialization", "config": None,
            "registered_name": "enable_unsafe_deserialization", "name": "u", "inbound_nodes": []})), "keras",
            "enable_unsafe_deserialization"),
        "TFSMLayer": (edited_keras(base, replaced_first_dense("TFSMLayer", {
            "name": "d1", "filepath": str(built / "reads"), "call_endpoint": "serving_default"})), "keras",
            "a TFSMLayer"),
        "vocabulary file": (edited_keras(base, replaced_first_dense("StringLookup", {
            "name": "d1", "vocabulary": str(secret), "output_mode": "int"})), "keras", "a vocabulary read from"),
        "weights stored in another file": (_keras_with_weights(base, tmp, external_kernel(secret)), "keras",
                                           "a dataset stored in an external file"),
        "h5 lambda bytecode": (edited_h5(h5, tmp, a_lambda(BYTECODE, legacy=True)), "h5", "a Lambda layer"),
        "h5 weights stored in another file": (edited_h5(h5, tmp, weights=external_kernel(secret)), "h5",
                                              "a dataset stored in an external file"),
        # What Keras 3.15.1 loads and calls: an activation naming any exported keras.* function.
        "activation naming keras.utils.plot_model": (edited_keras(base, first_dense(
            activation=fn("keras.utils", "plot_model"))), "keras", "the function 'plot_model' of the module"),
        "a class from outside keras": (edited_keras(base, lambda c: c["config"]["layers"][1].update(
            module="subprocess", class_name="Popen")), "keras", "of the module 'subprocess'"),
    }


KERAS_CASES = ["lambda bytecode", "lambda naming os.system", "lambda naming keras.utils.get_file",
               "enable_unsafe_deserialization", "TFSMLayer", "vocabulary file", "weights stored in another file",
               "h5 lambda bytecode", "h5 weights stored in another file", "activation naming keras.utils.plot_model",
               "a class from outside keras"]


def _keras_with_weights(base: Path, tmp: Path, change) -> bytes:
    import h5py

    src = zipfile.ZipFile(base)
    weights = tmp / "model.weights.h5"
    weights.write_bytes(src.read("model.weights.h5"))
    with h5py.File(weights, "r+") as f:
        change(f)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for info in src.infolist():
            z.writestr(info.filename, weights.read_bytes() if info.filename == "model.weights.h5"
                       else src.read(info.filename))
    return buf.getvalue()


@pytest.mark.parametrize("case", KERAS_CASES)
def test_hostile_keras_files_are_refused_before_keras_reads_them(built, worker, tmp_path, case):
    data, kind, says = keras_cases(built, tmp_path)[case]
    with watched(built / "secret") as opened:
        failed, loaded = worker.load_reference(data, kind)
    assert loaded is None and failed is not None and failed.error_type == "RefusedReference", failed.detail
    assert failed.error_message.startswith("The Keras model was not loaded: ") and says in failed.error_message
    assert not opened, "loading the model opened the file"


def test_benign_keras_files_still_load(built, worker):
    for name, kind in (("base.keras", "keras"), ("base.h5", "h5")):
        failed, loaded = worker.load_reference((built / name).read_bytes(), kind)
        assert failed is None, failed.detail
        got = worker.run_reference([("x", np.ones((1, 4), np.float32))], [t.name for t in loaded.outputs])
        assert got.ok and got.outputs[0].raw.shape == (1, 2)
