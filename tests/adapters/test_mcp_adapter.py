"""MCPTools against a real MCP server written here and run as a subprocess over stdio/HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dormant.adapters.mcp import MCPTools
from dormant.errors import ConfigError, EndpointError

pytest.importorskip("mcp")

SERVER = '''
import sys
try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server

server = Server("dormant-test-tools")


@server.tool()
def search_docs(query: str) -> str:
    """Search the internal knowledge base."""
    return f"[1] Refunds are issued within 5 days. (query: {query})"


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def fail(reason: str) -> str:
    """Always fails."""
    raise ValueError("tool broke: " + reason)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
    else:
        server.run("stdio")
'''


@pytest.fixture(scope="module")
def server_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mcp") / "tool_server.py"
    path.write_text(SERVER, encoding="utf-8")
    return path


def test_stdio_server_lists_and_calls_tools(server_file: Path) -> None:
    cmd = [sys.executable, str(server_file)]
    with MCPTools(command=cmd, timeout=60) as tools:
        specs = {s.name: s for s in tools.specs()}
        assert set(specs) == {"search_docs", "add", "fail"}
        assert specs["search_docs"].description == "Search the internal knowledge base."
        assert specs["add"].parameters["properties"]["a"]["type"] == "integer"
        assert specs["add"].parameters["required"] == ["a", "b"]
        assert tools.names() == frozenset(specs)
        assert tools.call("add", {"a": 2, "b": 40}) == "42"
        assert "Refunds are issued" in tools.call("search_docs", {"query": "refund"})
        broken = tools.call("fail", {"reason": "disk"})
        assert broken.startswith("[tool error]") and "fail" in broken
        # the ToolSpec round-trips into the OpenAI tools shape a chat model is sent
        assert specs["add"].to_openai()["function"]["name"] == "add"
    with pytest.raises(EndpointError, match="not connected"):
        tools.call("add", {"a": 1, "b": 1})


def test_command_as_string_is_split(server_file: Path) -> None:
    with MCPTools(command=f"{sys.executable} {server_file}", timeout=60) as tools:
        assert tools.call("add", {"a": 1, "b": 2}) == "3"


def test_missing_command_is_an_endpoint_error() -> None:
    with pytest.raises(EndpointError, match="no-such-mcp-server-binary"):
        MCPTools(command="no-such-mcp-server-binary --flag", timeout=20).open()


def test_server_that_exits_at_once_is_an_endpoint_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nsys.exit(3)\n", encoding="utf-8")
    with pytest.raises(EndpointError, match=r"bad\.py"):
        MCPTools(command=[sys.executable, str(bad)], timeout=10).open()


def test_streamable_http_server(server_file: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(server_file), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):  # wait for the port to accept connections
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        with MCPTools(url=f"http://127.0.0.1:{port}/mcp", timeout=30) as tools:
            assert {s.name for s in tools.specs()} == {"search_docs", "add", "fail"}
            assert tools.call("add", {"a": 5, "b": 6}) == "11"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"command": "x", "url": "http://127.0.0.1:1/mcp"}, {"command": ""}, {"url": "file:///x"}],
)
def test_bad_settings(kwargs: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        MCPTools(**kwargs)  # type: ignore[arg-type]


def test_startup_failure_quotes_the_server_stderr(tmp_path: Path) -> None:
    bad = tmp_path / "crash.py"
    bad.write_text("raise SystemExit('config file tools.yaml is missing')\n", encoding="utf-8")
    with pytest.raises(EndpointError, match=r"tools\.yaml is missing"):
        MCPTools(command=[sys.executable, str(bad)], timeout=10).open()
