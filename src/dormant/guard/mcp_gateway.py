"""The MCP gateway: the guard's decisions in front of an MCP tool server.

An agent connects to the gateway instead of the tool server, over stdio or streamable HTTP
(the MCP specification's two transports, 2025-03-26 and later), with the official ``mcp`` SDK's
low-level server on the agent's side and :class:`~dormant.adapters.mcp.MCPTools` (the SDK's
client) on the upstream's side. The gateway

- lists the upstream's tools and pins each definition's digest (:mod:`.mcp_pins`): a tool whose
  definition changed since it was approved is withheld from ``tools/list``, its calls are denied
  and the change is a critical alert in the audit chain (tool poisoning, the rug pull);
- checks every ``tools/call`` through the core's :class:`~dormant.guard.service.Guard` (the
  decision core, the audit log, the hold queue and the monitoring baseline, as the
  OpenAI-compatible proxy does); the gateway adds no rule of its own but the pins above;
- has every decision written to the hash-chained audit log *before* anything is released: a
  denied or held call gets an MCP error result naming the reasons, an allowed one is forwarded
  and its result returned; if the audit log cannot be written, the call is denied (fail closed).

Identity: one per gateway instance (``identity=``) or, over HTTP, one per API key (the
policy's ``key_sha256``; a request without a known key is refused with 401 before MCP sees it).
The gateway does not see the conversation, so the model behind the agent is what the operator
names (``model=``, resolved against the registry like the proxy does); without it the model's
provenance is ``unknown`` and the policy's ``unknown`` ceiling applies.
"""

from __future__ import annotations

import json
import shlex
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from ..adapters.mcp import MCPTools
from ..errors import ConfigError, EndpointError, require
from .audit import AuditEntry
from .calls import call_from_mcp
from .decide import decide
from .mcp_pins import PinnedTool, ToolPins
from .service import Guard
from .types import Decision, Outcome

__all__ = ["GatewayResult", "MCPGateway"]

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class GatewayResult:
    """What the gateway did with one ``tools/call``: the decision, its audit sequence number
    (``None`` when the audit log failed and the call was denied for it) and the text sent back
    when the call was not forwarded."""

    decision: Decision
    audit_seq: int | None
    forwarded: bool
    message: str | None = None


