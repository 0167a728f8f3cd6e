"""Open the configured database for the server and the CLI: create the SQLite file
owner-only, migrate to the newest schema, check ENCRYPTION_KEY against the database.

Kept apart from service.py so that a CLI command imports only what it uses.
"""

from __future__ import annotations

import os
from typing import Any

from mailgosend.config import Config
from mailgosend.crypto import KeyRing
from mailgosend.db.engine import create_db_engine
from mailgosend.db.migrate import upgrade_to_head
from mailgosend.errors import StartupError
from mailgosend.store import meta


def open_database(config: Config, keyring: KeyRing) -> Any:
    """A migrated engine on the configured database; StartupError names what is wrong."""
    where = (f"DB_DSN = {_dsn_without_password(config['DB_DSN'])}"
             if config["DB_DRIVER"] == "postgres" else f"DB_PATH = {config['DB_PATH']}")
    if config["DB_DRIVER"] == "sqlite" or config["STORAGE_BACKEND"] == "fs":
        # Mail lives here: owner-only from the first byte.
        os.makedirs(config["DATA_DIR"], mode=0o700, exist_ok=True)
    try:
        if config["DB_DRIVER"] == "sqlite" and not os.path.exists(config["DB_PATH"]):
            os.makedirs(os.path.dirname(config["DB_PATH"]), mode=0o700, exist_ok=True)
            os.close(os.open(config["DB_PATH"], os.O_WRONLY | os.O_CREAT, 0o600))
        engine = create_db_engine(config["DB_DRIVER"], sqlite_path=config["DB_PATH"],
                                  dsn=config["DB_DSN"], pool_size=config["DB_POOL_SIZE"])
        upgrade_to_head(engine)
        with engine.begin() as conn:
            meta.check_encryption_key(conn, keyring)
    except meta.KeyMismatch as exc:
        raise StartupError(str(exc)) from None
    except Exception as exc:  # the driver's own message says what is wrong
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StartupError(f"cannot open the database ({where}): {first}") from None
    return engine


def _dsn_without_password(dsn: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(dsn).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable DSN)"
