"""The systems of record a stage works with, built once per process from the settings."""

from __future__ import annotations

import getpass
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from modelops.catalog import MlflowCatalog
from modelops.settings import Settings, configure_environment
from modelops.store.db import require_reachable
from modelops.store.records import GovernanceStore


@dataclass(frozen=True)
class Platform:
    settings: Settings
    store: GovernanceStore

    @property
    def catalog(self) -> MlflowCatalog:
        """MLflow's registry and tracking store, opened by get_platform() unless a command reads the governance
        store alone (`status --store-only`): importing MLflow and opening its store cost seconds."""
        with _CATALOG_LOCK:  # threads of one process open it once, not once each in turn
            return _catalog_for(self.settings)


_CATALOG_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _platform_for(settings: Settings) -> Platform:
    # Two processes opening a new state directory at once would both run the governance migrations (one of them
    # then fails half-way): first use happens under a lock, one at a time.
    with _state_lock(settings.home / "run" / "init.lock"):
        store = GovernanceStore(settings.governance_url)
        store.open()
    return Platform(settings=settings, store=store)


@lru_cache(maxsize=4)
def _catalog_for(settings: Settings) -> MlflowCatalog:
    # The same lock as the store's: two processes creating MLflow's tables at once would collide as well.
    with _state_lock(settings.home / "run" / "init.lock"):
        require_reachable(settings.tracking_uri, "the MLflow tracking store", "MODELOPS_TRACKING_URI")
        catalog = MlflowCatalog(settings.tracking_uri, settings.artifact_root)  # MLflow's client opens its store
        catalog.open()
    return catalog


@contextmanager
def _state_lock(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def get_platform(catalog: bool = True) -> Platform:
    """The platform of this process's settings. MLflow is opened here, before any change: a stage whose MLflow
    cannot be reached stops before it writes the store (a deploy would otherwise serve a version, then fail to
    mirror it), and `modelops up` creates MLflow's tables under the state lock before any server starts.
    `catalog=False` leaves MLflow to its first use, for commands that may never need it."""
    platform = _platform_for(configure_environment())
    if catalog:
        platform.catalog
    return platform


def platform_for(settings: Settings) -> Platform:
    """The platform of given settings: a Dask worker judging a flow's chunk opens the flow's systems of record."""
    platform = _platform_for(configure_environment(settings))
    platform.catalog
    return platform


# The identity of every run a runner or worker starts for a deployment: triggers, schedules, the UI's Run button.
SERVICE_ACTOR = "service:modelops"


def current_actor() -> str:
    """Who is acting, as the audit trail records it:
    - `service:modelops` in a process a Prefect runner or worker started for a deployment run (Prefect sets
      PREFECT__FLOW_RUN_ID there): automated chains act as the service whoever started the stack;
    - `person:<name>` when MODELOPS_USER names a person (CLI commands);
    - MODELOPS_ACTOR as given (the stage service passes the CLI's actor on this way);
    - else `user:<OS user>` (a platform without people: see README, People and roles)."""
    if os.environ.get("PREFECT__FLOW_RUN_ID"):
        return SERVICE_ACTOR
    person = os.environ.get("MODELOPS_USER")
    if person:
        return f"person:{person}"
    explicit = os.environ.get("MODELOPS_ACTOR")
    if explicit:
        return explicit
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"
