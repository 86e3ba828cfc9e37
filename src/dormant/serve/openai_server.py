"""An OpenAI-compatible chat server over any :class:`~dormant.subjects.agent.ChatModel`.

It speaks the subset of the OpenAI Chat Completions API (``POST /v1/chat/completions``,
``GET /v1/models``; the request and ``chat.completion`` response shapes and the
``{"error": {"message", "type", "param", "code"}}`` error shape of the OpenAI API reference)
that probes, agent frameworks and :class:`~dormant.adapters.openai_http.OpenAIChat` use, so a
local model (:mod:`dormant.adapters.causal_lm`) can be probed, or put behind an agent, the way
a hosted one is. Built on FastAPI over uvicorn (the ASGI stack of the runtime guard); with
``"stream": true`` the answer comes as server-sent events in the ``chat.completion.chunk``
shape, ending ``data: [DONE]``.

Dynamic batching: requests that share the generation settings (tools, ``max_tokens``,
``temperature``, ``seed``) and arrive within ``batch_window_ms`` of the first one are answered
by one :meth:`~dormant.subjects.agent.ChatModel.chat_batch` call of up to ``max_batch``
conversations, the request-level batching of serving systems such as NVIDIA Triton's dynamic
batcher and Clipper (Crankshaw et al., NSDI 2017). One worker thread makes every model call,
because torch models are not thread-safe; the event loop only parses, validates and awaits the
job's future, so requests keep arriving while the model works.

Every failure is answered in OpenAI's error shape and never with a Python traceback: 400 for
a malformed request (the message names the field), 401 for a missing or wrong bearer key
when ``api_key`` is set, 404 for an unknown path or model, 405 for a wrong method, 411 when
``Content-Length`` is missing, 413 for a body over ``max_body_bytes``, 500 when the model
fails (the server keeps running) and 503 while it shuts down.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Any, TextIO

from ..errors import ConfigError, DormantError, InputError, require
from ..subjects.agent import ChatModel, ChatResponse
from ._http import RequestError, build_app, json_h11_protocol
from ._request import Job, _check_settings, _is_number, parse_request
from ._shapes import _approx_usage, completion_object, usage_of
from ._stream import sse_chunks

__all__ = ["ChatServer", "serve"]

_SHUTDOWN = object()


class ChatServer:
    """Serve a :class:`~dormant.subjects.agent.ChatModel` over the OpenAI chat API.

    Parameters
    ----------
    model:
        Any chat model, e.g. :func:`dormant.adapters.causal_lm.load_causal_lm`'s.
    host, port:
        Where to listen; ``port=0`` takes a free port (read it from :attr:`port`).
    model_name:
        The model id clients send and ``/v1/models`` lists (default: ``model.name``).
    api_key:
        When set, ``/v1/*`` requests need ``Authorization: Bearer <api_key>``.
    max_body_bytes:
        Larger request bodies are refused with 413 before they are read.
    max_tokens_limit:
        The largest ``max_tokens`` a request may ask for (more is a 400).
    batch_window_ms:
        How long the worker waits after a request for others to batch with it.
    max_batch:
        Conversations per model call at most.
    read_timeout:
        Seconds a client has to send a request's headers, and again its body; a slower one
        (a slowloris holding a connection open) gets a 408 and is disconnected.
    quiet:
        Do not log requests.
    log:
        Where requests are logged, one line each (method, path, status, milliseconds);
        stderr by default.

    Notes
    -----
    A request without ``temperature`` is answered greedily (temperature 0), so that a probe
    sees the model's most likely behaviour; one without ``max_tokens`` gets up to 128 tokens.
    Sampled answers (``temperature > 0``) are reproducible per ``seed`` only for the same
    batch: requests batched together share one random stream.

    Examples
    --------
    >>> with ChatServer(model) as server:  # doctest: +SKIP
    ...     OpenAIChat(server.url, model=server.model_name).chat([ChatMessage("user", "hi")])
    """

    def __init__(
        self,
        model: ChatModel,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model_name: str | None = None,
        api_key: str | None = None,
        max_body_bytes: int = 1 << 20,
        max_tokens_limit: int = 1024,
        batch_window_ms: float = 5,
        max_batch: int = 16,
        read_timeout: float = 30.0,
        quiet: bool = False,
        log: TextIO | None = None,
    ) -> None:
        if not isinstance(model, ChatModel):
            raise ConfigError(
                "The 'model' parameter of ChatServer must be a ChatModel (name, capabilities, "
                f"chat, chat_batch, ref). Got {type(model).__name__} instead."
            )
        _check_settings(
            host,
            port,
            model_name,
            api_key,
            max_body_bytes,
            max_tokens_limit,
            batch_window_ms,
            max_batch,
        )
        self.model = model
        self.host = host
        self.model_name = model_name or str(getattr(model, "name", "") or "model")
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.max_tokens_limit = max_tokens_limit
        self.batch_window = float(batch_window_ms) / 1000.0
        self.max_batch = max_batch
        if not _is_number(read_timeout) or not 0 < read_timeout <= 3600:
            raise ConfigError(
                "The 'read_timeout' parameter must be a number of seconds in (0, 3600]. "
                f"Got {read_timeout!r} instead."
            )
        self.read_timeout = float(read_timeout)
        self.quiet = quiet
        self.created = int(time.time())
        self._log = log
        self._requested_port = port
        self._uvicorn: Any = None
        self._socket: socket.socket | None = None
        self._http_thread: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closing = threading.Event()
        self._stats_lock = threading.Lock()
        self._submit_lock = threading.Lock()
        self._active = 0
        self._idle = threading.Condition()
        self._stats = {"requests": 0, "model_calls": 0, "largest_batch": 0, "errors": 0}

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> str:
        """Bind, start the HTTP and model threads; returns the base URL (``.../v1``).

        Raises
        ------
        ConfigError
            The address cannot be bound (in use, not an address of this machine).
        """
        if self._uvicorn is not None:
            return self.url
        uvicorn: Any = require("uvicorn", "guard")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
            sock.listen(128)
            sock.set_inheritable(True)
        except (OSError, OverflowError) as exc:
            sock.close()
            raise ConfigError(
                f"Cannot listen on {self.host}:{self._requested_port} ({exc}); pick another "
                "--port (0 takes any free one) or a host address of this machine."
            ) from None
        config = uvicorn.Config(
            build_app(self),
            http=json_h11_protocol(self),
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            date_header=True,
            timeout_keep_alive=120,
            timeout_graceful_shutdown=30,
        )
        server = uvicorn.Server(config)
        self._socket = sock
        self._uvicorn = server
        self._closing.clear()
        self._worker = threading.Thread(target=self._work, name="dormant-serve-model", daemon=True)
        self._worker.start()
        self._http_thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="dormant-serve-http", daemon=True
        )
        self._http_thread.start()
        while not server.started:  # bound already: this is the event loop starting
            if not self._http_thread.is_alive():
                self.shutdown()
                raise ConfigError(
                    f"The HTTP server on {self.host}:{self.port} stopped while starting."
                )
            time.sleep(0.01)
        return self.url

    def shutdown(self) -> None:
        """Stop accepting requests, answer the waiting ones (503 for any new one), join threads."""
        server = self._uvicorn
        if server is None:
            return
        with self._submit_lock:  # no job is queued after the worker's stop sign
            self._closing.set()
            self._queue.put(_SHUTDOWN)
        server.should_exit = True  # stops listening; open requests are still answered
        if self._worker is not None:
            self._worker.join(timeout=60)  # it answers the jobs queued before the stop sign
        while True:  # only when the worker did not finish in time
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(job, Job) and not job.future.done():
                job.future.set_exception(_shutting_down())
        if self._http_thread is not None:
            self._http_thread.join(timeout=40)
        with self._idle:  # let the answers being written go out
            self._idle.wait_for(lambda: self._active == 0, timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._uvicorn = None

    def __enter__(self) -> ChatServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    @property
    def port(self) -> int:
        """The port listened on (the real one when started with ``port=0``)."""
        if self._socket is None or self._uvicorn is None:
            return self._requested_port
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """The API root, ``http://HOST:PORT/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def stats(self) -> dict[str, int]:
        """Counters: ``requests`` answered by the model, ``model_calls``, ``largest_batch``,
        ``errors`` (model failures)."""
        with self._stats_lock:
            return dict(self._stats)

    def __repr__(self) -> str:
        return f"ChatServer({self.model_name!r}, url={self.url!r})"

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Count a request being handled (shutdown waits for them to be answered)."""
        with self._idle:
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    # -- the model worker -----------------------------------------------------------------

    def submit(self, job: Job) -> Future[tuple[ChatResponse, dict[str, int]]]:
        """Queue a job for the worker; its future holds the answer or what the model raised."""
        with self._submit_lock:
            if self._closing.is_set():
                raise _shutting_down()
            self._queue.put(job)
        return job.future

    def _work(self) -> None:
        """Take a job, gather jobs with the same settings for the batch window, answer them.

        Jobs with other settings wait in a backlog and go first in the next rounds; after the
        stop sign the backlog is still answered.
        """
        backlog: deque[Job] = deque()
        stopping = False
        while True:
            if backlog:
                first = backlog.popleft()
            elif stopping:
                break
            else:
                item = self._queue.get()
                if item is _SHUTDOWN:
                    break
                first = item
            batch = [first]
            for job in list(backlog):  # waiting jobs with the same settings join first
                if len(batch) >= self.max_batch:
                    break
                if job.key == first.key:
                    backlog.remove(job)
                    batch.append(job)
            deadline = time.monotonic() + self.batch_window
            while not stopping and len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if item is _SHUTDOWN:
                    stopping = True
                    break
                if item.key == first.key:
                    batch.append(item)
                else:
                    backlog.append(item)
            self._run(batch)

    def _run(self, batch: Sequence[Job]) -> None:
        first = batch[0]
        try:
            responses = self.model.chat_batch(
                [j.messages for j in batch],
                tools=first.tools,
                max_tokens=first.max_tokens,
                temperature=first.temperature,
                seed=first.seed,
            )
            if not isinstance(responses, list) or len(responses) != len(batch):
                raise TypeError(
                    f"chat_batch returned {type(responses).__name__} of "
                    f"{len(responses) if isinstance(responses, list) else '?'} answers for "
                    f"{len(batch)} conversations"
                )
        except Exception as exc:
            if len(batch) > 1:  # find the request that failed; the others are answered
                for job in batch:
                    self._run([job])
                return
            self._count(errors=1)
            first.future.set_exception(exc)
            return
        self._count(model_calls=1, requests=len(batch), batch=len(batch))
        for job, resp in zip(batch, responses, strict=True):
            try:
                usage = self._usage(job, resp)
            except Exception:  # counting must never fail a request
                usage = _approx_usage(job, resp)
            job.future.set_result((resp, usage))

    def _count(
        self, *, model_calls: int = 0, requests: int = 0, batch: int = 0, errors: int = 0
    ) -> None:
        with self._stats_lock:
            self._stats["model_calls"] += model_calls
            self._stats["requests"] += requests
            self._stats["errors"] += errors
            self._stats["largest_batch"] = max(self._stats["largest_batch"], batch)

    def _usage(self, job: Job, resp: ChatResponse) -> dict[str, int]:
        """Token counts with the model's tokenizer when it has one (runs on the worker)."""
        return usage_of(self.model, job, resp)

    # -- requests -------------------------------------------------------------------------

    async def complete_async(self, body: Any) -> dict[str, Any] | AsyncIterator[bytes]:
        """Answer one parsed ``/v1/chat/completions`` body (raises :class:`RequestError`).

        Returns the ``chat.completion`` object, or for ``"stream": true`` the server-sent
        events of its ``chat.completion.chunk`` objects (made once the answer is complete, so a
        model failure is still an HTTP error and never a half-sent stream).
        """
        job = self._parse(body)
        try:
            resp, usage = await asyncio.wrap_future(self.submit(job))
        except RequestError:
            raise
        except (InputError, ConfigError) as exc:  # the model refused this input
            raise RequestError(400, f"The model cannot answer this request: {exc}") from None
        except Exception as exc:
            detail = str(exc) if isinstance(exc, DormantError) else f"{type(exc).__name__}: {exc}"
            raise RequestError(
                500,
                f"The model failed on this request ({detail[:500]}); the server keeps running.",
                type="server_error",
                code="model_error",
            ) from None
        completion = self._completion(resp, usage)
        if not job.stream:
            return completion
        return sse_chunks(completion, include_usage=job.include_usage)

    def _parse(self, body: Any) -> Job:
        return parse_request(
            body, model_name=self.model_name, max_tokens_limit=self.max_tokens_limit
        )

    def _completion(self, resp: ChatResponse, usage: dict[str, int]) -> dict[str, Any]:
        return completion_object(resp, usage, model_name=self.model_name)

    def models(self) -> dict[str, Any]:
        """The ``GET /v1/models`` answer (OpenAI list shape)."""
        return {"object": "list", "data": [self._model_entry()]}

    def _model_entry(self) -> dict[str, Any]:
        return {
            "id": self.model_name,
            "object": "model",
            "created": self.created,
            "owned_by": "dormant",
        }

    def log(self, line: str) -> None:
        if self.quiet:
            return
        out = self._log or sys.stderr
        with suppress(OSError, ValueError):  # a closed stream must not fail a request
            out.write(line + "\n")
            out.flush()


def _shutting_down() -> RequestError:
    return RequestError(503, "The server is shutting down; try again later.", type="server_error")


def serve(model: ChatModel, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> ChatServer:
    """Start a :class:`ChatServer` for ``model`` and return it (call ``.shutdown()`` to stop)."""
    server = ChatServer(model, host=host, port=port, **kwargs)
    server.start()
    return server
