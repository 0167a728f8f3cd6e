"""Alembic environment for mailgosend.

Migrations always run on a connection handed in by ``mailgosend.db.migrate`` through
``config.attributes["connection"]``: the caller owns the engine (pragmas, BEGIN IMMEDIATE on SQLite)
and the transaction, so the whole upgrade commits or rolls back as one unit.  There is no
alembic.ini and no URL here on purpose.
"""

from __future__ import annotations

from alembic import context

from mailgosend.db.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "mailgosend migrations run through mailgosend.db.migrate (e.g. upgrade_to_head(engine)), "
        "which passes the connection in; the alembic command line is not configured"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table (needs named constraints).
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    compare_server_default=True,
)

with context.begin_transaction():
    context.run_migrations()
