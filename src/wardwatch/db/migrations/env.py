"""Alembic environment: runs on the connection WardWatch hands it, or on WARDWATCH_DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from wardwatch.config import Settings
from wardwatch.db.session import make_engine
from wardwatch.models import Base

config = context.config
target_metadata = Base.metadata


def _run(conn: Connection) -> None:
    context.configure(
        connection=conn,
        target_metadata=target_metadata,
        render_as_batch=conn.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine(Settings().resolved_database_url())
    with engine.begin() as conn:
        _run(conn)
