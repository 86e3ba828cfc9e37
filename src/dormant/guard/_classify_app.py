"""The HTTP face of :class:`~dormant.guard.classify.ClassifierScreen`: ``POST /v1/classify``.

``{"text": "..."}`` is screened; an input that passes is answered ``200`` with the model's
label, one that is flagged ``403`` with the reasons (fail closed: a failing model or audit log
also answers 403 or 503 and releases no label). ``GET /healthz`` answers ``{"ok": true}``.
The screen runs in a worker thread, one request at a time (the model is not assumed to be
thread-safe).
"""

from __future__ import annotations

import json
import threading
from typing import Any

MAX_BODY = 1 << 20


def create_classify_app(screen: Any, *, max_body_bytes: int = MAX_BODY) -> Any:
    """A Starlette app that screens each ``POST /v1/classify`` with ``screen``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    lock = threading.Lock()

    def _run(text: str, request_id: str | None) -> Any:
        with lock:
            return screen.screen(text, request_id=request_id)

    async def classify(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > max_body_bytes:
            return _error(413, f"the request body is over {max_body_bytes} bytes")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, 'the body must be a JSON object {"text": "..."}')
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            return _error(400, 'the body must be a JSON object with a string field "text"')
        rid = request.headers.get("x-request-id")
        try:
            d = await run_in_threadpool(_run, data["text"], rid)
        except Exception as exc:  # the audit log failed: nothing is released
            return _error(503, f"decision not recorded, nothing released: {type(exc).__name__}")
        out = {"label": d.label, "flagged": d.flagged, "reasons": list(d.reasons)}
        out["p_value"] = d.p_value
        if d.flagged:
            out["label"] = None  # a refused input's label is not released
            return JSONResponse({"error": "input refused by the guard", **out}, status_code=403)
        return JSONResponse(out)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/v1/classify", classify, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def _error(status: int, message: str) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message, "flagged": True}, status_code=status)


__all__ = ["create_classify_app"]
