"""Engine, sessions and migrations of the governance store."""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from modelops.errors import ModelOpsError

MIGRATIONS = Path(__file__).parent / "alembic.ini"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the monitor read while a scoring run writes; the busy timeout rides out short lock waits.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One migrated engine per URL per process."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # pre-ping: a PostgreSQL restarted under a long-lived process (the stage service) leaves dead pooled connections.
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    require_reachable(url, "the governance store", "MODELOPS_GOVERNANCE_URL")
    migrate(engine)
    return engine


def require_reachable(url: str, what: str, setting: str) -> None:
    """Fail at once, naming the database and the setting, when a database server behind `url` does not answer
    (MLflow would otherwise retry for minutes before its own error). SQLite files and non-database URIs pass."""
    if not url.startswith(("postgresql", "mysql")):
        return
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except OperationalError as error:
        raise ModelOpsError(f"{what} at {engine.url.render_as_string(hide_password=True)} cannot be opened: "
                            f"{str(error.orig).strip()}",
                            "start its database (`modelops up --postgres` for the state directory's own "
                            f"PostgreSQL) or point {setting} at one that runs") from error
    finally:
        engine.dispose()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A transaction: committed on success, rolled back on any error, so nothing is half-written."""
    factory = sessionmaker(bind=engine_for(url), expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
