"""Write the seed corpus of fuzz/fuzz_serialization.py: small valid files of each format,
benign and malicious (a pickle that imports ``os.system``; it is never loaded)."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def seeds() -> dict[str, dict[str, bytes]]:
    benign = pickle.dumps({"w": [1.0, 2.0], "n": "m"}, protocol=4)
    evil = b"cos\nsystem\n(S'echo hi'\ntR."
    evil4 = (
        b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R."
    )
    npy = io.BytesIO()
    np.save(npy, np.arange(6, dtype=np.float32))
    obj = io.BytesIO()
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    st = struct.pack("<Q", len(header)) + header + b"\x00" * 8
    return {
        "pickle": {"benign": benign, "evil0": evil, "evil4": evil4, "p2": pickle.dumps([1], 2)},
        "zip": {
            "torch": _zip({"archive/data.pkl": benign, "archive/data/0": b"\x00" * 8}),
            "torch-evil": _zip({"archive/data.pkl": evil4}),
            "nested": _zip({"inner.zip": _zip({"x.pkl": evil}), "g.gz": gzip.compress(benign)}),
        },
        "npy": {"float": npy.getvalue(), "object": obj.getvalue()},
        "safetensors": {"ok": st, "bad-offsets": st.replace(b"[0, 8]", b"[0, 99]")},
    }


def format_seeds() -> dict[str, dict[str, bytes]]:
    """Seeds of the Keras, SavedModel, GGUF, ONNX and template targets (needs dormant[formats])."""
    import tempfile

    from dormant.bench import model_files as mf
    from dormant.bench._model_corpus import BENIGN_TEMPLATES, MALICIOUS_TEMPLATES

    lam = mf.keras3_lambda(mf.lambda_bytecode())
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        gguf = {
            "benign": mf.gguf_file(tmp / "a.gguf", BENIGN_TEMPLATES["qwen-tools"]).read_bytes(),
            "ssti": mf.gguf_file(tmp / "b.gguf", MALICIOUS_TEMPLATES["ssti-cycler"]).read_bytes(),
        }
        h5 = {
            "lambda": mf.h5_model(
                tmp / "c.h5", mf.legacy_config([mf.legacy_lambda(mf.lambda_bytecode())])
            ).read_bytes(),
            "weights": mf.h5_model(tmp / "d.h5", None).read_bytes(),
        }
    return {
        "gguf": gguf,
        "h5": h5,
        "onnx": {
            "add": mf.onnx_model(),
            "evil": mf.onnx_model(domain="x.y", op="Z", subgraph_location="../k"),
        },
        "savedmodel": {
            "benign": mf.saved_model(mf.SAFE_GRAPH + mf.SAVER_GRAPH),
            "evil": mf.saved_model(mf.SAFE_GRAPH, ("PyFunc", "ReadFile")),
        },
        "kerasmeta": {"lambda": mf.keras_metadata([mf._dense("d"), lam])},
        "keras": {
            "dense": mf.keras_zip(mf.keras3_config([mf._dense("d")])),
            "lambda": mf.keras_zip(mf.keras3_config([lam])),
        },
        "template": {k: v.encode() for k, v in (BENIGN_TEMPLATES | MALICIOUS_TEMPLATES).items()},
    }


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus")
    every = {}
    targets = seeds()
    try:
        targets |= format_seeds()
    except ImportError as exc:  # h5py, onnx, gguf: pip install 'dormant[formats]'
        print(f"no seeds for the model-format targets: {exc}")
    for target, files in targets.items():
        (root / target).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (root / target / name).write_bytes(data)
            every[f"{target}-{name}"] = data
    (root / "any").mkdir(parents=True, exist_ok=True)
    for i, (name, data) in enumerate(every.items()):
        (root / "any" / name).write_bytes(bytes([i % 8]) + data)
    print(f"seeds written under {root}")


if __name__ == "__main__":
    main()
