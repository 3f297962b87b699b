"""What an attacker with write access to the governance database can do on either engine: drop the append-only
triggers of the audit trail, then write around the platform."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection as SqlConnection, create_engine

# The triggers migration 0004 creates, per dialect.
DROP_APPEND_ONLY = {
    "sqlite": ["DROP TRIGGER audit_events_no_update", "DROP TRIGGER audit_events_no_delete"],
    "postgresql": ["DROP TRIGGER audit_events_append_only ON audit_events"],
}


def drop_append_only_triggers(connection: SqlConnection) -> None:
    """On a connection (a session's: `session.connection()`), inside its transaction."""
    for statement in DROP_APPEND_ONLY[connection.dialect.name]:
        connection.exec_driver_sql(statement)


class Connection:
    """A direct connection to the store's database (SQLite file or PostgreSQL), each statement committed at once;
    statements take `?` placeholders whatever the driver."""

    def __init__(self, url: str) -> None:
        self.connection = create_engine(url, isolation_level="AUTOCOMMIT").connect()
        self.dialect = self.connection.dialect.name

    def execute(self, statement: str, parameters: tuple[Any, ...] = ()) -> Any:
        if self.dialect == "postgresql":
            statement = statement.replace("?", "%s")
        return self.connection.exec_driver_sql(statement, parameters)


def attacker(url: str) -> Connection:
    """Direct write access to the database; the triggers are dropped first, as anyone with that access could."""
    connection = Connection(url)
    drop_append_only_triggers(connection.connection)
    return connection
