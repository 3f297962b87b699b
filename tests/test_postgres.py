"""`modelops up --postgres`: the governance store, MLflow's tracking store and the Prefect server all keep their
data in the state directory's embedded PostgreSQL, `down` stops it with the rest and the next `up` finds the data
again. A PostgreSQL that cannot start, or a store URL that reaches nothing, is a clear error."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.live_stack import live_stack

MODEL = "bike-demand"


def query(url: str, statement: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(statement))]
    finally:
        engine.dispose()


def test_up_postgres_keeps_every_system_of_record_in_postgresql_across_down_and_up(tmp_path: Path) -> None:
    from prefect.deployments import run_deployment

    from modelops.platform import get_platform
    from modelops.services import postgres

    home = tmp_path / "state"
    with live_stack(home, gateway_port=None, with_streaming=False, with_postgres=True) as (api_url, services,
                                                                                           stopped):
        assert [s.name for s in services][0] == "postgres"
        run = run_deployment("register/register", parameters={"model": MODEL}, timeout=600)
        assert run.state_name == "Completed"
        urls = postgres.recorded_urls(home)
        assert urls is not None and get_platform().settings.governance_url == urls["governance_url"]
        # Each system of record wrote its rows into its own PostgreSQL database, and none into a SQLite file.
        assert query(urls["governance_url"], f"SELECT count(*) FROM audit_events WHERE model = '{MODEL}' AND "
                                             "stage = 'register'")[0][0] >= 1
        assert (MODEL,) in query(urls["tracking_uri"], "SELECT name FROM registered_models")
        prefect_url = urls["prefect_url"].replace("+asyncpg", "+psycopg")
        assert query(prefect_url, f"SELECT state_name FROM flow_run WHERE id = '{run.id}'") == [("Completed",)]
        assert not list(home.glob("*.db"))
    assert "postgres" in stopped
    with pytest.raises(OperationalError):
        query(urls["governance_url"], "SELECT 1")  # down stopped the server
    # `up` again (no flag: the state directory remembers) reuses the same data.
    with live_stack(home, gateway_port=None, with_streaming=False) as (_, services, _stopped):
        assert "postgres" in [s.name for s in services]
        platform = get_platform()
        assert MODEL in platform.catalog.model_names()
        assert [e.stage for e in platform.store.audit_trail(MODEL)][0] == "register"
        assert platform.store.verify_audit([]).ok
        assert query(prefect_url, f"SELECT state_name FROM flow_run WHERE id = '{run.id}'") == [("Completed",)]


def test_a_postgresql_that_cannot_start_is_a_clear_error(tmp_path: Path) -> None:
    from modelops.errors import ModelOpsError
    from modelops.services import postgres

    data = tmp_path / "data"
    postgres.prepare(data)
    (data / "PG_VERSION").write_text("9\n")  # a data directory of another major version
    with pytest.raises(ModelOpsError, match="exited with code") as caught:
        postgres.start(data, tmp_path / "postgres.log")
    assert "postgres.log" in caught.value.fix
    assert "incompatible" in (tmp_path / "postgres.log").read_text()


def test_a_governance_url_that_reaches_no_database_is_a_clear_error(tmp_path: Path) -> None:
    from modelops.errors import ModelOpsError
    from modelops.store.records import GovernanceStore

    url = f"postgresql+psycopg://postgres@/governance?host={tmp_path}"  # no server listens there
    with pytest.raises(ModelOpsError, match="governance store at .* cannot be opened") as caught:
        GovernanceStore(url).open()
    assert "MODELOPS_GOVERNANCE_URL" in caught.value.fix


def test_a_socket_folder_others_may_enter_is_refused(tmp_path: Path) -> None:
    from modelops.errors import ModelOpsError
    from modelops.services import postgres

    data = (tmp_path / ("long" * 25) / "data").resolve()  # too long a path for a socket beside the data
    planted = postgres.socket_dir_for(data)
    assert planted.parent == Path(tempfile.gettempdir())
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)  # prepared by someone else, for everyone
    try:
        with pytest.raises(ModelOpsError, match="socket folder .* was not made by this user") as caught:
            postgres.prepare(data)
        assert "MODELOPS_HOME" in caught.value.fix
    finally:
        planted.rmdir()


def test_a_socket_folder_with_a_space_an_ampersand_and_a_plus_is_named_exactly_in_its_urls(tmp_path: Path) -> None:
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy import make_url

    from modelops.services import postgres

    folder = tmp_path / "my state & co+1"
    server = postgres.EmbeddedPostgres(folder, folder)
    assert make_url(server.url("governance")).query["host"] == str(folder)
    assert make_url(server.url("prefect", driver="asyncpg")).query["host"] == str(folder)
    assert conninfo_to_dict(server.conninfo())["host"] == str(folder)


def test_a_state_directory_with_models_in_sqlite_is_not_switched_to_an_empty_postgresql(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from modelops.errors import ModelOpsError
    from modelops.services import postgres
    from modelops.settings import load_settings

    home = tmp_path / "state"
    home.mkdir()
    catalog = f"sqlite:///{home / 'mlflow.db'}"
    # the registry too: an earlier test of the session may have set MLflow's registry elsewhere
    MlflowClient(tracking_uri=catalog, registry_uri=catalog).create_registered_model(MODEL)
    settings = replace(load_settings(), home=home)
    with pytest.raises(ModelOpsError, match=r"already keeps its records in SQLite .*mlflow\.db: 1 rows") as caught:
        postgres.start_for_stack(settings, home / "logs" / "postgres.log")
    assert "MODELOPS_HOME=<new folder> modelops up --postgres" in caught.value.fix
    # refused before anything was made: no data directory, no record pointing the state directory elsewhere
    assert not postgres.folder(home).exists() and postgres.recorded_urls(home) is None


def test_an_unreadable_record_of_the_state_directorys_postgresql_is_a_clear_error(tmp_path: Path) -> None:
    from modelops.errors import ModelOpsError
    from modelops.services import postgres

    record = postgres.record_path(tmp_path)
    record.write_text('{"governance_url": "postgresql+psycopg://postgres@/governance"')  # cut short
    record.chmod(0o600)
    with pytest.raises(ModelOpsError, match="PostgreSQL .*postgres.json is unreadable") as caught:
        postgres.recorded_urls(tmp_path)
    assert "modelops up --postgres" in caught.value.fix
