"""Schema migrations (Alembic), driven from code: no alembic.ini is needed at run time.

The migration scripts live inside the package (``mailgosend/db/migrations``) so an installed
mailgosend can upgrade its own database.  Upgrades run synchronously at startup, before the reactor
runs (or from the CLI), in a single transaction on a write connection: on SQLite and PostgreSQL DDL
is transactional, so a failed upgrade leaves the previous schema intact.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from mailgosend.db.engine import connect_for_write

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "shipped_head",
    "upgrade_to_head",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Arbitrary constant for pg_advisory_xact_lock: nodes sharing one PostgreSQL (DESIGN §9) that start
# together must not run the same migration twice.
_MIGRATION_LOCK_KEY = 0x6D67_6D69  # "mgmi"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic ``Config`` for the packaged scripts, optionally bound to ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Bring the database to the newest schema; a no-op when it is already there.

    The usual case, a database already at the shipped head, is recognised without loading
    Alembic (a CLI command then starts in a fraction of the time).
    """
    head = shipped_head()
    if head is not None and _stored_revision(engine) == head:
        return
    from alembic import command

    with connect_for_write(engine) as conn:
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            command.upgrade(alembic_config(conn), "head")


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for a database never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest revision shipped with this version of mailgosend."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts found in {MIGRATIONS_DIR}")
    return head


_REVISION_LINE = re.compile(r"^revision\b[^=\n]*=\s*(.+?)\s*$", re.MULTILINE)
_DOWN_REVISION_LINE = re.compile(r"^down_revision\b[^=\n]*=\s*(.+?)\s*$", re.MULTILINE)
_QUOTED = re.compile(r"""^(["'])([^"']+)\1$""")


def shipped_head() -> Optional[str]:
    """The head revision, read from the scripts' ``revision``/``down_revision`` lines.

    None whenever the scripts are not one simple chain that this reading understands
    (a merge, a computed value...): then Alembic itself decides.  A test keeps it equal to
    :func:`head_revision`.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        source = script.read_text(encoding="utf-8")
        revision, down = _REVISION_LINE.search(source), _DOWN_REVISION_LINE.search(source)
        if revision is None or down is None:
            return None
        quoted = _QUOTED.match(revision.group(1))
        if quoted is None:
            return None
        revisions.add(quoted.group(2))
        if down.group(1) != "None":
            parent = _QUOTED.match(down.group(1))
            if parent is None:
                return None
            parents.add(parent.group(2))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revision(engine: Engine) -> Optional[str]:
    """The single revision recorded in the database, or None (none, several, no table)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return None
    return str(rows[0][0]) if len(rows) == 1 else None
