"""Keras model configurations: ``.keras`` archives (``config.json``) and HDF5 ``.h5`` files.

A Keras model file names the layers and functions to rebuild; nothing here rebuilds them.
The configuration is read as JSON (for ``.h5`` the ``model_config`` and ``training_config``
attributes only, through :mod:`h5py`; no dataset is read) and walked for what runs or is
imported on load:

- ``Lambda`` layers and ``__lambda__`` objects holding serialized Python bytecode (base64 of
  :mod:`marshal` data): ``keras.models.load_model`` turns them back into functions and calls
  them — always for a legacy ``.h5`` file, and for a ``.keras`` file whenever
  ``safe_mode=False``. The bytecode is never unmarshalled; its identifier-like byte runs (a
  code object's ``co_names`` are stored as short length-prefixed ASCII strings) are matched
  against names that reach the system (``os``, ``system``, ``popen``, ``eval`` ...) to raise
  the severity.
- objects whose ``module`` is outside Keras: Keras 3 imports that module while loading, which
  is how CVE-2025-1550 (``safe_mode`` bypass) ran code from a ``.keras`` config; modules that
  can run code are ``critical`` (the pickle policy of :mod:`dormant.provenance.policy`),
  other custom objects ``medium``; legacy registered custom objects (``package>Class``)
  ``medium``.

This is what ModelScan's ``KerasLambdaDetectScan`` and ``H5LambdaDetectScan`` (Protect AI)
check, plus the nested models, wrappers and module imports they miss; h5py is used because
HDF5 is a complex format with a maintained reader, and only attributes are read from it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Any

from ..findings import Severity
from .pickles import classify_global

if TYPE_CHECKING:
    from ._scan_ctx import _Ctx

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: Largest configuration read (JSON text); Keras configs are kilobytes.
MAX_CONFIG_BYTES = 64 << 20
#: Names whose presence in a Lambda's bytecode means it reaches files, processes or the network.
SYSTEM_NAMES = frozenset(
    {
        "os",
        "system",
        "popen",
        "Popen",
        "subprocess",
        "exec",
        "eval",
        "compile",
        "__import__",
        "__builtins__",
        "builtins",
        "importlib",
        "socket",
        "urlopen",
        "urllib",
        "requests",
        "marshal",
        "pickle",
        "shutil",
        "rmtree",
        "execv",
        "execve",
        "spawn",
        "fork",
        "check_output",
        "check_call",
        "getattr",
    }
)
_KERAS_MODULES = ("keras", "tf_keras", "keras_hub", "keras_nlp", "keras_cv", "tensorflow")
_NAME_RUN = re.compile(rb"[A-Za-z_][A-Za-z0-9_]+")


def looks_like_keras_config(obj: Any) -> bool:
    """Whether a parsed ``config.json`` is a Keras model configuration."""
    return isinstance(obj, dict) and "class_name" in obj and "config" in obj


def scan_keras_config(ctx: _Ctx, raw: bytes | str, member: str, *, source: str) -> None:
    """Report Lambda bytecode and non-Keras imports in one Keras configuration (JSON text)."""
    if len(raw) > MAX_CONFIG_BYTES:
        ctx.add("unreadable", Severity.HIGH, f"Keras {source} larger than 64 MiB", member)
        return
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        ctx.add("malformed", Severity.HIGH, f"Keras {source} is not valid JSON: {exc}", member)
        return
    except RecursionError:
        ctx.add("malformed", Severity.HIGH, f"Keras {source} is nested too deeply", member)
        return
    _walk(ctx, config, member, source)


def _walk(ctx: _Ctx, config: Any, member: str, source: str) -> None:
    stack: list[tuple[Any, str]] = [(config, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, list):
            stack.extend((v, path) for v in reversed(node))
            continue
        if not isinstance(node, dict):
            continue
        here = _layer_name(node) or path
        _check_object(ctx, node, member, source, here)
        stack.extend((v, here) for v in reversed(list(node.values())))


def _layer_name(node: dict[str, Any]) -> str:
    cfg = node.get("config")
    name = cfg.get("name") if isinstance(cfg, dict) else None
    return str(name)[:80] if isinstance(name, str) else ""


def _check_object(ctx: _Ctx, node: dict[str, Any], member: str, source: str, where: str) -> None:
    cls = node.get("class_name")
    cfg = node.get("config")
    at = f" (layer {where!r})" if where else ""
    code: Any = None
    if cls == "__lambda__" and isinstance(cfg, dict):
        code = cfg.get("code")  # Keras 3: {"code": base64(marshal), "defaults", "closure"}
    elif node.get("function_type") == "lambda":
        fn = node.get("function")  # Keras 2: [base64(marshal), defaults, closure]
        code = fn[0] if isinstance(fn, list) and fn else fn
    if code is not None:
        _report_bytecode(ctx, code, member, source, at)
    elif cls == "Lambda" and isinstance(cfg, dict) and not isinstance(cfg.get("function"), dict):
        fn, mod = cfg.get("function"), cfg.get("module")
        if cfg.get("function_type") != "lambda" and fn is not None:
            ctx.add(
                "lambda-layer",
                Severity.MEDIUM,
                f"Keras {source}: Lambda layer{at} calls the Python function {str(fn)[:80]!r} "
                f"of module {str(mod)[:80]!r}, imported when the model is loaded",
                member,
                name=f"{mod}.{fn}"[:200],
            )
    module = node.get("module")
    if isinstance(module, str) and isinstance(cls, str) and module:
        root = module.split(".", 1)[0]
        if root not in _KERAS_MODULES:
            target = node.get("config") if cls == "function" else cls
            name = f"{module}.{target if isinstance(target, str) else cls}"
            sev, why = classify_global(module, str(target if isinstance(target, str) else cls))
            if sev is Severity.CRITICAL and module != "__main__":  # __main__: a user's function
                ctx.add(
                    "custom-object",
                    Severity.CRITICAL,
                    f"Keras {source}{at} makes Keras import {name[:120]!r} on load ({why}); "
                    "the safe_mode bypass of CVE-2025-1550",
                    member,
                    name=name[:200],
                )
            elif module != "builtins":
                ctx.add(
                    "custom-object",
                    Severity.MEDIUM,
                    f"Keras {source}{at} needs the custom object {name[:120]!r}, whose module "
                    "is imported on load",
                    member,
                    name=name[:200],
                )
    registered = node.get("registered_name")
    legacy = cls if isinstance(cls, str) and ">" in cls and module is None else None
    if legacy or (isinstance(registered, str) and ">" in registered and module is None):
        shown = str(legacy or registered)[:120]
        ctx.add(
            "custom-object",
            Severity.MEDIUM,
            f"Keras {source}{at} names the registered custom object {shown!r}; its code must "
            "be imported to load the model",
            member,
            name=shown,
        )


def _report_bytecode(ctx: _Ctx, code: Any, member: str, source: str, at: str) -> None:
    names: set[str] = set()
    if isinstance(code, str) and len(code) <= MAX_CONFIG_BYTES:
        try:
            blob = base64.b64decode(code.encode("ascii", "replace"), validate=False)
        except (binascii.Error, ValueError):
            blob = b""
        names = {m.decode() for m in _NAME_RUN.findall(blob)} & SYSTEM_NAMES
    if names:
        ctx.add(
            "lambda-layer",
            Severity.CRITICAL,
            f"Keras {source}: Lambda{at} holds Python bytecode that names "
            f"{', '.join(sorted(names))}; it runs when the model is loaded",
            member,
            name=",".join(sorted(names)),
        )
    else:
        ctx.add(
            "lambda-layer",
            Severity.HIGH,
            f"Keras {source}: Lambda{at} holds serialized Python bytecode (marshal), run when "
            "the model is loaded",
            member,
        )


#: Run in a child process: the HDF5 C library crashes (SIGSEGV) on some damaged files, which
#: must cost a finding, not the scanning process. Reads the file from stdin, writes JSON.
_H5_CHILD = r"""
import io, json, resource, sys
# a CPU-time bound of its own: the child must not outlive a parent that was killed
resource.setrlimit(resource.RLIMIT_CPU, (int(sys.argv[2]), int(sys.argv[2])))
import h5py
out = {"attrs": {}}
try:
    with h5py.File(io.BytesIO(sys.stdin.buffer.read()), "r") as f:
        for key in ("model_config", "training_config"):
            if key not in f.attrs:
                continue
            if f.attrs.get_id(key).get_storage_size() > int(sys.argv[1]):
                out["attrs"][key] = None
                continue
            v = f.attrs[key]
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            out["attrs"][key] = v if isinstance(v, str) else False
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"[:300]
sys.stdout.write(json.dumps(out))
"""
#: Seconds the HDF5 reader may run before the file is reported unreadable.
# Reading two attributes takes well under a second; the fuzz harness found a damaged file on
# which the HDF5 C library loops without end, so the child is stopped after this bound.
H5_TIMEOUT = 30.0


def scan_h5(ctx: _Ctx, fh: Any, size: int, member: str) -> None:
    """Read the Keras attributes of an HDF5 file with :mod:`h5py` in a child process.

    Only the ``model_config`` and ``training_config`` attributes are read (no dataset). The
    child process isolates the scan from crashes of the HDF5 C library on damaged files
    (found by mutating valid files) and bounds its time; a crash, a timeout or a missing
    h5py is reported as unreadable (fail closed).
    """
    import subprocess
    import sys
    from importlib.util import find_spec

    if find_spec("h5py") is None:
        ctx.add(
            "unreadable",
            Severity.HIGH,
            "HDF5 file not checked: h5py is not installed (pip install 'dormant[formats]')",
            member,
        )
        return
    if size > ctx.max_member_bytes:
        ctx.add("unreadable", Severity.HIGH, "HDF5 file larger than max_member_bytes", member)
        return
    fh.seek(0)
    data = bytes(fh.read(size))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _H5_CHILD, str(MAX_CONFIG_BYTES), str(int(H5_TIMEOUT) + 5)],
            input=data,
            capture_output=True,
            timeout=H5_TIMEOUT,
            check=False,
        )
        result = json.loads(proc.stdout) if proc.returncode == 0 else None
    except subprocess.TimeoutExpired:
        ctx.add("unreadable", Severity.HIGH, f"HDF5 reader ran past {H5_TIMEOUT:g} s", member)
        return
    except (OSError, ValueError) as exc:
        ctx.add("unreadable", Severity.HIGH, f"HDF5 reader could not run: {exc}", member)
        return
    if not isinstance(result, dict):
        ctx.add(
            "malformed",
            Severity.HIGH,
            f"HDF5 file crashed the HDF5 library (exit {proc.returncode}); it is damaged or "
            "built to attack readers",
            member,
        )
        return
    if result.get("error"):
        ctx.add("malformed", Severity.HIGH, f"HDF5 file cannot be read: {result['error']}", member)
        return
    for key, value in sorted(result.get("attrs", {}).items()):
        if value is None:
            ctx.add("unreadable", Severity.HIGH, f"HDF5 attribute {key} over 64 MiB", member)
        elif not isinstance(value, str):
            ctx.add("malformed", Severity.HIGH, f"HDF5 attribute {key} is not text", member)
        else:
            scan_keras_config(ctx, value, member, source=f"HDF5 attribute {key}")
