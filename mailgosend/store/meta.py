"""Server facts kept in the database itself (the ``meta`` table)."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from mailgosend.crypto import KeyRing
from mailgosend.db.schema import meta

ENCRYPTION_KEY_ID = "encryption_key_id"


class KeyMismatch(Exception):
    """ENCRYPTION_KEY is not the key this database's data was sealed with."""


def get(conn: Connection, key: str) -> Optional[str]:
    row = conn.execute(select(meta.c.value).where(meta.c.key == key)).first()
    return None if row is None else str(row.value)


def put(conn: Connection, key: str, value: str) -> None:
    if get(conn, key) is None:
        conn.execute(insert(meta).values(key=key, value=value))
    else:
        conn.execute(update(meta).where(meta.c.key == key).values(value=value))


def check_encryption_key(conn: Connection, keyring: KeyRing) -> None:
    """Refuse to start with a key that cannot read the stored data.

    The first start records the key id (never the key); a later start with a
    different ENCRYPTION_KEY that does not list the original one in
    ENCRYPTION_KEYS_OLD would write mail nobody could read back.
    """
    stored = get(conn, ENCRYPTION_KEY_ID)
    if stored is None:
        put(conn, ENCRYPTION_KEY_ID, keyring.key_id_hex())
        return
    if not keyring.knows_key_id(bytes.fromhex(stored)):
        raise KeyMismatch(
            f"ENCRYPTION_KEY does not match the key this database was created with (key id "
            f"{stored}, configured key id {keyring.key_id_hex()}): restore the original "
            "ENCRYPTION_KEY, or keep it in ENCRYPTION_KEYS_OLD when rotating")
