"""Tools from Model Context Protocol servers, over stdio (a command line) or streamable HTTP.

:class:`MCPTools` is a synchronous wrapper around the asynchronous ``mcp`` client: it runs one
event loop in a background thread that holds the session open, and each call from the caller's
thread is handed to that loop and waited for with a timeout. ``specs()`` lists the server's
tools as :class:`~dormant.subjects.agent.ToolSpec` records (name, description, input JSON
schema); ``call(name, arguments)`` returns the tool's result as text.

Works with the ``mcp`` Python SDK 1.x (``inputSchema``, ``streamablehttp_client``) and 2.x
(``input_schema``, ``streamable_http_client``); the transport follows the MCP specification
(2025-03-26 and later: stdio and streamable HTTP). A stdio server is a program this process
starts: only point it at servers you trust, as you would any command.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import json
import shlex
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError, EndpointError, MissingDependencyError
from .chat import ToolSpec

__all__ = ["MCPTools"]

_Job = Callable[[Any], Awaitable[Any]]


def _mcp() -> Any:
    try:
        import mcp
    except ImportError as exc:  # pragma: no cover - exercised when the extra is absent
        raise MissingDependencyError(
            "'mcp' is required to use MCP tool servers but is not installed; "
            "install it with: pip install 'dormant[agent]'"
        ) from exc
    return mcp


def _leaf(exc: BaseException) -> BaseException:
    """The first non-group exception inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _attr(obj: Any, *names: str) -> Any:
    for n in names:
        val = getattr(obj, n, None)
        if val is not None:
            return val
    return None


def _content_text(result: Any) -> str:
    """Text of a ``CallToolResult``: text parts joined; other parts as a short placeholder."""
    parts: list[str] = []
    for item in _attr(result, "content") or ():
        text = getattr(item, "text", None)
        if isinstance(text, str):
            parts.append(text)
            continue
        kind = getattr(item, "type", type(item).__name__)
        resource = getattr(item, "resource", None)
        inner = getattr(resource, "text", None)
        parts.append(inner if isinstance(inner, str) else f"[{kind} content]")
    if not parts:
        structured = _attr(result, "structured_content", "structuredContent")
        if structured is not None:
            parts.append(json.dumps(structured, ensure_ascii=False, default=str))
    return "\n".join(parts)


