"""Operations for the guard proxy: Prometheus metrics, JSON logs, a server on a thread.

- Metrics use ``prometheus-client`` with a registry per app (no process-global state), in the
  Prometheus text exposition format (https://prometheus.io/docs/instrumenting/exposition_formats/).
- Logs are one JSON object per line through the standard :mod:`logging` module. The formatter
  is a few lines here rather than ``python-json-logger`` because the fields are fixed and the
  guard's extra is already long; it renders a record's ``extra=`` fields as top-level keys.
- :class:`GuardServer` runs the ASGI app on uvicorn in a background thread on a socket it bound
  itself (so a busy port is a clear error before anything starts, and port 0 takes a free one);
  the CLI, the tests and the benchmarks start the proxy the same way.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigError

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            out["error"] = f"{type(exc).__name__}: {exc}"
        return json.dumps(out, default=str, separators=(",", ":"))


def json_handler(stream: Any = None, *, level: int = logging.INFO) -> logging.Handler:
    """A stream handler writing :class:`JsonFormatter` lines."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(level)
    return handler


class ProxyMetrics:
    """The proxy's Prometheus metrics, on their own ``CollectorRegistry``."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "dormant_guard_requests",
            "Requests answered, by route and HTTP status.",
            ["route", "status"],
            registry=r,
        )
        self.decisions = Counter(
            "dormant_guard_decisions",
            "Tool-call and response decisions, by outcome and the kind of their first reason.",
            ["outcome", "reason"],
            registry=r,
        )
        self.alerts = Counter(
            "dormant_guard_alerts", "Alerts raised by decisions.", ["alert"], registry=r
        )
        buckets = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
        self.upstream_latency = Histogram(
            "dormant_guard_upstream_latency_seconds",
            "Time the upstream took to answer (to its last byte).",
            registry=r,
            buckets=buckets,
        )
        self.audit_latency = Histogram(
            "dormant_guard_audit_write_seconds",
            "Time one durable audit write took.",
            registry=r,
            buckets=buckets,
        )
        self.audit_failures = Counter(
            "dormant_guard_audit_failures", "Audit writes that failed.", registry=r
        )

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|\b\d+(?:\.\d+)?\b")


def reason_kind(reasons: tuple[str, ...]) -> str:
    """A short, low-cardinality label for a decision's first reason: the text before ``:``
    with every quoted value and number replaced by ``_`` (a destination, tool or amount the
    model chose never becomes a label value, so the series stay bounded by the reason
    templates)."""
    if not reasons:
        return "none"
    head = reasons[0].split(":", 1)[0].strip().lower()
    head = _LITERAL.sub("_", head)
    return head[:60] or "none"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; a clear :class:`ConfigError` when it cannot."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be from 0 to 65535. Got {port}.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} does not resolve to an address ({exc}).") from exc
    family, kind, proto, _, addr = infos[0]
    # proto must be IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY on accepted connections only
    # then, and without it Nagle's algorithm meets delayed ACKs and every answer waits ~40 ms
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise ConfigError(
                f"port {port} on {host} is already in use; stop what listens there or pick "
                "another with --port (0 takes a free one)."
            ) from exc
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}.") from exc
    sock.setblocking(False)
    return sock


class GuardServer:
    """Run an ASGI app on uvicorn in a background thread (``with GuardServer(app) as s:``).

    Parameters
    ----------
    app:
        The ASGI application (:func:`dormant.guard._app.create_app`).
    host, port:
        Where to listen; port 0 takes a free one (read it back from :attr:`port`).
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self._sock = bind(host, port)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        """The OpenAI base URL (``http://host:port/v1``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def start(self, *, timeout: float = 30.0) -> GuardServer:
        import uvicorn

        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="on", timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise ConfigError("the guard proxy stopped while starting (see its log).")
            if time.monotonic() > deadline:
                raise ConfigError(f"the guard proxy did not start within {timeout:g} s.")
            time.sleep(0.01)
        return self

    def serve_forever(self) -> None:
        """Run in the calling thread until SIGINT/SIGTERM (the CLI)."""
        import uvicorn

        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="on", timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        self._server.run(sockets=[self._sock])

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> GuardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
