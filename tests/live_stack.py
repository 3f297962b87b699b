"""A live stack for end-to-end tests: `modelops up` on free loopback ports over a temporary state directory, this
process pointed at its Prefect API for the duration, and everything stopped afterwards."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tests.conftest import drain_prefect_workers


@contextmanager
def live_stack(home: Path, **up_options: Any) -> Iterator[tuple[str, list[Any], list[str]]]:
    """Yields the stack's Prefect API address, the services `up` started, and (filled in once the stack is down)
    the names of the services `down` stopped."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from modelops.services.stack import down, free_port, up
    from modelops.settings import load_settings

    saved = {k: os.environ.get(k) for k in ("MODELOPS_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["MODELOPS_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    settings = load_settings()
    stopped: list[str] = []
    services = up(settings, prefect_port=free_port(), mlflow_port=free_port(), **up_options)
    api_url = next(s.url for s in services if s.name == "stage-runner")
    try:
        # Prefect keeps one events worker per process whatever the API address (its key is the client class
        # alone): drained here, the next event starts one for the live server, and drained again before the live
        # server stops, the tests after these start one for the session's server again. Otherwise the stage events
        # of these tests go to the session's server, and later tests' events to a server that is gone.
        drain_prefect_workers(timeout=60)
        with temporary_settings({PREFECT_API_URL: api_url}):
            try:
                yield api_url, services, stopped
            finally:
                drain_prefect_workers(timeout=60)
    finally:
        stopped += down(settings)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