class MCPTools:
    """A connection to one MCP tool server, used synchronously.

    Parameters
    ----------
    command:
        The server's command line (a string split like a shell would, or a list), run as a
        subprocess speaking MCP over stdio.
    url:
        The server's streamable-HTTP endpoint, e.g. ``http://127.0.0.1:8765/mcp``.
    env:
        Environment variables for a stdio server (the SDK's safe defaults when ``None``).
    timeout:
        Seconds to wait for the connection and for each request.
    headers:
        HTTP headers for a streamable-HTTP server, e.g. ``{"Authorization": "Bearer …"}``.

    Exactly one of ``command`` and ``url`` is given. Use it as a context manager::

        with MCPTools(command="python -m my_server") as mcp:
            specs = mcp.specs()
            text = mcp.call("search_docs", {"query": "refund"})

    Raises
    ------
    ConfigError
        Neither or both of ``command`` and ``url``, or a bad value.
    MissingDependencyError
        The ``mcp`` package is not installed.
    """

    def __init__(
        self,
        *,
        command: str | Sequence[str] | None = None,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if (command is None) == (url is None):
            raise ConfigError(
                "MCPTools needs exactly one of 'command' (a stdio server's command line) or "
                f"'url' (a streamable-HTTP endpoint). Got command={command!r}, url={url!r}."
            )
        if command is not None:
            argv = shlex.split(command) if isinstance(command, str) else list(command)
            if not argv or not all(isinstance(a, str) and a for a in argv):
                raise ConfigError(
                    "The 'command' parameter of MCPTools must be a non-empty command line. "
                    f"Got {command!r} instead."
                )
        if url is not None:
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(
                    "The 'url' parameter of MCPTools must be an http(s) URL such as "
                    f"'http://127.0.0.1:8765/mcp'. Got {url!r} instead."
                )
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(
                f"The 'timeout' parameter of MCPTools must be a number > 0. Got {timeout!r}."
            )
        self.command = command
        self.url = url
        self.env = env
        self.timeout = float(timeout)
        self.headers = dict(headers) if headers else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._main: cf.Future[Any] | None = None
        self._queue: asyncio.Queue[tuple[_Job, cf.Future[Any]] | None] | None = None
        self._specs: list[ToolSpec] = []
        self._tools: list[Any] = []
        self._errlog: Any = None

    @property
    def where(self) -> str:
        """The server, as shown in messages: its command line or URL."""
        if self.url is not None:
            return self.url
        cmd = self.command
        return cmd if isinstance(cmd, str) else shlex.join(list(cmd or ()))

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> MCPTools:
        """Start the server (stdio) or connect (HTTP), initialise and list the tools."""
        if self._loop is not None:
            return self
        mod = _mcp()
        loop = asyncio.new_event_loop()
        ready: cf.Future[list[ToolSpec]] = cf.Future()
        thread = threading.Thread(target=loop.run_forever, name="dormant-mcp", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        self._main = asyncio.run_coroutine_threadsafe(self._serve(mod, ready), loop)
        try:
            self._specs = ready.result(timeout=self.timeout)
        except cf.TimeoutError:
            self._shutdown()
            tail = self._stderr_tail()
            self._close_errlog()
            raise EndpointError(
                f"MCP server {self.where!r} did not finish initialising within "
                f"{self.timeout:g} s." + (f" Its stderr ended with: {tail!r}" if tail else ""),
                retryable=True,
            ) from None
        except BaseException as exc:
            self._shutdown()
            leaf = _leaf(exc)
            tail = self._stderr_tail()
            self._close_errlog()
            raise EndpointError(
                f"Could not start or connect to MCP server {self.where!r}: "
                f"{type(leaf).__name__}: {leaf}."
                + (f" Its stderr ended with: {tail!r}" if tail else ""),
                retryable=isinstance(leaf, OSError | TimeoutError),
            ) from None
        return self

    def _stderr_tail(self, n: int = 400) -> str:
        """The last characters a stdio server wrote to its stderr (kept in a temporary file)."""
        log = self._errlog
        if log is None or log.closed:
            return ""
        try:
            log.flush()
            log.seek(0)
            text: str = log.read()
        except (OSError, ValueError):
            return ""
        return " ".join(text.split())[-n:]

    def close(self) -> None:
        """End the session and stop the server process (stdio)."""
        if self._loop is None:
            return
        if self._queue is not None and self._main is not None and not self._main.done():
            self._loop.call_soon_threadsafe(self._queue.put_nowait, None)
            # closing never raises: the session is gone either way
            with contextlib.suppress(BaseException):
                self._main.result(timeout=self.timeout)
        self._shutdown()
        self._close_errlog()

    def _shutdown(self) -> None:
        loop, thread, main = self._loop, self._thread, self._main
        if loop is None:
            return
        if main is not None and not main.done():
            main.cancel()
            with contextlib.suppress(BaseException):
                main.result(timeout=self.timeout)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(self.timeout)
        if not loop.is_running():
            loop.close()
        self._loop = self._thread = self._main = None
        self._queue = None

    def _close_errlog(self) -> None:
        if self._errlog is not None:
            self._errlog.close()
            self._errlog = None

    def __enter__(self) -> MCPTools:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MCPTools({self.where!r})"

    # -- use ------------------------------------------------------------------------------

    def specs(self) -> list[ToolSpec]:
        """The server's tools (listed once, when the connection opened)."""
        self._require_open()
        return list(self._specs)

    def names(self) -> frozenset[str]:
        """Names of the server's tools."""
        return frozenset(s.name for s in self.specs())

    def call(self, name: str, arguments: Mapping[str, Any] | None = None) -> str:
        """Call a tool and return its result as text.

        A result the server marks as an error comes back as text starting ``[tool error]``
        (the model sees it, as it would in production).

        Raises
        ------
        EndpointError
            The session is closed, the server died, or it did not answer within ``timeout``.
        """
        args = dict(arguments or {})

        async def job(session: Any) -> str:
            result = await session.call_tool(name, args)
            text = _content_text(result)
            if _attr(result, "is_error", "isError"):
                return "[tool error] " + text
            return text

        out: str = self._submit(job, f"call of tool {name!r}")
        return out

    def tools(self, *, refresh: bool = False) -> list[Any]:
        """The server's tool definitions as the SDK returns them (``Tool`` objects, every field
        kept); ``refresh`` lists them again first (a server may change them while running)."""
        if refresh:

            async def job(session: Any) -> list[Any]:
                return await self._list_raw(session)

            self._tools = self._submit(job, "tools/list")
            self._specs = _specs_of(self._tools)
        self._require_open()
        return list(self._tools)

    def call_result(self, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Call a tool and return the server's ``CallToolResult`` unchanged (for a gateway).

        Raises
        ------
        EndpointError
            As :meth:`call`.
        """
        args = dict(arguments or {})

        async def job(session: Any) -> Any:
            return await session.call_tool(name, args)

        return self._submit(job, f"call of tool {name!r}")

    # -- internals ------------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._loop is None or self._main is None or self._main.done():
            raise EndpointError(
                f"MCP server {self.where!r} is not connected (use MCPTools as a context "
                "manager or call open() first; the server may have exited).",
                retryable=False,
            )

    def _submit(self, job: _Job, what: str) -> Any:
        self._require_open()
        assert self._loop is not None and self._queue is not None
        fut: cf.Future[Any] = cf.Future()
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (job, fut))
        try:
            return fut.result(timeout=self.timeout)
        except cf.TimeoutError:
            raise EndpointError(
                f"MCP server {self.where!r}: the {what} got no answer within {self.timeout:g} s.",
                retryable=True,
            ) from None
        except EndpointError:
            raise
        except Exception as exc:
            leaf = _leaf(exc)
            raise EndpointError(
                f"MCP server {self.where!r}: the {what} failed: {type(leaf).__name__}: {leaf}.",
                retryable=False,
            ) from None

    def _transport(self, mod: Any) -> Any:
        if self.url is not None:
            from mcp.client import streamable_http as sh

            modern = getattr(sh, "streamable_http_client", None)  # SDK 2.x; 1.x below
            if modern is None:
                return sh.streamablehttp_client(self.url, headers=self.headers)  # type: ignore[attr-defined]
            if self.headers:
                return _with_headers(modern, self.url, self.headers)
            return modern(self.url)
        argv = (
            shlex.split(self.command) if isinstance(self.command, str) else list(self.command or ())
        )
        params = mod.StdioServerParameters(
            command=argv[0], args=argv[1:], env=dict(self.env) if self.env is not None else None
        )
        if self._errlog is None:
            # the server's stderr goes to a temporary file (the library never prints); its
            # tail is quoted when the server fails to start
            self._errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        return mod.stdio_client(params, errlog=self._errlog)

    async def _serve(self, mod: Any, ready: cf.Future[list[ToolSpec]]) -> None:
        """Hold the session open and run submitted jobs one at a time until told to stop."""
        self._queue = asyncio.Queue()
        current: cf.Future[Any] | None = None
        try:
            async with self._transport(mod) as streams:  # noqa: SIM117 - session needs streams
                async with mod.ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    self._tools = await self._list_raw(session)
                    ready.set_result(_specs_of(self._tools))
                    while True:
                        item = await self._queue.get()
                        if item is None:
                            break
                        job, fut = item
                        if fut.cancelled():
                            continue
                        current = fut
                        try:
                            fut.set_result(await job(session))
                        except Exception as exc:
                            fut.set_exception(exc)
                        current = None
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise
        finally:
            if current is not None and not current.done():
                current.set_exception(
                    EndpointError(f"MCP server {self.where!r} closed the session mid-call.")
                )
            self._fail_pending()

    def _fail_pending(self) -> None:
        queue = self._queue
        while queue is not None and not queue.empty():
            item = queue.get_nowait()
            if item is not None and not item[1].done():
                item[1].set_exception(
                    EndpointError(f"MCP server {self.where!r} closed the session.")
                )

    @staticmethod
    async def _list_raw(session: Any) -> list[Any]:
        """Every page of ``tools/list``: the SDK's ``Tool`` objects."""
        tools: list[Any] = []
        result = await session.list_tools()
        for _ in range(100):  # pages
            tools.extend(_attr(result, "tools") or ())
            cursor = _attr(result, "next_cursor", "nextCursor")
            if not cursor:
                break
            from mcp import types

            try:  # SDK 2.x
                result = await session.list_tools(
                    params=types.PaginatedRequestParams(cursor=cursor)
                )
            except TypeError:  # SDK 1.x
                result = await session.list_tools(cursor=cursor)
        return tools


@contextlib.asynccontextmanager
async def _with_headers(connect: Any, url: str, headers: dict[str, str]) -> Any:
    """The SDK 2.x transport over an HTTP client with ``headers``, closed with the session."""
    from mcp.shared._httpx_utils import create_mcp_http_client

    async with (
        create_mcp_http_client(headers=headers) as client,
        connect(url, http_client=client) as streams,
    ):
        yield streams


def _specs_of(tools: Sequence[Any]) -> list[ToolSpec]:
    specs: list[ToolSpec] = []
    for tool in tools:
        schema = _attr(tool, "input_schema", "inputSchema") or {
            "type": "object",
            "properties": {},
        }
        specs.append(ToolSpec(str(tool.name), str(tool.description or ""), dict(schema)))
    return specs
