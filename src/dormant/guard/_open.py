"""Open the core for ``dormant guard serve``: policy, registry, audit log, warmed up.

Failures that must stop the guard before it listens are :class:`~dormant.errors.ConfigError`
naming the option (exit 2): an invalid policy (the file and line), an audit log that cannot be
opened for writing. A registry that does not answer does **not** stop it: every lookup retries,
and until it answers every model is ``unknown`` (the strict ceiling) and every request is in
the suspect tier (the proxy fails closed on the core's ``trigger_error``).
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import ConfigError, RegistryError
from .service import Guard

log = logging.getLogger("dormant.guard.proxy")


def open_guard(
    policy_path: Any,
    *,
    registry_url: str | None = None,
    audit_url: str | None = None,
    audit_timeout: float = 30.0,
) -> Guard:
    """The core's :class:`Guard` over the policy file, the registry and the audit log.

    Parameters
    ----------
    policy_path:
        The guard policy (TOML next to its Cedar file).
    registry_url:
        The registry (provenance and known triggers), or None: every model ``unknown``.
    audit_url:
        The audit log (None: the per-user default).
    audit_timeout:
        Seconds an audit write waits for the database's write lock before it fails (and the
        request is answered 503 with nothing released).
    """
    from .audit import AuditLog
    from .policy import GuardPolicy

    policy = GuardPolicy.load(policy_path)
    registry = None
    if registry_url is not None:
        from ..registry import Registry

        registry = Registry(url=registry_url)
        try:
            registry.connect()
        except (RegistryError, OSError) as exc:
            log.warning("registry unavailable at start", extra={"error": str(exc)})
    try:
        audit = AuditLog.open(audit_url, timeout=audit_timeout)
        with audit.store.tx() as conn:  # writable now, or refuse to start
            conn.exec_driver_sql("SELECT 1")
    except (RegistryError, OSError) as exc:
        raise ConfigError(
            f"--audit: the audit log cannot be opened for writing ({exc}); the guard never "
            "runs without one."
        ) from exc
    guard = Guard(policy, audit=audit, registry=registry)
    warm(guard)
    return guard


def warm(guard: Guard) -> None:
    """Load what the first request would load (detectors, Cedar, tables) before listening,
    so the first agent is not the one that waits. Writes nothing."""
    from .decide import decide, screen_response
    from .types import DecisionContext, ModelInfo, ProposedCall

    ctx = DecisionContext("warm-up", ModelInfo("warm-up"), input_texts=("warm-up",))
    decide(ctx, ProposedCall("warm-up", {"url": "https://example.com/x"}), policy=guard.policy)
    screen_response(ctx, "warm-up text with a url https://example.com/x", policy=guard.policy)
    guard.triggers.find([("message[0]", "warm-up")])
