"""ONNX models: custom-op domains and external-data paths.

The model is parsed with the ``onnx`` package (``onnx.load_model_from_string`` — the
protobuf only; external data is never loaded and nothing is run) and walked — main graph,
control-flow subgraphs (``If``/``Loop``/``Scan`` bodies) and model-local functions — for:

- nodes in an operator domain that is neither standard ONNX (``""``, ``ai.onnx``,
  ``ai.onnx.ml``, ``ai.onnx.training``, ``ai.onnx.preview.training``) nor a model-local
  function's domain: running the model needs a custom-op library, native code from outside
  the file (``medium``; ONNX Runtime's own contrib domains ``com.microsoft*`` are ``low``);
- tensors stored outside the file (``data_location = EXTERNAL``) whose ``location`` is
  absolute, has a drive letter, climbs out with ``..`` or holds a NUL byte: loading reads
  any file the loading user may (CVE-2022-25882, CVE-2024-27318 in ``onnx`` itself) — ``high``.

The ``onnx`` package is the format's reference implementation; a file it cannot parse is
reported as malformed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..findings import Severity

if TYPE_CHECKING:
    from ._scan_ctx import _Ctx

STANDARD_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training"}
)
RUNTIME_DOMAINS = ("com.microsoft",)
_MAX_GRAPHS = 100_000


def scan_onnx(ctx: _Ctx, fh: Any, size: int, member: str) -> None:
    """Flag custom-op domains and escaping external-data locations in an ONNX model."""
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError:
        ctx.add(
            "unreadable",
            Severity.HIGH,
            "ONNX model not checked: onnx is not installed (pip install 'dormant[formats]')",
            member,
        )
        return
    if size > min(ctx.max_member_bytes, 2**31 - 1):
        ctx.add(
            "unreadable", Severity.HIGH, "ONNX model larger than the 2 GiB protobuf limit", member
        )
        return
    fh.seek(0)
    data = bytes(fh.read(size))
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError, RecursionError) as exc:
        ctx.add("malformed", Severity.HIGH, f"ONNX model cannot be parsed: {exc}"[:300], member)
        return
    if not model.HasField("graph") and not model.functions:
        ctx.add("malformed", Severity.HIGH, "ONNX model holds no graph", member)
        return
    _check_model(ctx, model, member)


def _check_model(ctx: _Ctx, model: Any, member: str) -> None:
    local = {_text(f.domain) for f in model.functions}
    domains: dict[str, set[str]] = {}
    escapes: dict[str, str] = {}
    graphs: list[Any] = [model.graph]
    bodies: list[Any] = list(model.functions)
    seen = 0
    while graphs or bodies:
        seen += 1
        if seen > _MAX_GRAPHS:
            ctx.add("unreadable", Severity.HIGH, "ONNX model nests too many subgraphs", member)
            break
        if graphs:
            g = graphs.pop()
            tensors = list(g.initializer) + [s.values for s in g.sparse_initializer]
            tensors += [s.indices for s in g.sparse_initializer]
            node_list = g.node
        else:
            f = bodies.pop()
            tensors, node_list = [], f.node
        for node in node_list:
            domain = _text(node.domain)
            if domain not in STANDARD_DOMAINS and domain not in local:
                domains.setdefault(domain, set()).add(_text(node.op_type))
            for a in node.attribute:
                if a.HasField("g"):
                    graphs.append(a.g)
                graphs.extend(a.graphs)
                if a.HasField("t"):
                    tensors.append(a.t)
                tensors.extend(a.tensors)
                if a.HasField("sparse_tensor"):
                    tensors += [a.sparse_tensor.values, a.sparse_tensor.indices]
        for t in tensors:
            if t.data_location != 1:  # TensorProto.EXTERNAL
                continue
            for entry in t.external_data:
                if _text(entry.key) == "location":
                    loc = _text(entry.value)
                    why = _escapes(loc)
                    if why:
                        escapes.setdefault(loc, why)
    for domain in sorted(domains):
        ops = ", ".join(sorted(domains[domain])[:10])
        runtime = domain.startswith(RUNTIME_DOMAINS)
        ctx.add(
            "custom-op-domain",
            Severity.LOW if runtime else Severity.MEDIUM,
            f"ONNX graph uses operators of the non-standard domain {domain[:80]!r} ({ops[:200]})"
            + (
                ": ONNX Runtime contrib operators"
                if runtime
                else ": running it needs a custom-op library (native code from outside the file)"
            ),
            member,
            name=domain[:200],
        )
    for loc, why in sorted(escapes.items()):
        ctx.add(
            "external-data-path",
            Severity.HIGH,
            f"ONNX tensor data location {loc[:120]!r} {why}; loading the model reads a file "
            "outside the model's folder",
            member,
            name=loc[:200],
        )


def _text(value: str | bytes) -> str:
    """A string field as text: the protobuf runtime hands back ``bytes`` for a proto2
    ``string`` field that is not valid UTF-8 (found by the fuzz harness)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _escapes(location: str) -> str:
    from ._scan_ctx import unsafe_member_name

    return unsafe_member_name(location)
