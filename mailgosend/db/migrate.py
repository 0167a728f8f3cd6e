"""Schema migrations (Alembic), driven from code: no alembic.ini is needed at run time.

The migration scripts live inside the package (``mailgosend/db/migrations``) so an installed
mailgosend can upgrade its own database.  Upgrades run synchronously at startup, before the reactor
runs (or from the CLI), in a single transaction on a write connection: on SQLite and PostgreSQL DDL
is transactional, so a failed upgrade leaves the previous schema intact.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from mailgosend.db.engine import connect_for_write

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "upgrade_to_head",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Arbitrary constant for pg_advisory_xact_lock: nodes sharing one PostgreSQL (DESIGN §9) that start
# together must not run the same migration twice.
_MIGRATION_LOCK_KEY = 0x6D67_6D69  # "mgmi"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic ``Config`` for the packaged scripts, optionally bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Bring the database to the newest schema; a no-op when it is already there."""
    with connect_for_write(engine) as conn:
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            command.upgrade(alembic_config(conn), "head")


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for a database never migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest revision shipped with this version of mailgosend."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts found in {MIGRATIONS_DIR}")
    return head
