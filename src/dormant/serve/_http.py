"""The HTTP side of :mod:`.openai_server`: an ASGI app (FastAPI on uvicorn) with OpenAI errors.

The app only reads, authorises, routes and writes JSON or server-sent events; every model call
goes through the :class:`~.openai_server.ChatServer` it is bound to.

Two things are below the app, in uvicorn's HTTP/1.1 protocol (h11): a request line or header
that is not HTTP is answered by :class:`JsonH11Protocol` in the same JSON error shape as
everything else (uvicorn's own answer is plain text), and a response to a request whose body
was not read (a 401, a 413 announced by ``Content-Length``) carries ``Connection: close`` so
that the unread body is never taken for the next request.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..errors import DormantError, require


class BoundServer(Protocol):
    """What the HTTP layer needs of the server it is bound to
    (:class:`~.openai_server.ChatServer` is the one implementation; a protocol keeps this
    module below it in the import graph)."""

    model_name: str
    api_key: str | None
    max_body_bytes: int
    read_timeout: float

    def models(self) -> dict[str, Any]: ...

    def _model_entry(self) -> dict[str, Any]: ...

    async def complete_async(self, body: Any) -> dict[str, Any] | AsyncIterator[bytes]: ...

    def in_flight(self) -> AbstractContextManager[None]: ...

    def log(self, line: str) -> None: ...


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_OFFERS = "This server offers POST /v1/chat/completions, GET /v1/models and GET /health."


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


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def build_app(server: BoundServer) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI app of ``server``: FastAPI routes wrapped by :class:`_Envelope`."""
    fastapi: Any = require("fastapi", "guard")
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, Response, StreamingResponse

    app = fastapi.FastAPI(
        title="dormant serve-model",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )

    def error_response(exc: RequestError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestError)
    async def on_request_error(request: Request, exc: RequestError) -> Response:
        return error_response(exc)

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException) -> Response:
        path = request.scope["path"]
        if exc.status_code == 405:
            allowed = [m.strip() for m in (exc.headers or {}).get("Allow", "").split(",")]
            allowed = [m for m in allowed if m and m != "HEAD"] or ["GET"]
            return error_response(
                RequestError(
                    405,
                    f"{request.method} is not allowed on {path}; use {' or '.join(allowed)}.",
                    code="method_not_allowed",
                    headers={"Allow": ", ".join(allowed)},
                )
            )
        if exc.status_code == 404:
            return error_response(
                RequestError(404, f"Unknown path {path!r}. {_OFFERS}", code="not_found")
            )
        return error_response(RequestError(exc.status_code, str(exc.detail)))

    def authorise(request: Request) -> None:
        key = server.api_key
        if key is None:
            return
        header = request.headers.get("authorization", "")
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

    async def read_json(request: Request) -> Any:
        if request.headers.get("transfer-encoding", "").lower() not in ("", "identity"):
            raise RequestError(
                411, "Send the request body with a Content-Length (chunked bodies are not read)."
            )
        length_header = request.headers.get("content-length")
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
        if length > server.max_body_bytes:
            raise RequestError(
                413,
                f"The request body of {length:,} bytes is over this server's limit of "
                f"{server.max_body_bytes:,} bytes.",
                code="request_too_large",
            )
        try:
            data = await asyncio.wait_for(request.body(), server.read_timeout)
        except TimeoutError:
            raise RequestError(
                408,
                f"The request body did not arrive within {server.read_timeout:g} s "
                f"({length:,} bytes announced); send it at once.",
                code="request_timeout",
                headers={"Connection": "close"},
            ) from None
        if len(data) < length:
            raise RequestError(400, "The request body ended before its Content-Length.")
        try:
            return json.loads(data)
        except RecursionError:
            raise RequestError(
                400, "The request body is nested too deeply to read; expected a JSON object."
            ) from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a 5,000-digit number
            raise RequestError(
                400,
                f"The request body is not valid JSON ({str(exc)[:160]}); expected a JSON object.",
            ) from None

    def guarded(
        endpoint: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        """Every failure of ours is answered as JSON (500), never as a traceback."""

        async def wrapper(request: Request) -> Response:
            try:
                return await endpoint(request)
            except RequestError as exc:
                return error_response(exc)
            except ClientDisconnect:
                request.scope["dormant.disconnected"] = True
                return Response(status_code=499)
            except Exception as exc:  # a bug of ours: answered as JSON, no traceback
                detail = type(exc).__name__
                if isinstance(exc, DormantError):
                    detail += f": {exc}"
                return error_response(
                    RequestError(
                        500,
                        f"Internal server error ({detail}); the server keeps running.",
                        type="server_error",
                    )
                )

        wrapper.__name__ = endpoint.__name__
        # the classes themselves: FastAPI reads the signature, and these names are local here
        wrapper.__annotations__ = {"request": Request, "return": Response}
        return wrapper

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": server.model_name})

    async def models(request: Request) -> Response:
        authorise(request)
        return JSONResponse(server.models())

    async def one_model(request: Request) -> Response:
        authorise(request)
        wanted = request.path_params["model_id"]
        if wanted != server.model_name:
            raise RequestError(
                404,
                f"The model '{wanted}' does not exist; this server serves '{server.model_name}'.",
                param="model",
                code="model_not_found",
            )
        return JSONResponse(server._model_entry())

    async def completions(request: Request) -> Response:
        authorise(request)
        body = await read_json(request)
        answer = await server.complete_async(body)
        if isinstance(answer, dict):
            return JSONResponse(answer)
        return StreamingResponse(
            answer,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    app.add_api_route("/health", guarded(health), methods=["GET"])
    app.add_api_route("/v1/models", guarded(models), methods=["GET"])
    app.add_api_route("/v1/models/{model_id:path}", guarded(one_model), methods=["GET"])
    app.add_api_route("/v1/chat/completions", guarded(completions), methods=["POST"])
    return _Envelope(app, server)


class _Envelope:
    """Pure ASGI middleware: path normalising, in-flight counting, the log line, and
    ``Connection: close`` when the request body was left unread."""

    def __init__(self, app: Any, server: BoundServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; nothing else is served
            return
        started = time.perf_counter()
        path = scope["path"]
        if len(path) > 1:
            scope["path"] = path.rstrip("/") or "/"
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        announced = bool(headers.get(b"transfer-encoding")) or (
            headers.get(b"content-length", b"0").strip() not in (b"0", b"")
        )
        body_read = not announced
        status: list[int] = []

        async def receive_tracked() -> Message:
            nonlocal body_read
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_read = True
            return message

        async def send_tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
                if not body_read:  # the unread body would be taken for the next request
                    message["headers"] = [
                        *[
                            (k, v)
                            for k, v in message.get("headers", [])
                            if k.lower() != b"connection"
                        ],
                        (b"connection", b"close"),
                    ]
            await send(message)

        client = (scope.get("client") or ("-", 0))[0]
        with self.server.in_flight():
            try:
                await self.app(scope, receive_tracked, send_tracked)
            except OSError:  # the client went away mid-answer
                scope["dormant.disconnected"] = True
        if scope.get("dormant.disconnected"):
            outcome: int | str = "disconnected"
        else:
            outcome = status[0] if status else "disconnected"
        elapsed = (time.perf_counter() - started) * 1000
        self.server.log(f"{client} {scope['method']} {path} {outcome} {elapsed:.0f} ms")


def json_h11_protocol(server: BoundServer) -> type:
    """uvicorn's h11 protocol, answering a malformed request in the JSON error shape."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class JsonH11Protocol(H11Protocol):
        """Also bounds the time a client may take to send request headers (slowloris)."""

        _header_timer: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._arm_header_timer()  # the first bytes of the next request on this connection
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._cancel_header_timer()
            if self.conn.trailing_data[0]:  # part of a pipelined request is already here
                self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(server.read_timeout, self._header_deadline)

        def _header_deadline(self) -> None:
            self._header_timer = None
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                return  # a request is being answered: its body has its own deadline
            if self.transport.is_closing():
                return
            data = _json_bytes(
                RequestError(
                    408,
                    f"The request headers did not arrive within {server.read_timeout:g} s.",
                    code="request_timeout",
                ).body()
            )
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"connection: close\r\ncontent-length: "
                + str(len(data)).encode()
                + b"\r\n\r\n"
                + data
            )
            self.transport.close()
            peer = self.transport.get_extra_info("peername") or ("-",)
            server.log(f"{peer[0]} - - 408 request headers too slow")

        def send_400_response(self, msg: str) -> None:
            import h11

            data = _json_bytes(RequestError(400, f"Bad request: {msg}").body())
            event = h11.Response(
                status_code=400,
                headers=[
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    (b"connection", b"close"),
                ],
                reason=b"Bad Request",
            )
            try:
                self.transport.write(self.conn.send(event))
                self.transport.write(self.conn.send(h11.Data(data=data)))
                self.transport.write(self.conn.send(h11.EndOfMessage()))
            except h11.LocalProtocolError:  # a response had already started
                pass
            self.transport.close()
            peer = self.transport.get_extra_info("peername") or ("-",)
            server.log(f"{peer[0]} - - 400 malformed request")

    return JsonH11Protocol
