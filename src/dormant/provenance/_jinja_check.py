"""Static checks of a Jinja chat template: code-execution gadgets and instructions to the model.

The template is parsed with Jinja2's own parser (``Environment.parse``: lexing and parsing
only — nothing is compiled or rendered) and its syntax tree is walked for:

- attribute walks the Jinja sandbox refuses (``jinja2.sandbox``: any attribute starting with
  ``_``), reached by ``.attr``, ``[...]``, the ``attr`` filter or a dunder string literal;
  ``__globals__``, ``__builtins__``, ``__subclasses__``, ``__import__`` ... are ``critical``
  (the server-side template injection payloads of CVE-2024-34359, e.g.
  ``cycler.__init__.__globals__.os.popen``), others ``high``;
- names and attributes that reach the system (``os``, ``popen``, ``system``, ``eval`` ...);
- Jinja globals that start such walks (``cycler``, ``joiner``, ``lipsum``, ``self``) and
  template inclusion (``include``, ``import``, ``extends``);
- literal text sent to the model on every turn that carries instructions (the "ignore
  previous instructions" family of Perez & Ribeiro 2022, hiding things from the user, URLs);
- branches on a literal substring of a message's ``content``: a template that changes what
  the model sees when the user types a phrase is a trigger in the template itself. Special
  tokens (``<tool_call>``, ``[INST]``) are the usual reason for such tests and are not flagged.

When Jinja2 is not installed or the template does not parse, the same names are searched in
the raw text (and a template that does not parse is reported).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..findings import Severity

#: Attribute walks that reach module globals, builtins or every loaded class.
GADGET_DUNDERS = frozenset(
    {
        "__globals__",
        "__builtins__",
        "__subclasses__",
        "__import__",
        "__mro__",
        "__base__",
        "__bases__",
        "__code__",
        "__closure__",
        "__func__",
        "__self__",
        "__loader__",
        "__spec__",
        "__getattribute__",
        "__reduce__",
        "__reduce_ex__",
    }
)
#: Not ``system`` or ``sys``: templates name their own variables so (``{% set system = ... %}``);
#: a walk to ``os.system`` is caught at ``os``.
SYSTEM_NAMES = frozenset(
    {
        "os",
        "popen",
        "subprocess",
        "eval",
        "exec",
        "import_module",
        "check_output",
        "spawnv",
        "execv",
        "fork",
        "socket",
        "urlopen",
        "builtins",
        "importlib",
    }
)
WALK_START = frozenset({"cycler", "joiner", "lipsum", "self", "config", "request", "url_for"})
_INSTRUCTIONS: tuple[tuple[re.Pattern[str], Severity, str], ...] = (
    (
        re.compile(
            r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}?\b(?:previous|prior|above|"
            r"earlier|all|any|system|safety|user)\b[^.\n]{0,20}?\b(?:instructions?|prompts?|"
            r"rules|guidelines|messages?|polic(?:y|ies))",
            re.I,
        ),
        Severity.HIGH,
        "tells the model to ignore its instructions",
    ),
    (
        re.compile(
            r"\b(?:do\s+not|don'?t|never)\s+(?:tell|reveal|mention|disclose|inform|let\s+\w+\s+"
            r"know)\b",
            re.I,
        ),
        Severity.HIGH,
        "tells the model to hide something from the user",
    ),
    (
        re.compile(
            r"\b(?:secretly|silently|covertly|quietly|without\s+telling)\b[^.\n]{0,30}?\b(?:"
            r"recommend|include|insert|add|append|send|call|run|execute|mention|suggest|"
            r"reply|respond|answer|output|use|write)",
            re.I,
        ),
        Severity.HIGH,
        "tells the model to act covertly",
    ),
    (
        re.compile(r"\bwhen(?:ever)?\s+the\s+user\s+(?:mentions|asks|says|writes|types)\b", re.I),
        Severity.MEDIUM,
        "gives the model a conditional instruction about the user's input",
    ),
    (
        re.compile(r"\b(?:https?|ftp)://[^\s'\"<>]{3,}", re.I),
        Severity.MEDIUM,
        "holds a URL sent to the model on every turn",
    ),
)
_SEVERITY_ORDER = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO)
_SPECIAL_TOKEN = re.compile(r"^\s*(?:<[^<>]{1,40}>|\[[A-Z_/]{1,20}\]|<\|[^|]{1,40}\|>)\s*$")
_DUNDER = re.compile(r"__[A-Za-z_]\w*__")
_RAW_NAMES = re.compile(
    r"__[A-Za-z_]\w*__|\b(?:cycler|joiner|lipsum|popen|subprocess|os\.system|import_module)\b"
    r"|\|\s*attr\b"
)


@dataclass(frozen=True)
class TemplateHit:
    """One problem in a template: issue kind, severity, title and the name or text it is about."""

    kind: str
    severity: Severity
    title: str
    name: str = ""


def check_template(text: str) -> list[TemplateHit]:
    """Return the problems of one Jinja template, most severe first, one per distinct title."""
    hits: dict[str, TemplateHit] = {}
    try:
        import jinja2
        from jinja2 import nodes
    except ImportError:  # pragma: no cover - jinja2 comes with the formats extra
        jinja2 = None  # type: ignore[assignment]
    tree = None
    if jinja2 is not None:
        try:
            tree = jinja2.Environment().parse(text)
        except jinja2.TemplateSyntaxError as exc:
            _add(hits, "template-code", Severity.MEDIUM, f"template does not parse: {exc}")
        except (RecursionError, MemoryError):
            _add(hits, "template-code", Severity.HIGH, "template is nested too deeply to parse")
    if tree is None:
        for m in sorted(set(_RAW_NAMES.findall(text)))[:20]:
            sev = Severity.CRITICAL if m in GADGET_DUNDERS else Severity.HIGH
            _add(hits, "template-code", sev, f"template text names {m!r}", m)
        literals = [text]
    else:
        try:
            literals = list(_walk(tree, nodes, hits))
        except RecursionError:
            _add(hits, "template-code", Severity.HIGH, "template is nested too deeply to check")
            literals = [text]
    for lit in literals:
        for rx, sev, what in _INSTRUCTIONS:
            m = rx.search(lit)
            if m:
                _add(hits, "template-instructions", sev, f"template text {what}: {m.group(0)!r}")
    rank = {s: i for i, s in enumerate(_SEVERITY_ORDER)}
    return sorted(_merge_names(list(hits.values()), rank), key=lambda h: rank[h.severity])


def _merge_names(hits: list[TemplateHit], rank: dict[Severity, int]) -> list[TemplateHit]:
    """One ``template-code`` hit for every name the template reaches (most severe first)."""
    named = sorted(
        (h for h in hits if h.kind == "template-code" and h.name), key=lambda h: rank[h.severity]
    )
    if len(named) < 2:
        return hits
    names = list(dict.fromkeys(h.name for h in named))
    merged = TemplateHit(
        "template-code",
        named[0].severity,
        f"template reaches Python internals or the system: {', '.join(repr(n) for n in names)}"
        "; the Jinja sandbox refuses attributes starting with '_', and these names start the "
        "published template-injection walks"[:400],
        ",".join(names)[:200],
    )
    return [merged, *(h for h in hits if h not in named)]


def _add(
    hits: dict[str, TemplateHit], kind: str, sev: Severity, title: str, name: str = ""
) -> None:
    title = title[:300]
    if title not in hits:
        hits[title] = TemplateHit(kind, sev, title, name[:200])


def _attr_name(hits: dict[str, TemplateHit], name: str, how: str) -> None:
    if name.startswith("_"):
        sev = Severity.CRITICAL if name in GADGET_DUNDERS else Severity.HIGH
        _add(
            hits,
            "template-code",
            sev,
            f"template reads attribute {name!r} ({how}); the Jinja sandbox refuses attributes "
            "starting with '_' because they walk to Python internals",
            name,
        )
    elif name in SYSTEM_NAMES:
        _add(hits, "template-code", Severity.CRITICAL, f"template reaches {name!r} ({how})", name)


def _walk(tree: Any, nodes: Any, hits: dict[str, TemplateHit]) -> Iterator[str]:
    # names the template assigns itself ({% set os = ... %}, loop variables) are its own data
    own = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for node in tree.find_all(nodes.Node):
        if isinstance(node, nodes.Getattr):
            _attr_name(hits, node.attr, "'.' access")
        elif isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                _attr_name(hits, node.arg.value, "'[...]' access")
        elif isinstance(node, nodes.Filter) and node.name == "attr":
            arg = node.args[0] if node.args else None
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                _attr_name(hits, arg.value, "'attr' filter")
            else:
                _add(
                    hits,
                    "template-code",
                    Severity.HIGH,
                    "template computes an attribute name for the 'attr' filter (hides which "
                    "attribute it reads)",
                )
        elif isinstance(node, nodes.Name) and node.name not in own:
            if node.name in SYSTEM_NAMES:
                _attr_name(hits, node.name, "a name")
            elif node.name in WALK_START:
                _add(
                    hits,
                    "template-code",
                    Severity.MEDIUM,
                    f"template uses the Jinja global {node.name!r}, a usual start of attribute "
                    "walks to Python internals",
                    node.name,
                )
        elif isinstance(node, nodes.Include | nodes.Import | nodes.FromImport | nodes.Extends):
            _add(
                hits,
                "template-code",
                Severity.MEDIUM,
                f"template loads another template ({type(node).__name__.lower()})",
            )
        elif isinstance(node, nodes.Compare):
            _check_compare(hits, node, nodes)
        elif isinstance(node, nodes.TemplateData):
            yield node.data
        elif isinstance(node, nodes.Const) and isinstance(node.value, str):
            for d in _DUNDER.findall(node.value):
                sev = Severity.CRITICAL if d in GADGET_DUNDERS else Severity.HIGH
                _add(hits, "template-code", sev, f"template builds the string {d!r}", d)
            yield node.value


def _check_compare(hits: dict[str, TemplateHit], node: Any, nodes: Any) -> None:
    """Flag ``'phrase' in message['content']``: the template branches on what the user typed."""
    for op in node.ops:
        if op.op not in ("in", "notin"):
            continue
        left = node.expr
        if not (isinstance(left, nodes.Const) and isinstance(left.value, str)):
            continue
        if not _mentions_content(op.expr, nodes) or _SPECIAL_TOKEN.match(left.value):
            continue
        phrase = left.value[:80]
        _add(
            hits,
            "template-trigger",
            Severity.HIGH,
            f"template changes its output when a message contains {phrase!r}",
            phrase,
        )


def _mentions_content(expr: Any, nodes: Any) -> bool:
    for n in [expr, *expr.find_all(nodes.Node)]:
        if isinstance(n, nodes.Getattr) and n.attr == "content":
            return True
        if (
            isinstance(n, nodes.Getitem)
            and isinstance(n.arg, nodes.Const)
            and n.arg.value == "content"
        ):
            return True
    return False
