"""Model files of many formats, benign and malicious, with ground truth — built, never run.

Each builder writes a real file of its format with that format's own writer where one is
installed (``h5py`` for HDF5, ``gguf.GGUFWriter`` for GGUF, ``onnx.helper`` for ONNX,
:mod:`zipfile` + JSON for ``.keras``, :mod:`pickle` opcodes for pickles) and a protobuf
wire encoding of TensorFlow's ``SavedModel`` messages for ``saved_model.pb``. Malicious
payloads (Lambda bytecode, module imports, template injection, file ops) are compiled or
written as data only; nothing is executed, and none of them would do harm beyond printing
``id`` if it were.

:func:`artifact_corpus` writes the side-by-side corpus of ``benchmarks/bench_artifact_formats.py``.
"""

from __future__ import annotations

import base64
import io
import json
import marshal
import zipfile
from pathlib import Path
from typing import Any

# --- Keras -----------------------------------------------------------------------------


def lambda_bytecode(source: str = "lambda x: __import__('os').system('id') or x") -> str:
    """Base64 marshal of a lambda's code object, as Keras ``func_dump`` writes it (not run)."""
    code = compile(source, "<lambda>", "eval").co_consts[0]
    return base64.b64encode(marshal.dumps(code)).decode("ascii")


def _dense(name: str, units: int = 4) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Dense",
        "config": {"name": name, "units": units, "activation": "relu"},
        "registered_name": None,
    }


def keras3_config(layers: list[dict[str, Any]], *, name: str = "sequential") -> dict[str, Any]:
    """A Keras 3 ``Sequential`` configuration (``config.json`` of a ``.keras`` file)."""
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": name, "layers": layers},
        "registered_name": None,
    }


def keras3_lambda(code: str, name: str = "lambda") -> dict[str, Any]:
    fn = {"class_name": "__lambda__", "config": {"code": code, "defaults": None, "closure": None}}
    return {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {"name": name, "function": fn},
        "registered_name": None,
    }


def keras3_module_import(module: str, fn: str) -> dict[str, Any]:
    """A layer whose activation names a function of ``module`` (Keras imports it on load)."""
    layer = _dense("dense_import")
    layer["config"]["activation"] = {
        "module": module,
        "class_name": "function",
        "config": fn,
        "registered_name": fn,
    }
    return layer


def keras_zip(config: dict[str, Any]) -> bytes:
    """A ``.keras`` archive: ``config.json``, ``metadata.json`` and an HDF5 weights file."""
    import h5py

    weights = io.BytesIO()
    with h5py.File(weights, "w") as f:
        f.create_dataset("layers/dense/vars/0", data=[[0.0, 1.0], [1.0, 0.0]])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", weights.getvalue())
    return buf.getvalue()


def legacy_config(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """A Keras 2 (``tf.keras``) ``model_config`` attribute."""
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}


def legacy_lambda(code: str) -> dict[str, Any]:
    return {
        "class_name": "Lambda",
        "config": {"name": "lambda", "function": [code, None, None], "function_type": "lambda"},
    }


def h5_model(path: Path, config: dict[str, Any] | None) -> Path:
    """A legacy Keras ``.h5`` file: ``model_config`` attribute plus a weights group."""
    import h5py

    with h5py.File(path, "w") as f:
        if config is not None:
            f.attrs["model_config"] = json.dumps(config).encode("utf-8")
            f.attrs["keras_version"] = b"2.15.0"
        f.create_dataset("model_weights/dense/kernel:0", data=[[0.5, -0.5]])
    return path


# --- TensorFlow SavedModel (protobuf wire format) -----------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_field(num: int, payload: bytes | str | int) -> bytes:
    """One protobuf field: a varint for ``int``, length-delimited for ``bytes``/``str``."""
    if isinstance(payload, int):
        return _varint(num << 3) + _varint(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def node_def(name: str, op: str, *inputs: str) -> bytes:
    return pb_field(1, name) + pb_field(2, op) + b"".join(pb_field(3, i) for i in inputs)


def saved_model(graph_ops: list[str], function_ops: tuple[str, ...] | list[str] = ()) -> bytes:
    """``saved_model.pb`` bytes: one ``serve`` meta graph, its nodes and one library function."""
    nodes = b"".join(pb_field(1, node_def(f"n{i}", op)) for i, op in enumerate(graph_ops))
    graph = nodes + pb_field(4, pb_field(1, 1645))  # VersionDef.producer
    if function_ops:
        fn = pb_field(1, pb_field(1, "__inference_call_42"))  # OpDef.name
        fn += b"".join(pb_field(3, node_def(f"f{i}", op)) for i, op in enumerate(function_ops))
        graph += pb_field(2, pb_field(1, fn))
    meta = pb_field(1, pb_field(4, "serve") + pb_field(5, "2.15.0")) + pb_field(2, graph)
    return pb_field(1, 1) + pb_field(2, meta)


def keras_metadata(layers: list[dict[str, Any]]) -> bytes:
    """``keras_metadata.pb``: one ``SavedObject`` node per layer configuration."""
    out = b""
    for i, layer in enumerate(layers):
        node = pb_field(2, i) + pb_field(3, f"root.layer-{i}") + pb_field(4, "_tf_keras_layer")
        out += pb_field(1, node + pb_field(5, json.dumps(layer)))
    return out


SAFE_GRAPH = ["Placeholder", "VarHandleOp", "ReadVariableOp", "MatMul", "BiasAdd", "Relu"]
SAVER_GRAPH = ["Const", "StringJoin", "ShardedFilename", "SaveV2", "RestoreV2", "Identity"]

# --- GGUF ------------------------------------------------------------------------------


def gguf_file(path: Path, template: str | None, *, extra: dict[str, str] | None = None) -> Path:
    """A small GGUF model (one tensor, a token list) with ``template`` as its chat template."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_name("tiny")
    w.add_context_length(128)
    w.add_token_list(["<s>", "</s>", "a", "b"])
    w.add_token_scores([0.0, 0.0, -1.0, -2.0])
    if template is not None:
        w.add_chat_template(template)
    for k, v in (extra or {}).items():
        w.add_string(k, v)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# --- ONNX ------------------------------------------------------------------------------


def onnx_model(
    *,
    domain: str = "",
    op: str = "Add",
    location: str | None = None,
    subgraph_location: str | None = None,
) -> bytes:
    """A one-node ONNX model; ``domain`` for its op, ``location`` for external weights."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    if location is not None:
        _externalise(w, location)
    node = helper.make_node(op, ["x", "w"], ["y"], domain=domain)
    nodes = [node]
    opsets = [helper.make_opsetid("", 17)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    if subgraph_location is not None:
        c = helper.make_tensor("c", TensorProto.FLOAT, [2], [0.0, 0.0])
        _externalise(c, subgraph_location)
        then = helper.make_graph(
            [helper.make_node("Constant", [], ["z"], value=c)],
            "then",
            [],
            [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
        )
        cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
        nodes = [node, helper.make_node("If", ["cond"], ["z"], then_branch=then, else_branch=then)]
        graph = helper.make_graph(nodes, "g", [x], [y], [w, cond])
    else:
        graph = helper.make_graph(nodes, "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=opsets)
    return bytes(model.SerializeToString())


def _externalise(t: Any, location: str) -> None:
    from onnx import TensorProto

    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "8")):
        e = t.external_data.add()
        e.key, e.value = k, v


# --- pickles (for the pickle-only tools' share of the corpus) ---------------------------

EVIL_PICKLE = b"cos\nsystem\n(S'id'\ntR."


def torch_zip(payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/data/0", b"\x00" * 8)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
