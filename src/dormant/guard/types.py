"""The guard's nouns: who asks, what it proposes, what is decided.

Every face of the guard (the OpenAI-compatible proxy, the MCP gateway, an agent framework calling
:func:`dormant.guard.decide` in process) builds a :class:`DecisionContext` and a
:class:`ProposedCall` and gets back a :class:`Decision`. These records are frozen and carry no
behaviour beyond their own serialisation, so the decision core stays a pure function of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Privilege(StrEnum):
    """The privilege class of a tool, from least to most dangerous.

    ``read`` looks things up; ``write`` changes state inside the organisation; ``egress`` sends
    data to a destination (HTTP, e-mail, webhook); ``secret`` reads or moves a credential;
    ``admin`` changes identities, permissions or the guard itself.
    """

    READ = "read"
    WRITE = "write"
    EGRESS = "egress"
    SECRET = "secret"
    ADMIN = "admin"


class ProvenanceState(StrEnum):
    """What the registry says of the model behind a request (the ceiling's key).

    ``verified`` — its signature verified; ``signed`` — signed, not (yet) verified;
    ``unknown`` — never recorded, or the registry could not say; ``tampered`` — verification
    failed; ``flagged`` — a recorded scan of it has a high or critical finding (flagged wins
    over any signature state).
    """

    VERIFIED = "verified"
    SIGNED = "signed"
    UNKNOWN = "unknown"
    TAMPERED = "tampered"
    FLAGGED = "flagged"


class Outcome(StrEnum):
    """``allow`` releases the call; ``deny`` removes it; ``hold`` waits for a person's approval."""

    ALLOW = "allow"
    DENY = "deny"
    HOLD = "hold"


@dataclass(frozen=True)
class ModelInfo:
    """The upstream model as the guard resolved it."""

    name: str
    digest: str | None = None
    provenance: ProvenanceState = ProvenanceState.UNKNOWN
    #: Behaviour tags a probe proved for this model (``egress:evil.example``, ``tool:x``):
    #: explicit denials.
    proven_behaviours: tuple[str, ...] = ()
    detail: str | None = None


@dataclass(frozen=True)
class TriggerMatch:
    """A known trigger (recorded by a scan) found in the request's text."""

    text: str
    kind: str
    target: str | None
    where: str  # "message[2]", "tool_result[0]", "retrieved[1]" …
    severity: str = "high"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the audit entry's ``triggers`` items)."""
        return {
            "text": self.text,
            "kind": self.kind,
            "target": self.target,
            "where": self.where,
            "severity": self.severity,
        }


@dataclass(frozen=True)
class DecisionContext:
    """Everything the decision may depend on besides the proposed call itself."""

    identity: str
    model: ModelInfo
    #: Known triggers found in the incoming messages / retrieved documents.
    triggers: tuple[TriggerMatch, ...] = ()
    #: The request's text that the model saw (messages, tool results), for canary and leak checks.
    input_texts: tuple[str, ...] = ()
    #: Honeytoken credentials placed in this identity's context.
    canaries: tuple[str, ...] = ()
    request_id: str | None = None
    #: The request's system message(s), for the output side's leaked-system-prompt check.
    system_prompt: str | None = None


@dataclass(frozen=True)
class ProposedCall:
    """One tool call the model proposed (OpenAI ``tool_calls[i]`` or MCP ``tools/call``)."""

    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None
    #: The raw argument text, kept when it was not valid JSON (then ``arguments`` is empty and the
    #: call is denied as malformed).
    raw_arguments: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``tool``, ``arguments`` (a copy of the top level), ``call_id``,
        ``raw_arguments``."""
        return {
            "tool": self.tool,
            "arguments": dict(self.arguments),
            "call_id": self.call_id,
            "raw_arguments": self.raw_arguments,
        }


@dataclass(frozen=True)
class Decision:
    """The outcome for one proposed call, with every reason that led to it."""

    outcome: Outcome
    reasons: tuple[str, ...]
    call: ProposedCall
    privilege: Privilege | None = None
    #: The highest privilege this request may use after the provenance ceiling and triggers.
    ceiling: Privilege | None = None
    tier: str = "normal"  # "normal" or "suspect" (a known trigger in the input)
    #: Behaviour tags the detectors found on the call (``egress:…``, ``secret:…``, ``canary``).
    behaviours: tuple[str, ...] = ()
    #: Raised alerts: ``canary`` (critical), ``new-tool`` / ``new-destination`` (monitoring).
    alerts: tuple[str, ...] = ()
    policy_version: str | None = None
    #: Destination hosts found in the call's arguments (what the allow-list was checked on).
    destinations: tuple[str, ...] = ()
    #: Sequence number of the decision's audit entry, once written (see ``guard.service``).
    audit_seq: int | None = None
    #: The hold queue's id when the outcome is ``hold`` and the call was queued.
    hold_id: int | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (enums as their values).

        Written out by hand rather than with :func:`dataclasses.asdict`, whose recursive deep
        copy was the largest CPU cost of a guarded request; the keys and values are the same.
        """
        return {
            "outcome": self.outcome.value,
            "reasons": self.reasons,
            "call": self.call.to_dict(),
            "privilege": self.privilege.value if self.privilege else None,
            "ceiling": self.ceiling.value if self.ceiling else None,
            "tier": self.tier,
            "behaviours": self.behaviours,
            "alerts": self.alerts,
            "policy_version": self.policy_version,
            "destinations": self.destinations,
            "audit_seq": self.audit_seq,
            "hold_id": self.hold_id,
        }


@dataclass(frozen=True)
class ResponseDecision:
    """The outcome for one response text (the output side).

    ``allow`` releases ``text`` (which may carry redactions: secrets and canaries replaced by
    ``[REDACTED:…]``); ``deny`` withholds the response (leaked system prompt or policy text,
    insecure code where the policy denies it).
    """

    outcome: Outcome
    reasons: tuple[str, ...]
    text: str
    behaviours: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()
    redactions: int = 0
    policy_version: str | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the text itself is left out: it may be what was withheld)."""
        return {
            "outcome": self.outcome.value,
            "reasons": self.reasons,
            "behaviours": self.behaviours,
            "alerts": self.alerts,
            "redactions": self.redactions,
            "policy_version": self.policy_version,
        }
