"""The systems of record a stage works with, built once per process from the settings."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from functools import lru_cache

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
    return Platform(settings=settings, catalog=MlflowCatalog(settings.tracking_uri, settings.artifact_root),
                    store=GovernanceStore(settings.governance_url))


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
