"""Coverage-guided fuzzing of the serialization scanners with atheris (libFuzzer for Python).

Property checked on every input: the scanner returns a result or raises a ``DormantError``;
any other exception is a crash (atheris saves the input as ``crash-*`` in the working
directory and stops). A hang is caught by libFuzzer's ``-timeout`` (seconds per input).

Targets (the first argument):

``pickle``       :func:`dormant.provenance.pickles.scan_pickle` on the bytes
``zip``          :func:`scan_file` on a ``.pt`` file (zip checkpoint, nested archives)
``npy``          :func:`scan_file` on a ``.npy`` file
``safetensors``  :func:`scan_file` on a ``.safetensors`` file
``any``          :func:`scan_file` with the suffix chosen by the first byte of the input
``gguf``         :func:`scan_file` on a ``.gguf`` file (header, metadata, chat templates)
``onnx``         :func:`scan_file` on a ``.onnx`` file (domains, external-data paths)
``savedmodel``   :func:`scan_file` on ``saved_model.pb`` (the protobuf wire reader)
``kerasmeta``    :func:`scan_file` on ``keras_metadata.pb``
``keras``        :func:`scan_file` on a ``.keras`` archive (``config.json``)
``h5``           :func:`scan_file` on a ``.h5`` file (read in a child process: slow per input)
``template``     :func:`dormant.provenance._jinja_check.check_template` on the text

Usage (see fuzz/README.md)::

    python fuzz/make_seeds.py fuzz/corpus
    python fuzz/fuzz_serialization.py zip fuzz/corpus/zip -max_total_time=1800 -timeout=30

atheris is used because it is the maintained coverage-guided fuzzer for CPython (OSS-Fuzz's
Python engine); the hypothesis property tests in tests/provenance/test_properties_scanners.py
check the same property with a small random budget on every test run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["dormant.provenance"]):
    from dormant.errors import DormantError
    from dormant.provenance._jinja_check import check_template
    from dormant.provenance.pickles import scan_pickle
    from dormant.provenance.serialization import scan_file

SUFFIXES = [".pkl", ".pt", ".npy", ".safetensors", ".zip", ".bin", ".gz", ""]
TARGET_SUFFIX = {
    "zip": ".pt",
    "npy": ".npy",
    "safetensors": ".safetensors",
    "gguf": ".gguf",
    "onnx": ".onnx",
    "savedmodel": "saved_model.pb",
    "kerasmeta": "keras_metadata.pb",
    "keras": ".keras",
    "h5": ".h5",
}
_DIR = Path(
    tempfile.mkdtemp(prefix="dormant-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
)


def _scan_bytes(data: bytes, suffix: str) -> None:
    path = _DIR / (f"input{suffix}" if suffix[:1] in ".-" or not suffix else suffix)
    path.write_bytes(data)
    with contextlib.suppress(DormantError):
        scan_file(path, max_depth=3, max_member_bytes=1 << 24)
    if path.read_bytes() != data:
        raise AssertionError("the scanner modified its input")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("pickle", "any", "template", *TARGET_SUFFIX):
        sys.exit(__doc__)
    target = sys.argv.pop(1)

    def one(data: bytes) -> None:
        if target == "pickle":
            with contextlib.suppress(DormantError):
                scan_pickle(data)
        elif target == "template":
            check_template(data.decode("utf-8", "replace"))
        elif target == "any":
            if data:
                _scan_bytes(data[1:], SUFFIXES[data[0] % len(SUFFIXES)])
        else:
            _scan_bytes(data, TARGET_SUFFIX[target])

    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
