"""What a Keras or SavedModel reference is checked for before TensorFlow or Keras loads it.

A reference runs in the TensorFlow worker on a file somebody uploaded; on a shared dashboard, a
stranger's file. A ``.tflite`` model cannot touch the server's files, but a SavedModel's graph
can (``ReadFile``, ``WriteFile``, ``SaveV2``, dataset readers, RPC ops, …), and its signature
can return what it read, which the Compare page then shows. A Keras config names Python
functions that Keras looks up and calls. These checks read the file's description only: nothing
in it runs, and a refusal is a ``RefusedReference`` whose sentence names what was found and where.

A SavedModel (``check_saved_model``) is refused when an op that reads or writes files, talks to
the network or runs code the graph does not hold appears in any node that can run: every node of
the top-level graph, and every function of the library (reached or not: the loader restores
them all, and a saveable's restore function runs during loading). Two exceptions keep what
``tf.saved_model.save`` writes loadable:

- the saver: save and restore ops are allowed in the top-level nodes that only the
  ``saver_def``'s save and restore nodes lead to (the restore reading the file name the loader
  feeds: the model's own ``variables/``), and in the functions only those nodes call, when the
  model is loaded by the TF2 loader (an object graph), which never calls them;
- a lookup table initialised from one of the model's own asset files: its path must come from an
  asset (a ``Placeholder`` the loader feeds, or a function argument the object graph binds to an
  asset), and every asset file name must stay inside the model's ``assets/`` folder.

A Keras model (``check_keras_config``) is refused, before ``load_model``, when its config holds a
``Lambda`` or ``TFSMLayer`` layer, a Python lambda, a reference to
``enable_unsafe_deserialization``, an object from a module outside ``keras``, or a function that
is not a Keras activation, loss, metric or op. Its HDF5 files (``check_hdf5``) are refused when
they hold a link or a dataset stored outside the file (external storage, a virtual dataset).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

__all__ = [
    "RefusedReference", "check_hdf5", "check_keras_config", "check_keras_file", "check_saved_model",
    "check_saved_model_bytes", "denied", "keras_config",
]


class RefusedReference(ValueError):
    """The reference model could read or write the server's files, reach the network or run code of
    its own when loaded or run, so it is not loaded."""


_READS = "reads files"
_WRITES = "writes files"
_NETWORK = "talks to other machines"
_CODE = "runs code the model file does not hold"

# Ops that read or write files, reach the network, or run code from outside the graph. Built from
# TensorFlow 2.21's op list, searched for every op with an input or attribute that names a file,
# a path, a URL or an address, and every op family that does I/O.
DENIED: dict[str, str] = {
    **dict.fromkeys((
        "ReadFile", "MatchingFiles", "ImmutableConst", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
        "Restore", "RestoreV2", "RestoreSlice", "DTensorRestoreV2", "LoadAndRemapMatrix", "GenerateVocabRemapping",
        "TextLineDataset", "TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset",
        "FixedLengthRecordDatasetV2", "MatchingFilesDataset", "ExperimentalMatchingFilesDataset", "CSVDataset",
        "CSVDatasetV2", "ExperimentalCSVDataset", "LMDBDataset", "ExperimentalLMDBDataset", "SqlDataset",
        "ExperimentalSqlDataset", "LoadDataset", "SnapshotDataset", "SnapshotDatasetV2", "SnapshotDatasetReader",
        "SnapshotNestedDatasetReader", "SnapshotChunkDataset", "ListSnapshotChunksDataset", "RecordInput", "Skipgram",
        "FixedUnigramCandidateSampler",
    ), _READS),
    **dict.fromkeys((
        "WriteFile", "Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints", "SaveDataset", "SaveDatasetV2",
        "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "CacheDataset", "CacheDatasetV2",
        "CreateSummaryFileWriter", "CreateSummaryDbWriter", "CalibrationStatisticsSaver", "DumpTensor",
        "FileSystemSetConfiguration",
    ), _WRITES),
    **dict.fromkeys((
        "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
        "RegisterDataset", "RegisterDatasetV2", "DistributedSave", "RemoteCall", "Send", "Recv", "_Send", "_Recv",
        "_HostSend", "_HostRecv", "DeleteRpcFutureResource",
    ), _NETWORK),
    **dict.fromkeys(("PyFunc", "PyFuncStateless", "EagerPyFunc", "DatasetFromGraph", "XlaCustomCall",
                     "XlaCustomCallV2"), _CODE),
}
# Families, by name: file readers and their ops, tfdbg's ops (debug_urls name files and gRPC
# addresses), RPC, collectives and NCCL (they talk to other workers).
_PREFIXES = (("Reader", _READS), ("Debug", _WRITES), ("Rpc", _NETWORK), ("Collective", _NETWORK),
             ("Nccl", _NETWORK), ("_Nccl", _NETWORK))
_SUFFIXES = (("Reader", _READS), ("ReaderV2", _READS))
_ALLOWED_FAMILY = {"DebugGradientIdentity", "DebugGradientRefIdentity"}  # no file or URL: gradient plumbing
_SAVE = {"Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints"}
_RESTORE = {"Restore", "RestoreV2", "RestoreSlice"}
_TABLE_FROM_FILE = {"InitializeTableFromTextFile", "InitializeTableFromTextFileV2"}
_PRINT_STREAMS = {"stderr", "stdout", "log(info)", "log(warning)", "log(error)"}
_ASSETS_COLLECTION = "saved_model_assets"  # TF1's asset collection (AssetFileDef in an Any)
_PASS_THROUGH = {"Identity", "Snapshot", "StopGradient"}  # one input, passed on as it is
_NAME_CAP = 200


def denied(op: str) -> str | None:
    """What ``op`` does that a reference may not (a phrase such as ``"reads files"``), or None.
    (``PrintV2``, ``DecodeProtoV2`` and ``EncodeProto`` depend on their attributes: ``_why``.)"""
    if op in DENIED:
        return DENIED[op]
    if op in _ALLOWED_FAMILY:
        return None
    for prefix, why in _PREFIXES:
        if op.startswith(prefix):
            return why
    for suffix, why in _SUFFIXES:
        if op.endswith(suffix):
            return why
    return None


def _shown(name: str) -> str:
    """A name from the file, quoted (repr escapes what a terminal would act on) and cut to a length."""
    return repr(name if len(name) <= _NAME_CAP else name[:_NAME_CAP] + "…")


def _tensor_node(name: str) -> str:
    """The node a graph input or a tensor name refers to (``^a`` and ``a:0`` are node ``a``)."""
    return name.lstrip("^").split(":", 1)[0]


def _tensor(name: str) -> str:
    """A top-level tensor's full name (``a`` is ``a:0``): which output matters when the loader feeds one."""
    return name if ":" in name else name + ":0"


