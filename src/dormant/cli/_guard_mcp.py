"""``dormant guard mcp`` (the MCP gateway) and ``dormant guard mcp-tools list|approve``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._guard_admin import AUDIT_HELP

_DESCRIPTION = (
    "Put the guard in front of an MCP tool server: agents connect to the gateway (stdio or "
    "streamable HTTP) instead of the server. Every tools/call is decided by the guard policy "
    "(deny by default, per agent identity, with the provenance ceiling of --model) and audited "
    "before it is forwarded; a denied call gets an MCP error result naming the reason. Each "
    "tool definition's digest is pinned on first sight; a changed definition (tool poisoning, "
    "rug pull) raises a critical alert and the tool is withheld and denied until approved "
    "with 'dormant guard mcp-tools approve'."
)

_EPILOG = """\
examples:
  # stdio: an MCP client starts the gateway, the gateway starts the tool server
  dormant guard mcp --policy guard.toml --identity support-bot \\
      --upstream-command "python -m my_tool_server"
  # streamable HTTP on loopback: each agent sends its own API key (Authorization: Bearer)
  dormant guard mcp --policy guard.toml --transport http --port 8765 \\
      --upstream-url http://127.0.0.1:9000/mcp

Start only tool servers you trust with --upstream-command: it runs as you.
"""


def register(sub: Any) -> None:
    """Add ``dormant guard mcp`` and ``dormant guard mcp-tools``."""
    p = sub.add_parser(
        "mcp",
        help="a gateway in front of an MCP tool server (stdio or streamable HTTP)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up = p.add_mutually_exclusive_group(required=True)
    up.add_argument("--upstream-command", metavar="CMD", help="the tool server's command (stdio)")
    up.add_argument("--upstream-url", metavar="URL", help="the tool server's streamable-HTTP URL")
    p.add_argument("--policy", required=True, help="the guard policy's TOML file")
    p.add_argument("--audit", metavar="URL", help=AUDIT_HELP)
    p.add_argument(
        "--identity",
        help="the agent identity of every caller (required for stdio; over HTTP, callers "
        "without an API key get it)",
    )
    p.add_argument(
        "--model",
        help="the model driving the agent, resolved through the policy's [model_digests] and "
        "--registry for the provenance ceiling (default: unknown)",
    )
    p.add_argument("--registry", metavar="URL", help="registry (sqlite path or postgresql://)")
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP address (default: %(default)s)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default: %(default)s)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per upstream request")
    p.set_defaults(func=_run)

    t = sub.add_parser("mcp-tools", help="pinned MCP tool definitions: list, approve")
    tsub = t.add_subparsers(dest="mcp_tools_action", metavar="ACTION")
    t.set_defaults(func=lambda a: _help(t))
    lst = tsub.add_parser("list", help="every pinned tool and whether its definition changed")
    lst.add_argument("--audit", metavar="URL", help=AUDIT_HELP)
    lst.add_argument("--server", help="only this upstream (its URL or command line)")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_tools_list)
    ap = tsub.add_parser("approve", help="approve a changed tool's new definition")
    ap.add_argument("name", help="the tool's name")
    ap.add_argument("--server", required=True, help="the upstream (its URL or command line)")
    ap.add_argument("--audit", metavar="URL", help=AUDIT_HELP)
    ap.add_argument("--actor", help="who approves (default: the login name)")
    ap.set_defaults(func=_tools_approve)


def _help(parser: argparse.ArgumentParser) -> int:
    from . import EXIT_USAGE

    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    from ..adapters.mcp import MCPTools
    from ..errors import ConfigError
    from ..guard._open import open_guard
    from ..guard.mcp_gateway import MCPGateway
    from ..guard.policy import GuardPolicy
    from . import EXIT_OK
    from .serve import is_loopback

    host = str(args.host).strip("[]")
    if args.transport == "http":
        if not is_loopback(host) and not args.allow_remote:
            raise ConfigError(
                f"--host {args.host} is reachable from other machines; the gateway serves on "
                "loopback unless you add --allow-remote."
            )
        if not 0 <= args.port <= 65535:
            raise ConfigError(f"--port must be from 0 to 65535. Got {args.port}.")
    elif args.identity is None:
        raise ConfigError(
            "--identity is required with --transport stdio (one agent identity per gateway)."
        )
    policy = GuardPolicy.load(args.policy)
    if args.identity is not None and args.identity not in policy.identities:
        known = ", ".join(sorted(policy.identities)) or "none"
        raise ConfigError(
            f"--identity {args.identity!r} is not in the policy's [identities] (known: {known})."
        )
    guard = open_guard(args.policy, registry_url=args.registry, audit_url=args.audit)
    upstream = MCPTools(command=args.upstream_command, url=args.upstream_url, timeout=args.timeout)
    try:
        upstream.open()
        gateway = MCPGateway(upstream, guard=guard, identity=args.identity, model=args.model)
        gateway.list_tools()  # pin the definitions now; a change is alerted at start
        if args.transport == "stdio":
            import anyio

            anyio.run(gateway.run_stdio)
        else:
            import uvicorn

            config = uvicorn.Config(
                gateway.http_app(host=host),
                host=host,
                port=args.port,
                log_config=None,
                access_log=False,
                lifespan="on",
                ws="none",
            )
            server = uvicorn.Server(config)
            print(
                f"Guarding {gateway.server_key} at http://{args.host}:{args.port}/mcp", flush=True
            )
            server.run()
    finally:
        upstream.close()
        guard.close()
        guard.audit.close()
    return EXIT_OK


def _tools_list(args: argparse.Namespace) -> int:
    from ..guard.audit import AuditLog
    from ..guard.mcp_pins import ToolPins
    from . import EXIT_OK

    with AuditLog.open(args.audit) as log:
        pins = ToolPins(log).list(args.server)
    if args.json:
        for pin in pins:
            print(json.dumps(pin.__dict__ | {"approved": pin.approved}))
        return EXIT_OK
    if not pins:
        print("No MCP tool is pinned yet.")
    for pin in pins:
        flag = "approved" if pin.approved else "CHANGED (denied until approved)"
        print(f"{pin.server}  {pin.name}  {flag}  sha256 {pin.seen_digest[:16]}…")
    return EXIT_OK


def _tools_approve(args: argparse.Namespace) -> int:
    import getpass

    from ..guard.audit import AuditLog
    from ..guard.mcp_pins import ToolPins
    from . import EXIT_OK

    actor = args.actor or getpass.getuser()
    with AuditLog.open(args.audit) as log:
        pins = ToolPins(log)
        definition = pins.definition(args.server, args.name)
        pin = pins.approve(args.server, args.name, by=actor)
    print(f"Approved {pin.name} of {pin.server} at sha256 {pin.digest}:")
    print(json.dumps(definition, indent=2, ensure_ascii=False))
    return EXIT_OK
