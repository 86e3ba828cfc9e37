"""``dormant guard serve``: the OpenAI-compatible guard proxy in front of a model server."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

_DESCRIPTION = (
    "Run the runtime guard as an OpenAI-compatible proxy (POST /v1/chat/completions with tools, "
    "streaming or not; GET /v1/models, /healthz, /metrics) in front of any OpenAI-compatible "
    "model server. Each caller authenticates with its agent identity's API key; every proposed "
    "tool call is decided by the policy (deny by default, capped by the model's provenance and "
    "by known triggers in the input) and written to the audit log before anything is released. "
    "Logs are JSON lines on stderr."
)

_EPILOG = """\
example:
  dormant serve-model ./organisms/support --port 8000 &
  dormant guard serve --upstream http://127.0.0.1:8000/v1 --policy guard.toml \\
      --registry ./registry.sqlite3 --audit ./audit.sqlite3
  curl -s http://127.0.0.1:8088/v1/chat/completions \\
      -H "Authorization: Bearer $AGENT_KEY" -H 'Content-Type: application/json' \\
      -d '{"model": "support", "messages": [{"role": "user", "content": "where is order 1234?"}]}'

The guard listens on loopback only unless --allow-remote is given. An invalid policy stops it
before it listens (exit 2, naming the file and line).
"""


def register(sub: Any) -> None:
    """Add ``dormant guard serve``."""
    p = sub.add_parser(
        "serve",
        help="run the guard as an OpenAI-compatible proxy in front of a model server",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--upstream", required=True, metavar="URL", help="the model server's OpenAI base URL"
    )
    p.add_argument(
        "--policy", required=True, metavar="POLICY", help="the guard policy (TOML + Cedar)"
    )
    p.add_argument(
        "--registry",
        default=None,
        metavar="URL",
        help="registry for provenance and known triggers (sqlite path or postgresql:// URL); "
        "without it every model is 'unknown'",
    )
    p.add_argument(
        "--audit",
        default=None,
        metavar="URL",
        help="audit log (sqlite path or postgresql:// URL; default: the per-user data directory)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    p.add_argument(
        "--port", type=int, default=8088, help="port; 0 takes a free one (default: %(default)s)"
    )
    p.add_argument(
        "--upstream-key",
        default=None,
        metavar="ENV",
        help="name of the environment variable holding the key the guard sends upstream",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds the upstream may take (default: %(default)s)",
    )
    p.add_argument(
        "--max-body",
        type=int,
        default=1 << 20,
        metavar="BYTES",
        help="largest request body accepted (default: %(default)s)",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that other machines can reach (by default only loopback)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="log warnings and errors only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from . import EXIT_OK
    from .serve import is_loopback

    host = str(args.host).strip("[]")
    if not is_loopback(host) and not args.allow_remote:
        raise ConfigError(
            f"--host {args.host} is reachable from other machines; the guard listens on loopback "
            "(127.0.0.1, ::1, localhost) unless you add --allow-remote."
        )
    upstream_key = None
    if args.upstream_key:
        upstream_key = os.environ.get(args.upstream_key)
        if not upstream_key:
            raise ConfigError(
                f"--upstream-key names the environment variable {args.upstream_key!r}, "
                "which is not set or empty."
            )
    if args.timeout <= 0:
        raise ConfigError(f"--timeout must be > 0 seconds. Got {args.timeout}.")
    if args.max_body < 1024:
        raise ConfigError(f"--max-body must be at least 1024 bytes. Got {args.max_body}.")

    from ..guard._app import create_app
    from ..guard._open import open_guard
    from ..guard._ops import GuardServer, json_handler
    from ..guard.proxy import ProxySettings

    settings = ProxySettings(
        args.upstream,
        upstream_key=upstream_key,
        timeout=args.timeout,
        max_body_bytes=args.max_body,
    )
    logger = logging.getLogger("dormant.guard")
    logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    handler = json_handler(sys.stderr)
    logger.addHandler(handler)
    try:
        guard = open_guard(args.policy, registry_url=args.registry, audit_url=args.audit)
        server = GuardServer(create_app(guard, settings=settings), host=host, port=args.port)
        logger.info(
            "guard listening",
            extra={
                "url": server.url,
                "upstream": settings.upstream,
                "policy": args.policy,
                "policy_version": guard.policy.version,
            },
        )
        print(f"Guarding {settings.upstream} at {server.url}", flush=True)
        stopped: list[int] = []
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            # uvicorn shuts down gracefully on these, then re-raises them: end with exit 0
            try:
                previous[sig] = signal.signal(sig, lambda signum, frame: stopped.append(signum))
            except ValueError:  # not the main thread: uvicorn's own handling applies
                break
        try:
            server.serve_forever()
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
        logger.info("guard stopped", extra={"signal": stopped[0] if stopped else None})
    finally:
        logger.removeHandler(handler)
    return EXIT_OK
