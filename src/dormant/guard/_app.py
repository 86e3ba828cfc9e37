"""The ASGI routes of the guard proxy (Starlette): chat completions, models, health, metrics.

The handlers only route, time and log; what a request means is decided in
:class:`dormant.guard.proxy.GuardProxy`. Every refusal (bad key, bad body, upstream failure) is
answered as an OpenAI error object and written to the audit log first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ._openai import (
    ProxyError,
    check_request,
    upstream_json,
    upstream_transport_error,
    with_canaries,
)
from ._stream import open_stream, relay
from .proxy import GuardProxy, ProxySettings

if TYPE_CHECKING:
    from .service import Guard

log = logging.getLogger("dormant.guard.proxy")


def build(proxy: GuardProxy) -> Any:
    """A Starlette app over ``proxy``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    def error_response(exc: ProxyError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status)

    async def refuse(
        route: str,
        request_id: str,
        exc: ProxyError,
        *,
        identity: str | None,
        extra: dict[str, Any],
        t0: float,
    ) -> Response:
        """Audit the refusal (best effort: the answer is an error either way), log, answer."""
        audited = await proxy.audit_refusal(request_id, identity, exc, {"route": route, **extra})
        proxy.metrics.decisions.labels("deny", exc.code or "refused").inc()
        proxy.metrics.requests.labels(route, str(exc.status)).inc()
        log.warning(
            "request refused",
            extra={
                "request_id": request_id,
                "route": route,
                "identity": identity,
                "status": exc.status,
                "code": exc.code,
                "reason": exc.message,
                "audited": audited,
                "ms": round((time.perf_counter() - t0) * 1000, 3),
                **extra,
            },
        )
        return error_response(exc)

    async def chat(request: Request) -> Response:
        t0 = time.perf_counter()
        request_id = "req-" + uuid.uuid4().hex[:20]
        identity: str | None = None
        extra: dict[str, Any] = {}
        try:
            identity, key_ref = proxy.authenticate(request.headers)
            extra["key"] = key_ref
            body = check_request(await proxy.read_json(request))
            extra["model"] = body["model"]
            ctx = await proxy.context(identity, body, request_id)
            ident = proxy.guard.policy.identities.get(identity)
            if ident is not None and ident.place_canaries:
                body = with_canaries(body, ident.canaries)
            if body.get("stream"):
                upstream = await open_stream(proxy, body)
                proxy.metrics.requests.labels("chat", "200").inc()
                log.info(
                    "stream opened",
                    extra={"request_id": request_id, "identity": identity, **extra},
                )
                return StreamingResponse(
                    relay(proxy, ctx, upstream, t0),
                    media_type="text/event-stream",
                    headers={"cache-control": "no-cache", "x-request-id": request_id},
                )
            out, upstream_s = await proxy.complete(ctx, body)
        except ProxyError as exc:
            return await refuse("chat", request_id, exc, identity=identity, extra=extra, t0=t0)
        proxy.metrics.requests.labels("chat", "200").inc()
        log.info(
            "request guarded",
            extra={
                "request_id": request_id,
                "identity": identity,
                "provenance": ctx.model.provenance.value,
                "triggers": len(ctx.triggers),
                "ms": round((time.perf_counter() - t0) * 1000, 3),
                "upstream_ms": round(upstream_s * 1000, 3),
                **extra,
            },
        )
        return JSONResponse(out, headers={"x-request-id": request_id})

    async def models(request: Request) -> Response:
        import httpx

        t0 = time.perf_counter()
        request_id = "req-" + uuid.uuid4().hex[:20]
        identity: str | None = None
        try:
            identity, _ = proxy.authenticate(request.headers)
            try:
                resp = await proxy.client.get(
                    proxy.settings.upstream + "/models", headers=proxy.upstream_headers()
                )
            except httpx.HTTPError as exc:
                raise upstream_transport_error(exc) from None
            data = upstream_json(resp, "The upstream's model list is not JSON.")
        except ProxyError as exc:
            return await refuse("models", request_id, exc, identity=identity, extra={}, t0=t0)
        proxy.metrics.requests.labels("models", "200").inc()
        return JSONResponse(data)

    async def healthz(request: Request) -> Response:
        try:
            ok, why = await asyncio.to_thread(proxy.health)
        except Exception as exc:
            ok, why = False, f"{type(exc).__name__}: {exc}"
        body = {"status": "ok" if ok else "unavailable", "detail": why}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        text, ctype = proxy.metrics.render()
        return Response(text, media_type=ctype)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        if status == 405:
            err = ProxyError(
                405,
                f"{request.method} is not allowed on {request.url.path}.",
                code="method_not_allowed",
            )
        else:
            err = ProxyError(
                404,
                f"No route {request.url.path}; the guard serves "
                "/v1/chat/completions, /v1/models, /healthz and /metrics.",
                code="not_found",
            )
        return error_response(err)

    async def crashed(request: Request, exc: Exception) -> Response:
        log.error("unexpected error", extra={"path": request.url.path, "error": repr(exc)})
        return error_response(
            ProxyError(
                500,
                "The guard failed on this request; nothing was released.",
                type="guard_error",
                code="guard_error",
            )
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await proxy.startup()
        try:
            yield
        finally:
            await proxy.shutdown()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={404: not_found, 405: not_found, Exception: crashed},
        lifespan=lifespan,
    )
    app.state.proxy = proxy
    return app


def create_app(guard: Guard, *, settings: ProxySettings) -> Any:
    """The proxy as an ASGI app (Starlette) over the core's :class:`Guard`;
    ``app.state.proxy`` is its :class:`GuardProxy`."""
    return build(GuardProxy(guard, settings=settings))
