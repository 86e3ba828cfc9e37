"""Connect to Ray: a running cluster by address, or a local one started (and stopped) here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import ConfigError, MissingDependencyError, ScanError

EXTRA = "ray"


def import_ray() -> Any:
    """``import ray``, or a :class:`MissingDependencyError` naming the extra."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "--ray needs Ray: pip install 'dormant[ray]' (installs ray[data])."
        ) from None
    return ray


@contextmanager
def ray_session(address: str | None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Yield the ``ray`` module, initialised.

    ``address=None`` starts a local cluster with ``num_cpus`` CPUs and shuts it down on exit;
    an address (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``) connects to a running
    cluster, whose nodes must have dormant installed, and disconnects on exit. When Ray is
    already initialised in this process (a test, a notebook) that session is used as it is.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if num_cpus is not None and (not isinstance(num_cpus, int) or num_cpus < 1):
        raise ConfigError(f"num_cpus must be an int >= 1. Got {num_cpus!r}.")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = num_cpus
        # workers import dormant from where this process does (an editable or source tree)
        kwargs["runtime_env"] = {"env_vars": _worker_env()}
    init_ray(ray, kwargs, address)
    try:
        yield ray
    finally:
        ray.shutdown()


def _worker_env() -> dict[str, str]:
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def init_ray(ray: Any, kwargs: dict[str, Any], address: str | None, *, tries: int = 2) -> None:
    """``ray.init(**kwargs)``, patient with a slow local start, tried again if it still fails.

    A new local node waits a fixed time for its agents (Python processes) to report their
    ports, and the driver a fixed 30 s for the node to register; on a loaded machine both can
    run out (the raylet then aborts). For a local start the raylet's wait is raised
    (``RAY_raylet_start_wait_time_s``, unless set) and the driver's node look-up is retried for
    up to :data:`START_WAIT_S`; a cluster given by address is connected to as it is.
    """
    where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
    for attempt in range(tries):
        try:
            if address:
                ray.init(**kwargs)
            else:
                with _patient_start():
                    ray.init(**kwargs)
            return
        except (ConnectionError, ValueError) as exc:
            raise ScanError(f"cannot reach {where}: {exc}") from None
        except Exception as exc:  # Ray raises a bare Exception when a local node times out
            ray.shutdown()
            if address or attempt == tries - 1:
                raise ScanError(f"cannot start or reach {where}: {exc}") from None


#: Longest wait, in seconds, for a new local Ray node to come up.
START_WAIT_S = 180


@contextmanager
def _patient_start() -> Iterator[None]:
    import time

    from ray._private import services

    os.environ.setdefault("RAY_raylet_start_wait_time_s", str(START_WAIT_S))
    original = services.get_node

    def get_node(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + START_WAIT_S
        while True:
            try:
                return original(*args, **kwargs)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    from ray._private.node import Node

    start_head = Node.start_head_processes

    def start_head_with_port(self: Any, *args: Any, **kwargs: Any) -> Any:
        # known agent ports: the raylet need not wait for the agents' port files
        for name in _AGENT_PORTS:
            if not getattr(self._ray_params, name, None):
                setattr(self._ray_params, name, _free_port())
        return start_head(self, *args, **kwargs)

    services.get_node = get_node
    Node.start_head_processes = start_head_with_port  # type: ignore[method-assign]
    try:
        yield
    finally:
        services.get_node = original
        Node.start_head_processes = start_head  # type: ignore[method-assign]


_AGENT_PORTS = (
    "metrics_agent_port",
    "metrics_export_port",
    "runtime_env_agent_port",
    "dashboard_agent_listen_port",
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
