"""Every store test runs on both engines the governance store supports: SQLite (a file in the state directory, the
default) and PostgreSQL (a fresh database on the session's embedded server)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def governance_url(request: pytest.FixtureRequest, state_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store's URL, also set as MODELOPS_GOVERNANCE_URL so that the platform and the CLI open the same store."""
    if request.param == "sqlite":
        state_home.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{state_home / 'governance.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    monkeypatch.setenv("MODELOPS_GOVERNANCE_URL", url)
    return url
