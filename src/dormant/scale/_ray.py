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
    """``ray.init(**kwargs)``, a local start tried again when it times out.

    A new local node gives its agents (Python processes) about 15 s to report their ports; on
    a heavily loaded machine they can miss it and the node aborts. Ray raises a bare
    ``Exception`` then, which becomes a :class:`ScanError` naming the cluster.
    """
    where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
    for attempt in range(tries):
        try:
            ray.init(**kwargs)
            return
        except (ConnectionError, ValueError) as exc:
            raise ScanError(f"cannot reach {where}: {exc}") from None
        except Exception as exc:  # Ray raises a bare Exception when a local node times out
            ray.shutdown()
            if address or attempt == tries - 1:
                raise ScanError(f"cannot start or reach {where}: {exc}") from None
