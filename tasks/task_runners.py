"""Where a flow's chunks run: in the flow's own process (one thread per core, the default) or on a Dask cluster.

MODELOPS_DASK_ADDRESS chooses: unset, the flow's own process; `local:N`, a Dask LocalCluster of N worker processes
started for the flow run and stopped after it; otherwise the address of a running Dask scheduler
(`tcp://scheduler:8786`), whose workers must have the platform installed and see the same state (governance store,
prediction logs) as the flow.
"""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import urlsplit

from modelops.errors import ModelOpsError

DASK_ADDRESS = "MODELOPS_DASK_ADDRESS"
_CONNECT_SECONDS = 5.0


class TaskRunnerError(ModelOpsError):
    """The configured Dask scheduler cannot be used."""


def dask_address() -> str | None:
    return os.environ.get(DASK_ADDRESS, "").strip() or None


def chunk_runner(address: str | None = None) -> Any | None:
    """A Dask task runner for `address` (default: the setting), or None: the chunks run in the flow's process. A
    scheduler that does not answer is refused here, before any work is handed out, rather than after Dask's own long
    retries."""
    address = address if address is not None else dask_address()
    if not address:
        return None
    from prefect_dask import DaskTaskRunner

    if address.startswith("local:"):
        workers = address.removeprefix("local:")
        if not workers.isdigit() or int(workers) < 1:
            raise TaskRunnerError(f"{DASK_ADDRESS}={address!r} does not give a number of workers",
                                  "write local:N with N a positive whole number, e.g. local:2")
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs={"n_workers": int(workers), "threads_per_worker": 1,
                                              "dashboard_address": None})
    require_reachable(address)
    return DaskTaskRunner(address=address)


def require_reachable(address: str) -> None:
    """A TCP or TLS scheduler must accept a connection; other Dask transports (inproc, ucx) are Dask's to check."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):
        return
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise TaskRunnerError(f"{DASK_ADDRESS}={address!r} is not a Dask scheduler address",
                              "give host and port, e.g. tcp://scheduler:8786, or local:N for a local cluster")
    try:
        socket.create_connection((host, port), timeout=_CONNECT_SECONDS).close()
    except OSError as exc:
        raise TaskRunnerError(f"the Dask scheduler at {address} ({DASK_ADDRESS}) does not answer: {exc}",
                              f"start the scheduler (dask scheduler --port {port}) and its workers, or unset "
                              f"{DASK_ADDRESS} to run in the flow's own process") from exc
