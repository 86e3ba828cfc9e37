"""Write Keras and TensorFlow artifacts with the real writers (run by a Python that has
``tensorflow``; see bench_artifact_formats.py ``--tf-python``). Prints the cases as JSON.

Nothing harmful runs while saving: the Lambda bodies only *name* ``os`` / ``system``
(``hasattr``), and graph tracing records ``ReadFile`` / ``WriteFile`` / ``PyFunc`` ops without
running them (the saved functions are never called).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras
import tensorflow as tf


def _model(lam: keras.layers.Layer | None) -> keras.Model:
    layers = [keras.Input((4,)), keras.layers.Dense(3)]
    if lam is not None:
        layers.append(lam)
    return keras.Sequential(layers)


def main() -> None:
    root = Path(sys.argv[1])
    cases = []

    def case(name: str, path: Path, fmt: str, malicious: bool, note: str) -> None:
        cases.append([name, str(path), fmt, malicious, note])

    tame = keras.layers.Lambda(lambda x: x * 2.0)
    naming = keras.layers.Lambda(lambda x: x * 2.0 if hasattr(os, "system") else x)
    for name, lam, bad, note in (
        ("dense", None, False, "Sequential of Dense (keras 3 writer)"),
        ("lambda-tame", tame, True, "Lambda x*2 (keras 3 writer)"),
        ("lambda-os", naming, True, "Lambda naming os.system (keras 3 writer)"),
    ):
        d = root / f"real-keras-{name}"
        d.mkdir(parents=True)
        _model(lam).save(d / "model.keras")
        case(d.name, d / "model.keras", "keras (real writer)", bad, note)
        d = root / f"real-h5-{name}"
        d.mkdir(parents=True)
        _model(lam).save(d / "model.h5")
        case(d.name, d / "model.h5", "h5 (real writer)", bad, note.replace("keras 3", "legacy h5"))

    class Plain(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(tf.ones((4, 2)))

        @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32)])
        def __call__(self, x: tf.Tensor) -> tf.Tensor:
            return tf.nn.relu(tf.matmul(x, self.w))

    class Files(Plain):
        @tf.function(input_signature=[tf.TensorSpec((), tf.string)])
        def steal(self, path: tf.Tensor) -> tf.Tensor:
            data = tf.io.read_file(path)
            tf.io.write_file(path + ".copy", data)
            return data

    class Py(Plain):
        @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32)])
        def hook(self, x: tf.Tensor) -> tf.Tensor:
            return tf.py_function(lambda t: t, [x], tf.float32)

    for name, mod, bad, note in (
        ("plain", Plain(), False, "tf.Module with a variable (tf.saved_model.save)"),
        ("readwrite", Files(), True, "tf.io.read_file + write_file in a function"),
        ("pyfunc", Py(), True, "tf.py_function in a function"),
    ):
        d = root / f"real-savedmodel-{name}"
        sigs = {"serving_default": mod.__call__}
        tf.saved_model.save(mod, str(d), signatures=sigs)
        case(d.name, d, "savedmodel (real writer)", bad, note)
    print(json.dumps(cases))


if __name__ == "__main__":
    main()
