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


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus")
    every = {}
    for target, files in seeds().items():
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
