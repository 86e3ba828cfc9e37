"""One registry of behaviour detectors, and the two calls every stage makes over it.

The data scan (:mod:`dormant.scanners.data`), the agent probe (:mod:`dormant.scanners.agent`)
and the runtime guard (:mod:`dormant.guard`) take their detectors from here: by name
(:func:`get_detector`, the guard's secret, egress, leakage and insecure-code checks) or all
at once (:func:`behaviour_tags` and :func:`detect_behaviours` with ``detectors=None``). A
detector added with :func:`register_detector` is seen by all three. The registry is filled at
import with the built-ins of :mod:`.detectors`, in the order they run; registering is the only
change it allows (a name is never replaced, so a stage cannot silently lose a check).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..errors import ConfigError, InputError
from .detectors import (
    EgressDetector,
    InsecureCodeDetector,
    LeakageDetector,
    RefusalDetector,
    SecretDetector,
    ToolCallDetector,
    UnsafeActionDetector,
)
from .protocol import READS, BehaviourDetector, BehaviourHit, Detector, run_detector

__all__ = [
    "BEHAVIOUR_CATEGORY",
    "DETECTORS",
    "behaviour_tags",
    "detect_behaviours",
    "get_detector",
    "register_detector",
    "registered_detectors",
    "tag_family",
]

#: every built-in detector, in the order they run
DETECTORS: tuple[Detector, ...] = (
    ToolCallDetector(),
    EgressDetector(),
    SecretDetector(),
    InsecureCodeDetector(),
    LeakageDetector(),
    RefusalDetector(),
    UnsafeActionDetector(),
)

#: tag family -> category key of ``dormant/data/mappings.json`` for findings about that behaviour
BEHAVIOUR_CATEGORY: dict[str, str] = {
    "tool": "agent-trigger",
    "egress": "agent-trigger",
    "code": "agent-trigger",
    "unsafe": "agent-trigger",
    "refusal": "agent-trigger",
    "secret": "secret-exposure",
    "leak": "prompt-leakage",
}

_REGISTRY: dict[str, Detector] = {d.name: d for d in DETECTORS}


def register_detector(detector: Detector) -> Detector:
    """Add ``detector`` to the registry that the data scan, the probe and the guard read.

    Parameters
    ----------
    detector:
        A :class:`~dormant.behaviours.protocol.Detector` with a new ``name``, a known ``reads``
        and families that are keys of :data:`BEHAVIOUR_CATEGORY` (so its findings map to a
        framework category).

    Returns
    -------
    Detector
        ``detector`` itself.

    Raises
    ------
    ConfigError
        Not a detector, a name already registered, an unknown ``reads`` or tag family.
    """
    if not isinstance(detector, Detector):
        raise ConfigError(
            "The 'detector' parameter of register_detector must be a Detector (name, reads, "
            f"families and detect(text)). Got {type(detector).__name__} instead."
        )
    if not detector.name or detector.name in _REGISTRY:
        raise ConfigError(
            f"The detector name {detector.name!r} is empty or already registered; "
            f"registered: {', '.join(_REGISTRY)}."
        )
    if detector.reads not in READS:
        raise ConfigError(
            f"The detector {detector.name!r} reads {detector.reads!r}; expected one of "
            f"{', '.join(READS)}."
        )
    unknown = [f for f in detector.families if f not in BEHAVIOUR_CATEGORY]
    if unknown or not detector.families:
        raise ConfigError(
            f"The detector {detector.name!r} must name its tag families, each one of "
            f"{', '.join(BEHAVIOUR_CATEGORY)}. Got {tuple(detector.families)!r} instead."
        )
    _REGISTRY[detector.name] = detector
    return detector


def get_detector(name: str) -> Detector:
    """The registered detector called ``name`` (``"secret"``, ``"egress"`` ...).

    Raises
    ------
    ConfigError
        No detector of that name is registered (the message lists those that are).
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"No behaviour detector is called {name!r}; registered: {', '.join(_REGISTRY)}."
        ) from None


def registered_detectors(*, reads: str | None = None) -> tuple[Detector, ...]:
    """Every registered detector, built-ins first; with ``reads``, those reading that kind."""
    if reads is not None and reads not in READS:
        raise ConfigError(
            f"The 'reads' parameter of registered_detectors must be one of {', '.join(READS)}. "
            f"Got {reads!r} instead."
        )
    return tuple(d for d in _REGISTRY.values() if reads is None or d.reads == reads)


def tag_family(tag: str) -> str:
    """The family of a tag: the part before the first ``:`` (``"egress:a.b"`` -> ``"egress"``).

    A tag without ``:`` (``"refusal"``) is its own family.
    """
    return tag.partition(":")[0]


def _chosen(text: object, detectors: Iterable[Detector] | None, func: str) -> tuple[Detector, ...]:
    if not isinstance(text, str):
        raise InputError(
            f"The 'text' parameter of {func} must be a str. Got {type(text).__name__} instead."
        )
    if detectors is None:
        return tuple(_REGISTRY.values())
    if isinstance(detectors, Detector | str):
        raise ConfigError(
            f"The 'detectors' parameter of {func} must be an iterable of Detector "
            f"instances. Got a single {type(detectors).__name__} instead."
        )
    chosen = tuple(detectors)
    for det in chosen:
        if not isinstance(det, BehaviourDetector) and not isinstance(det, Detector):
            raise ConfigError(
                f"The 'detectors' parameter of {func} must hold Detector instances (name, "
                f"reads, families and detect(text)). Got {type(det).__name__} instead."
            )
    return chosen


def detect_behaviours(
    text: str, *, detectors: Iterable[Detector] | None = None
) -> list[BehaviourHit]:
    """Every behaviour hit in ``text``, ordered by position.

    Parameters
    ----------
    text:
        One output: a response, a generation, or tool calls as JSON text.
    detectors:
        Detectors to run; every registered one (:func:`registered_detectors`) when ``None``.

    Returns
    -------
    list of BehaviourHit
        One hit per occurrence (a tag may appear several times), ordered by span.

    Raises
    ------
    InputError
        ``text`` is not a ``str``.
    ConfigError
        ``detectors`` holds something that is not a :class:`Detector`.
    """
    hits = list(_hits(text, detectors, "detect_behaviours"))
    hits.sort(key=lambda h: (h.span, h.tag))
    return hits


def behaviour_tags(text: str, *, detectors: Iterable[Detector] | None = None) -> frozenset[str]:
    """The set of behaviour tags in ``text`` (e.g. ``egress:evil.example``); the fast path.

    Lowercases the text once for all detectors, and each rule's regex runs only when its cheap
    substring prefilters occur, so ordinary prose costs a few dozen substring tests. The
    parameters and errors are those of :func:`detect_behaviours`.
    """
    return frozenset(hit.tag for hit in _hits(text, detectors, "behaviour_tags"))


def _hits(text: str, detectors: Iterable[Detector] | None, func: str) -> Iterator[BehaviourHit]:
    """Every hit of the chosen detectors, the text lower-cased once for all of them.

    The inputs are checked (by ``_chosen``) before the text is touched, so a bad ``text`` is an
    :class:`InputError` naming the parameter, never an ``AttributeError``.
    """
    chosen = _chosen(text, detectors, func)
    lowered = text.lower()
    for det in chosen:
        yield from run_detector(det, text, lowered)
