"""The HTTP side of :mod:`.openai_server`: routes, OpenAI-shaped errors and the handler.

The handler only reads, authorises, routes and writes JSON; every model call goes through the
:class:`~.openai_server.ChatServer` it is bound to.
"""

from __future__ import annotations

import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .openai_server import ChatServer

#: path -> the methods it answers
_ROUTES: dict[str, tuple[str, ...]] = {
    "/v1/chat/completions": ("POST",),
    "/v1/models": ("GET",),
    "/health": ("GET",),
}


class RequestError(Exception):
    """A request the server answers with an OpenAI-shaped error (never leaves the server)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class Server(ThreadingHTTPServer):
    """Threads per connection; closing does not wait for idle keep-alive connections."""

    app: ChatServer
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line instead of socketserver's traceback on stderr."""
        exc = sys.exc_info()[1]
        self.app.log(f"{client_address[0]} connection error: {type(exc).__name__}: {exc}")


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every answer is JSON with a Content-Length."""

    app: ChatServer
    protocol_version = "HTTP/1.1"
    timeout = 120  # seconds an idle keep-alive connection or a slow body may take
    server_version = "dormant-serve"
    sys_version = ""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    # -- dispatch -------------------------------------------------------------------------

    def _handle(self) -> None:
        self._started = time.perf_counter()
        self._body_read = False
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if len(path) > 1:
            path = path.rstrip("/")
        try:
            with self.app.in_flight():
                status, payload = self._route(path)
        except (TimeoutError, ConnectionError):  # the client went away mid-request
            self.close_connection = True
            self._log_line("disconnected")
            return
        except RequestError as exc:
            self._send(exc.status, exc.body(), exc.headers)
        except Exception as exc:  # a bug of ours: answered as JSON, no traceback
            self._send(
                500,
                RequestError(
                    500,
                    f"Internal server error ({type(exc).__name__}); the server keeps running.",
                    type="server_error",
                ).body(),
            )
        else:
            self._send(status, payload)

    def _route(self, path: str) -> tuple[int, dict[str, Any]]:
        app = self.app
        allowed = _ROUTES.get(path)
        model_path = path.startswith("/v1/models/")
        if model_path:
            allowed = ("GET",)
        if allowed is None:
            raise RequestError(
                404,
                f"Unknown path {path!r}. This server offers POST /v1/chat/completions, "
                "GET /v1/models and GET /health.",
                code="not_found",
            )
        if self.command not in allowed:
            raise RequestError(
                405,
                f"{self.command} is not allowed on {path}; use {' or '.join(allowed)}.",
                code="method_not_allowed",
                headers={"Allow": ", ".join(allowed)},
            )
        if path == "/health":
            return 200, {"status": "ok", "model": app.model_name}
        self._authorise()
        if path == "/v1/models":
            return 200, app.models()
        if model_path:
            wanted = path[len("/v1/models/") :]
            if wanted != app.model_name:
                raise RequestError(
                    404,
                    f"The model '{wanted}' does not exist; this server serves '{app.model_name}'.",
                    param="model",
                    code="model_not_found",
                )
            return 200, app._model_entry()
        return 200, app.complete(self._read_json())

    def _authorise(self) -> None:
        key = self.app.api_key
        if key is None:
            return
        header = self.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise RequestError(
                401,
                "Missing API key: send the header 'Authorization: Bearer <key>'.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(given.strip().encode(), key.encode()):
            raise RequestError(
                401,
                "Incorrect API key provided.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def _read_json(self) -> Any:
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            raise RequestError(
                411, "Send the request body with a Content-Length (chunked bodies are not read)."
            )
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise RequestError(411, "The request needs a Content-Length header and a JSON body.")
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError
        except ValueError:
            raise RequestError(
                400, f"Content-Length must be a non-negative integer. Got {length_header!r}."
            ) from None
        if length > self.app.max_body_bytes:
            raise RequestError(
                413,
                f"The request body of {length:,} bytes is over this server's limit of "
                f"{self.app.max_body_bytes:,} bytes.",
                code="request_too_large",
            )
        data = self.rfile.read(length)
        self._body_read = True
        if len(data) < length:
            raise RequestError(400, "The request body ended before its Content-Length.")
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(
                400, f"The request body is not valid JSON ({exc}); expected a JSON object."
            ) from None

    # -- output ---------------------------------------------------------------------------

    def _send(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        if not getattr(self, "_body_read", True) and self._may_have_body():
            self.close_connection = True  # the body we did not read would be the next request
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        self._log_line(status)

    def _may_have_body(self) -> bool:
        """Whether the request announced a body (a Content-Length other than 0, or chunks)."""
        headers = getattr(self, "headers", None)
        if headers is None:
            return True
        if headers.get("Transfer-Encoding"):
            return True
        return (headers.get("Content-Length") or "0").strip() != "0"

    def _log_line(self, status: int | str) -> None:
        started = getattr(self, "_started", None)
        elapsed = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        path = (getattr(self, "path", None) or "").split("?", 1)[0]
        method = getattr(self, "command", None) or "-"
        self.app.log(f"{self.client_address[0]} {method} {path} {status} {elapsed:.0f} ms")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed request lines and headers, answered in the JSON error shape too."""
        self._body_read = True
        self.close_connection = True
        self._send(code, RequestError(code, message or explain or "Bad request.").body())

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Logged by :meth:`_send` instead (one line per request, with the time taken)."""

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing of http.server's own logging reaches the client or stderr."""
