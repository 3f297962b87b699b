"""The systems of record a stage works with, built once per process from the settings."""

from __future__ import annotations

import getpass
import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from modelops.catalog import MlflowCatalog
from modelops.settings import Settings, configure_environment
from modelops.store.records import GovernanceStore


@dataclass(frozen=True)
class Platform:
    settings: Settings
    catalog: MlflowCatalog
    store: GovernanceStore


@lru_cache(maxsize=4)
def _platform_for(settings: Settings) -> Platform:
    # Two processes opening a new state directory at once would both create MLflow's tables and run the
    # governance migrations (one of them then fails half-way): first use happens under a lock, one at a time.
    with _state_lock(settings.home / "run" / "init.lock"):
        catalog = MlflowCatalog(settings.tracking_uri, settings.artifact_root)  # MLflow's client opens its store
        catalog.open()
        store = GovernanceStore(settings.governance_url)
        store.open()
    return Platform(settings=settings, catalog=catalog, store=store)


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


def get_platform() -> Platform:
    return _platform_for(configure_environment())


def current_actor() -> str:
    """Who is acting: MODELOPS_ACTOR when a person or service says so, else the OS user."""
    explicit = os.environ.get("MODELOPS_ACTOR")
    if explicit:
        return explicit
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"