class MCPGateway:
    """A guard in front of one MCP tool server.

    Parameters
    ----------
    upstream:
        The tool server, opened or not (:class:`~dormant.adapters.mcp.MCPTools`).
    guard:
        The core (:class:`~dormant.guard.service.Guard`: policy, audit log, registry); its
        audit database also holds the tool pins.
    identity:
        The agent identity of every caller (stdio), or of HTTP callers without a key; over HTTP
        without it, every caller needs an API key the policy knows.
    model:
        The served name of the model behind the agent, resolved by the core (the policy's
        ``[model_digests]`` and the registry) for the provenance ceiling; ``None`` is an
        unknown model.
    server_name:
        The gateway's name in the MCP handshake.
    """

    def __init__(
        self,
        upstream: MCPTools,
        *,
        guard: Guard,
        identity: str | None = None,
        model: str | None = None,
        server_name: str = "dormant-guard-mcp",
    ) -> None:
        if not isinstance(upstream, MCPTools):
            raise ConfigError(
                f"'upstream' must be an MCPTools connection. Got {type(upstream).__name__}."
            )
        if not isinstance(guard, Guard):
            raise ConfigError(f"'guard' must be a Guard. Got {type(guard).__name__}.")
        policy = guard.policy
        if identity is not None and identity not in policy.identities:
            known = ", ".join(sorted(policy.identities)) or "none"
            raise ConfigError(
                f"The identity {identity!r} is not in the policy's [identities] (known: {known})."
            )
        self.upstream = upstream
        self.guard = guard
        self.policy = policy
        self.audit = guard.audit
        self.identity = identity
        self.model_name = model or "unknown"
        self.server_name = server_name
        self.pins = ToolPins(guard.audit)

    @property
    def server_key(self) -> str:
        """The upstream as the pins name it: its URL or command line."""
        if self.upstream.url is not None:
            return self.upstream.url
        cmd = self.upstream.command
        return cmd if isinstance(cmd, str) else shlex.join(list(cmd or ()))

    # -- the two operations (synchronous; the MCP handlers run them in a worker thread) -------

    def list_tools(self, *, identity: str | None = None) -> list[Any]:
        """The upstream's tools whose definitions are approved (listed afresh, pins checked)."""
        tools = self.upstream.tools(refresh=True)
        pins = self.pins.check(self.server_key, tools, identity=identity or self.identity)
        return [t for t in tools if pins[str(t.name)].approved]

    def call_tool(
        self,
        name: str,
        arguments: Any,
        *,
        identity: str,
        request_id: str | None = None,
    ) -> tuple[GatewayResult, Any]:
        """Decide, audit, and forward (or refuse) one call.

        Returns the :class:`GatewayResult` and the upstream's ``CallToolResult`` (``None`` when
        the call was not forwarded).
        """
        request_id = request_id or f"mcp-{uuid.uuid4().hex[:16]}"
        context = self.guard.context(identity, self.model_name, request_id=request_id)
        call = replace(
            call_from_mcp({"name": str(name), "arguments": arguments}), call_id=request_id
        )
        pin_reason = self._pin_reason(str(name), identity)
        if pin_reason is None:
            decision = self.guard.check_call(context, call)
        else:  # the core's decision, overruled by the pin and audited as such
            decision = decide(context, call, policy=self.policy)
            kept = () if decision.allowed else decision.reasons
            decision = replace(decision, outcome=Outcome.DENY, reasons=(pin_reason, *kept))
            try:
                pinned_seq = self.guard.commit.append(
                    AuditEntry.for_decision(context, decision, face="mcp", pin="changed")
                )
                decision = replace(decision, audit_seq=pinned_seq)
            except Exception as exc:  # fail closed, as the core does
                decision = replace(
                    decision,
                    reasons=(
                        *decision.reasons,
                        f"the audit log could not be written ({type(exc).__name__}); denied "
                        "(fail closed)",
                    ),
                )
        seq: int | None = decision.audit_seq
        if decision.outcome is Outcome.HOLD:
            text = (
                f"dormant guard held the call to {name!r} for approval (hold "
                f"#{decision.hold_id}): "
                + "; ".join(decision.reasons)
                + f". An operator decides with 'dormant guard approvals approve "
                f"{decision.hold_id}'; once approved, call the tool again with the same "
                "arguments."
            )
            return GatewayResult(decision, seq, False, text), None
        if not decision.allowed:
            text = f"dormant guard denied the call to {name!r}: " + "; ".join(decision.reasons)
            return GatewayResult(decision, seq, False, text), None
        result = self.upstream.call_result(call.tool, call.arguments)
        return GatewayResult(decision, seq, True), result

    def _pin_reason(self, name: str, identity: str) -> str | None:
        """Why the tool's definition stops the call (changed, or not offered), else ``None``."""
        try:
            tools = self.upstream.tools(refresh=True)
            pins: dict[str, PinnedTool] = self.pins.check(self.server_key, tools, identity=identity)
        except Exception as exc:  # fail closed
            return f"the upstream's tool definitions could not be checked: {type(exc).__name__}"
        pin = pins.get(name)
        if pin is None:
            return f"the upstream MCP server does not offer a tool {name!r}"
        if not pin.approved:
            return (
                f"the definition of MCP tool {name!r} changed since it was approved (sha256 "
                f"{pin.digest[:12]}… → {pin.seen_digest[:12]}…); approve it with 'dormant guard "
                f"mcp-tools approve {name}' after reading it"
            )
        return None

    # -- MCP server side -------------------------------------------------------------------

    def mcp_server(self) -> Any:
        """The SDK's low-level ``Server`` with this gateway's ``tools/list`` and ``tools/call``."""
        require("mcp", "agent")
        import anyio
        import mcp_types as types
        from mcp.server.lowlevel import Server

        gateway = self

        async def on_list_tools(ctx: Any, params: Any) -> Any:
            identity = gateway._identity_of(ctx)
            try:
                tools = await anyio.to_thread.run_sync(
                    lambda: gateway.list_tools(identity=identity)
                )
            except EndpointError as exc:
                raise RuntimeError(f"upstream MCP server failed: {exc}") from None
            return types.ListToolsResult(tools=tools)

        async def on_call_tool(ctx: Any, params: Any) -> Any:
            identity = gateway._identity_of(ctx)
            if identity is None:  # HTTP without a known key (refused earlier; defence in depth)
                return _error_result(types, "dormant guard: no agent identity for this caller")
            rid = None if ctx.request_id is None else f"mcp-{ctx.request_id}-{uuid.uuid4().hex[:8]}"
            try:
                outcome, result = await anyio.to_thread.run_sync(
                    lambda: gateway.call_tool(
                        params.name, params.arguments or {}, identity=identity, request_id=rid
                    )
                )
            except EndpointError as exc:
                return _error_result(types, f"the upstream MCP server failed: {exc}")
            if not outcome.forwarded:
                return _error_result(types, outcome.message or "denied by dormant guard")
            return result

        return Server(
            self.server_name,
            version=_version(),
            on_list_tools=on_list_tools,
            on_call_tool=on_call_tool,
        )

    def _identity_of(self, ctx: Any) -> str | None:
        request = getattr(ctx, "request", None)
        headers = getattr(request, "headers", None)
        if headers is not None:
            key = _bearer(headers.get("authorization", ""))
            if key:
                return self.policy.identity_for_key(key)
        return self.identity

    async def run_stdio(self) -> None:
        """Serve the agent over this process's stdin/stdout until it closes them."""
        from mcp.server.stdio import stdio_server

        server = self.mcp_server()
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    def http_app(self, *, host: str = "127.0.0.1", path: str = "/mcp") -> ASGIApp:
        """The streamable-HTTP ASGI app, behind an API-key check (401 in MCP's JSON-RPC shape).

        A request needs ``Authorization: Bearer <key>`` with a key the policy knows, unless the
        gateway has a default ``identity``.
        """
        server = self.mcp_server()
        inner = server.streamable_http_app(streamable_http_path=path, host=host)
        gateway = self

        async def app(scope: Scope, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = {k.lower(): v for k, v in scope.get("headers", [])}
                key = _bearer(headers.get(b"authorization", b"").decode("latin-1"))
                known = gateway.policy.identity_for_key(key) if key else None
                if known is None and (key or gateway.identity is None):
                    body = json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": None,
                            "error": {
                                "code": -32001,
                                "message": (
                                    "Incorrect API key."
                                    if key
                                    else "Missing API key: send "
                                    "'Authorization: Bearer <key>' with a key of the policy."
                                ),
                            },
                        }
                    ).encode()
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 401,
                            "headers": [
                                (b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b"Bearer"),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
            await inner(scope, receive, send)

        return app


def _bearer(header: str) -> str | None:
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    return given.strip()


def _error_result(types: Any, text: str) -> Any:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _version() -> str:
    from .._version import __version__

    return str(__version__)
