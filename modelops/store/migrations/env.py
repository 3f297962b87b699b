"""Alembic environment: the URL comes from the caller (modelops.store.db.migrate), never from a file."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from modelops.store.schema import Base

config = context.config
connection = config.attributes.get("connection")


def run(connection_) -> None:
    context.configure(connection=connection_, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as conn:
        run(conn)