def _refuse(what: str, cause: str) -> RefusedReference:
    return RefusedReference(
        f"The SavedModel was not loaded: {what} {cause}, and a reference model may not touch the files or the "
        "network of the machine that runs it. Export the model without that op, or compare the .tflite "
        "conversion against its own reference kernels or against expected outputs instead."
    )


def _callees(attr_values: Iterable[Any], op: str, library: dict[str, Any]) -> set[str]:
    """The library functions a node calls: its op when that names one, and every function-valued
    attribute (``f``, ``then_branch``, ``body``, ``branches``, …), with the attributes those carry."""
    out = {op} if op in library else set()
    stack = list(attr_values)
    while stack:
        value = stack.pop()
        funcs = []
        if value.HasField("func"):
            funcs.append(value.func)
        if value.HasField("list"):
            funcs.extend(value.list.func)
        for f in funcs:
            out.add(f.name)
            stack.extend(f.attr.values())
    return {name for name in out if name in library}


def _closure(start: Iterable[str], edges: Callable[[str], Iterable[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(start)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(edges(name))
    return seen


def _asset_names(meta_graph: Any) -> list[str]:
    """Every asset file name a meta graph declares (its ``asset_file_def`` and TF1's collection)."""
    names = [a.filename for a in meta_graph.asset_file_def]
    if _ASSETS_COLLECTION in meta_graph.collection_def:
        from tensorflow.core.protobuf import meta_graph_pb2

        for item in meta_graph.collection_def[_ASSETS_COLLECTION].any_list.value:
            asset = meta_graph_pb2.AssetFileDef()
            if item.Unpack(asset):
                names.append(asset.filename)
    return names


def _asset_tensors(meta_graph: Any) -> set[str]:
    """The top-level nodes the loader feeds with an asset's path."""
    nodes = {_tensor_node(a.tensor_info.name) for a in meta_graph.asset_file_def if a.tensor_info.name}
    if _ASSETS_COLLECTION in meta_graph.collection_def:
        from tensorflow.core.protobuf import meta_graph_pb2

        for item in meta_graph.collection_def[_ASSETS_COLLECTION].any_list.value:
            asset = meta_graph_pb2.AssetFileDef()
            if item.Unpack(asset) and asset.tensor_info.name:
                nodes.add(_tensor_node(asset.tensor_info.name))
    return nodes


def _check_asset_name(name: str) -> None:
    parts = name.split("/")
    if (not name or name.startswith("/") or "\\" in name or "\0" in name or any(p in ("", ".", "..") for p in parts)
            or (len(name) > 1 and name[1] == ":")):
        raise RefusedReference(
            f"The SavedModel was not loaded: it names the asset file {_shown(name)}, a path that leaves the model's "
            "assets/ folder (absolute, with '..' or an empty part), so a table or reader given that asset would open "
            "a file of the machine that runs it. Export the model again with its assets inside the folder."
        )


def check_saved_model(saved_model: Any) -> None:
    """Check a parsed ``SavedModel`` proto (``tensorflow.core.protobuf.saved_model_pb2``) before it
    is loaded. Raises ``RefusedReference`` with a sentence naming the op and the node or function it
    is in when an op that reads or writes files, reaches the network or runs outside code can run."""
    metas = list(saved_model.meta_graphs)
    # tf.saved_model.load uses the TF2 loader (object graph, saver functions never called) only for
    # a single meta graph with an object graph; anything else is loaded as TF1, which runs the
    # saver's restore op and the init ops of the top-level graph.
    tf2 = len(metas) == 1 and metas[0].HasField("object_graph_def") and len(metas[0].object_graph_def.nodes) > 0
    for meta in metas:
        _check_meta_graph(meta, tf2)


def _check_meta_graph(meta: Any, tf2: bool) -> None:
    for name in _asset_names(meta):
        _check_asset_name(name)
    graph = meta.graph_def
    library = {f.signature.name: f for f in graph.library.function}
    gradients = {g.function_name: g.gradient_func for g in graph.library.gradient}
    nodes = {n.name: n for n in graph.node}

    calls: dict[str, set[str]] = {}
    for name, f in library.items():
        calls[name] = {c for n in f.node_def for c in _callees(n.attr.values(), n.op, library)}
        if gradients.get(name) in library:
            calls[name].add(gradients[name])  # SymbolicGradient runs a function's registered gradient

    def fn_calls(name: str) -> set[str]:
        return calls[name]

    def inputs(name: str) -> list[str]:
        node = nodes.get(name)
        return [_tensor_node(i) for i in node.input] if node is not None else []

    # -- which top-level nodes belong to the saver alone ----------------------------------------
    saver = meta.saver_def if meta.HasField("saver_def") else None
    save_target = _tensor_node(saver.save_tensor_name) if saver is not None and saver.save_tensor_name else ""
    restore_target = _tensor_node(saver.restore_op_name) if saver is not None and saver.restore_op_name else ""
    filename = _tensor(saver.filename_tensor_name) if saver is not None and saver.filename_tensor_name else ""
    for_save = _closure([save_target] if save_target in nodes else [], inputs)
    for_restore = _closure([restore_target] if restore_target in nodes else [], inputs)
    others = [n for n in nodes if n not in for_save and n not in for_restore]
    shared = _closure(others, inputs)
    saver_only = (for_save | for_restore) - shared

    # -- which functions only the saver calls (the TF2 loader never calls them) ----------------
    called_by_saver = _closure(
        {c for n in saver_only for c in _callees(nodes[n].attr.values(), nodes[n].op, library)}, fn_calls)
    roots = {c for n in nodes if n not in saver_only for c in _callees(nodes[n].attr.values(), nodes[n].op, library)}
    roots |= set(library) - called_by_saver
    bound: dict[str, list[int]] = {}
    if meta.HasField("object_graph_def"):
        graph_objects = meta.object_graph_def
        roots |= {name for name in graph_objects.concrete_functions if name in library}
        for obj in graph_objects.nodes:
            kind = obj.WhichOneof("kind")
            if kind == "function":
                roots |= {name for name in obj.function.concrete_functions if name in library}
            elif kind == "bare_concrete_function" and obj.bare_concrete_function.concrete_function_name in library:
                roots.add(obj.bare_concrete_function.concrete_function_name)
        bound = {name: list(c.bound_inputs) for name, c in graph_objects.concrete_functions.items()}
    saver_functions = (called_by_saver - _closure(roots, fn_calls)) if tf2 else set()

    # -- the top-level graph ---------------------------------------------------------------------
    assets = _asset_tensors(meta)

    def top_from_asset(name: str, seen: frozenset = frozenset()) -> bool:
        """Whether a top-level tensor can only hold an asset's path: the Placeholder the loader feeds,
        through identities, or a variable that nothing but such a value is ever assigned to."""
        node = nodes.get(_tensor_node(name))
        if node is None or node.name in seen or _tensor(name) != node.name + ":0":
            return False
        seen = seen | {node.name}
        if node.name in assets:
            return node.op == "Placeholder"
        if node.op in _PASS_THROUGH and node.input:
            return top_from_asset(node.input[0], seen)
        if node.op == "ReadVariableOp" and node.input:
            var = node.input[0]
            users = [n for n in nodes.values() if any(_tensor(i) == _tensor(var) for i in n.input)]
            writes = [n for n in users if n.op not in ("ReadVariableOp", "VarIsInitializedOp")]
            return bool(writes) and all(  # a handle passed anywhere else could be assigned anything
                w.op == "AssignVariableOp" and len(w.input) > 1 and _tensor(w.input[0]) == _tensor(var)
                and top_from_asset(w.input[1], seen) for w in writes)
        return False

    for node in graph.node:
        why = _why(node)
        if why is None:
            continue
        if node.op in _SAVE and node.name in saver_only and node.name not in for_restore:
            continue  # the saver's save: the loader never runs it
        if node.op in _RESTORE and node.name in saver_only and node.input and _tensor(node.input[0]) == filename:
            continue  # the loader runs the restore with the model's own variables/ fed as the file name
        if node.op in _TABLE_FROM_FILE and len(node.input) > 1 and top_from_asset(node.input[1]):
            continue
        raise _refuse(f"the node {_shown(node.name)} of its top-level graph", why)

    # -- every function of the library ------------------------------------------------------------
    callers_in_functions = {c for name in library for c in fn_calls(name)}

    def also_called_by(name: str) -> str:
        """Who besides the saver can run the saver's function ``name`` (for the sentence)."""
        caller = next((f for f in library if name in calls[f] and f not in called_by_saver), None)
        if caller is not None:
            return f"the function {_shown(caller)}"
        top = next((n for n in nodes.values() if n.name not in saver_only
                    and name in _callees(n.attr.values(), n.op, library)), None)
        if top is not None:
            return f"the node {_shown(top.name)} of the top-level graph"
        return "the object graph" if tf2 else "the TF1 loader, which runs the saver's restore"

    for name, f in library.items():
        for node in f.node_def:
            why = _why(node)
            if why is None:
                continue
            if node.op in (_SAVE | _RESTORE) and name in saver_functions:
                continue  # the saver's own functions: the TF2 loader restores variables itself
            if (node.op in _TABLE_FROM_FILE and tf2 and name not in callers_in_functions
                    and _function_asset_path(f, node, bound.get(name), meta, nodes, top_from_asset)):
                continue
            where = f"the node {_shown(node.name)} of its function {_shown(name)}"
            if node.op in (_SAVE | _RESTORE) and name in called_by_saver:
                where += f" (a saver function, but {also_called_by(name)} calls it too)"
            raise _refuse(where, why)


def _string_attr(node: Any, key: str, default: str) -> str | None:
    """A string attribute's value; None when it is set another way (a placeholder the caller fills)."""
    if key not in node.attr:
        return default
    value = node.attr[key]
    return value.s.decode("utf-8", "replace") if value.WhichOneof("value") == "s" else None


def _why(node: Any) -> str | None:
    """Why a node may not run in a reference (``"runs the op 'ReadFile', which reads files"``), or None."""
    why = denied(node.op)
    if why is not None:
        return f"runs the op {_shown(node.op)}, which {why}"
    if node.op == "PrintV2":
        stream = _string_attr(node, "output_stream", "stderr")
        if stream not in _PRINT_STREAMS:
            return f"runs the op 'PrintV2' printing to {_shown(str(stream))}, which writes a file"
    if node.op in ("DecodeProtoV2", "EncodeProto"):
        source = _string_attr(node, "descriptor_source", "local://")
        if source != "local://":
            return f"runs the op {_shown(node.op)} with the descriptors of {_shown(str(source))}, which reads a file"
    return None


def _function_asset_path(f: Any, node: Any, bound: list[int] | None, meta: Any, top_nodes: dict,
                         top_from_asset: Callable[[str], bool]) -> bool:
    """Whether a table initialiser in function ``f`` can only be given an asset's path: its file
    name is an argument of ``f`` (through identities), the object graph binds that argument to an
    asset, no other function calls ``f``, and every top-level call passes an asset's path there."""
    args = [a.name for a in f.signature.input_arg]
    local = {n.name: n for n in f.node_def}
    if len(node.input) < 2:
        return False
    source = node.input[1]
    for _ in range(len(local) + 1):
        name = source.split(":", 1)[0]
        if ":" not in source and name in args:
            break
        inner = local.get(name)
        if inner is None or inner.op not in _PASS_THROUGH or not inner.input:
            return False
        source = inner.input[0]
    else:
        return False
    k = args.index(source)
    if bound is None or meta is None or not meta.HasField("object_graph_def"):
        return False
    first_bound = len(args) - len(bound)
    if k < first_bound:
        return False  # an argument the caller passes: any string
    objects = meta.object_graph_def.nodes
    node_id = bound[k - first_bound]
    if not (0 <= node_id < len(objects)) or objects[node_id].WhichOneof("kind") != "asset":
        return False
    index = objects[node_id].asset.asset_file_def_index
    if not (0 <= index < len(meta.asset_file_def)):
        return False
    # Top-level calls (kept by tf.saved_model.save for TF1 users; the TF2 loader does not run them).
    for top in top_nodes.values():
        if f.signature.name in _callees(top.attr.values(), top.op, {f.signature.name: f}):
            if len(top.input) <= k or not top_from_asset(top.input[k]):
                return False
    return True


def check_saved_model_bytes(data: bytes) -> None:
    """Parse ``saved_model.pb`` (imports TensorFlow's protos: call it in the TensorFlow worker
    only) and ``check_saved_model`` it. Raises ``RefusedReference``, or ``ValueError`` with a
    sentence when the file is not a SavedModel."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(data)
    except DecodeError as exc:
        raise ValueError(f"saved_model.pb is not a SavedModel protocol buffer ({exc}); zip the folder that "
                         "tf.saved_model.save wrote.") from None
    check_saved_model(proto)


# -- Keras ------------------------------------------------------------------------------------------

# Modules a config's objects may come from: layers, models, operations and what configures them.
_KERAS_MODULES = ("keras.layers", "keras.models", "keras.ops", "keras.initializers", "keras.regularizers",
                  "keras.constraints", "keras.activations", "keras.losses", "keras.metrics", "keras.optimizers",
                  "keras.dtype_policies", "keras.quantizers", "keras.src.layers", "keras.src.models", "keras.src.ops",
                  "keras.src.dtype_policies", "keras.src.quantizers")
# Modules whose functions a config may name (an activation, a loss or metric, an op): pure maths.
_FUNCTION_MODULES = {"builtins", "keras.activations", "keras.losses", "keras.metrics", "keras.ops"}
_REFUSED_LAYERS = {
    "Lambda": "a Lambda layer, which calls a Python function the file names",
    "TFSMLayer": "a TFSMLayer, which loads a SavedModel from a path on the machine that runs it",
}


def _keras_module(module: str) -> bool:
    return module in ("keras", "builtins") or any(module == m or module.startswith(m + ".") for m in _KERAS_MODULES)


def _refuse_keras(what: str) -> RefusedReference:
    return RefusedReference(
        f"The Keras model was not loaded: its config holds {what}, and a reference model may only be built from "
        "Keras's own layers (Keras's safe mode alone has let such files through before). Rebuild the model "
        "without it, or compare the .tflite conversion against its own reference kernels or expected outputs."
    )


def check_keras_config(config: Any) -> None:
    """Check a Keras model config (``config.json`` of a ``.keras`` file, the ``model_config`` of an
    ``.h5``) before ``load_model`` reads it. Raises ``RefusedReference`` naming what was found."""
    stack = [config]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "enable_unsafe_deserialization" in value:
                raise _refuse_keras("a reference to keras.config.enable_unsafe_deserialization")
            continue
        if isinstance(value, list):
            stack.extend(value)
            continue
        if not isinstance(value, dict):
            continue
        stack.extend(value.keys())
        stack.extend(value.values())
        if isinstance(value.get("vocabulary"), str):
            raise _refuse_keras(f"a vocabulary read from the file {_shown(value['vocabulary'])}")
        class_name = value.get("class_name")
        if not isinstance(class_name, str):
            continue
        module = value.get("module")
        registered = value.get("registered_name")
        if class_name == "__lambda__":
            raise _refuse_keras("a Python lambda (compiled bytecode)")
        if class_name in _REFUSED_LAYERS:
            raise _refuse_keras(_REFUSED_LAYERS[class_name])
        if class_name == "function" or registered == "function":
            if module not in _FUNCTION_MODULES:
                raise _refuse_keras(f"the function {_shown(str(value.get('config')))} of the module "
                                    f"{_shown(str(module))}, which is not a Keras activation, loss, metric or op")
        if module is not None and not (isinstance(module, str) and _keras_module(module)):
            raise _refuse_keras(f"the object {_shown(class_name)} of the module {_shown(str(module))}, which is not "
                                "one of Keras's layers, operations or their settings")
        if isinstance(registered, str) and ">" in registered:
            raise _refuse_keras(f"the custom object {_shown(registered)}, which is not part of Keras")


def keras_config(data: bytes, kind: str) -> Any:
    """The model config a Keras file holds, parsed from JSON: ``config.json`` of a ``.keras`` zip
    (``kind="keras"``), the ``model_config`` attribute of an HDF5 file (``"h5"``). Raises
    ``ValueError`` with a sentence when there is none."""
    import io

    if kind == "keras":
        import zipfile

        with zipfile.ZipFile(io.BytesIO(data)) as z:
            try:
                text = z.read("config.json")
            except KeyError:
                raise ValueError("The .keras file holds no config.json; save the whole model with model.save().") from None
    else:
        import h5py

        with h5py.File(io.BytesIO(data), "r") as f:
            text = f.attrs.get("model_config")
        if text is None:
            raise ValueError("The .h5 file holds no model config (a weights-only file?); save the whole model.")
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text)


def check_keras_file(data: bytes, kind: str) -> None:
    """Everything checked in a Keras file before ``load_model``: its config, and its HDF5 parts
    (the ``.h5`` itself, or each ``.h5`` member of a ``.keras`` zip). Raises ``RefusedReference``
    or ``ValueError`` (no config)."""
    check_keras_config(keras_config(data, kind))
    if kind == "h5":
        check_hdf5(data, "the .h5 file")
        return
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in z.namelist():
            if name.endswith(".h5"):
                check_hdf5(z.read(name), _shown(name))


def check_hdf5(data: bytes, name: str) -> None:
    """Refuse an HDF5 file (an ``.h5`` model, a ``.keras`` file's ``model.weights.h5``) that holds
    a soft or external link, or a dataset stored outside the file (external storage, a virtual
    dataset): reading such a weight would read another file of the machine. Raises ``RefusedReference``."""
    import io

    import h5py

    def refuse(path: str, what: str) -> RefusedReference:
        return RefusedReference(
            f"The Keras model was not loaded: {name} holds {what} at {_shown(path)}, so loading its weights would "
            "read another file of the machine that runs it. Save the model again with plain weights."
        )

    with h5py.File(io.BytesIO(data), "r") as f:
        groups: list[tuple[str, Any]] = [("/", f)]

        def visit(path: str, item: Any) -> None:  # each object once, however many hard links reach it
            if isinstance(item, h5py.Group):
                groups.append(("/" + path, item))
            elif isinstance(item, h5py.Dataset):
                if item.external:
                    raise refuse("/" + path, "a dataset stored in an external file")
                if item.is_virtual:
                    raise refuse("/" + path, "a virtual dataset")

        f.visititems(visit)  # follows hard links only; soft and external ones are looked for below
        for path, group in groups:
            for key in group.keys():
                if isinstance(group.get(key, getlink=True), (h5py.SoftLink, h5py.ExternalLink)):
                    raise refuse(path.rstrip("/") + "/" + key, "a link")
