# -*- test-case-name: tests.test_jmap_query_index -*-
"""The search index tables (schema ``search_docs``/``search_tokens``, migration 0011).

Rows hold keyed hashes only (mail/searchtext.py makes them); this module never sees a word.
A document is one message blob of one user: copies and moves share the blob, so they share
the document, and a document whose blob no message uses any more is removed with its tokens
(``purge_orphans``, run by the maintenance pass after the purge of expunged messages).
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from sqlalchemy import delete, exists, func, insert, select
from sqlalchemy.engine import Connection

from mailgosend.db.schema import messages, search_docs, search_tokens

__all__ = ["add_document", "documents_with_all", "find_documents", "indexed_among", "indexed_blobs", "purge_orphans",
           "unindexed_blobs"]

_IN_BATCH = 500


def add_document(conn: Connection, user_id: int, blob_id: str, tokens: Iterable[bytes]
                 ) -> bool:
    """Index one blob of ``user_id`` in the caller's transaction; False if it already was
    (a second copy of the same blob)."""
    found = conn.execute(select(search_docs.c.id).where(
        search_docs.c.user_id == user_id, search_docs.c.blob_id == blob_id)).first()
    if found is not None:
        return False
    doc = conn.execute(insert(search_docs).values(user_id=user_id, blob_id=blob_id))
    key = doc.inserted_primary_key
    assert key is not None
    rows = [{"user_id": user_id, "token": token, "doc_id": int(key[0])}
            for token in sorted(set(tokens))]
    if rows:
        conn.execute(insert(search_tokens), rows)
    return True


def find_documents(conn: Connection, user_id: int, tokens: Sequence[bytes]
                   ) -> dict[bytes, set[str]]:
    """The blob ids of the documents holding each token (absent tokens map to nothing)."""
    found: dict[bytes, set[str]] = {}
    wanted = sorted(set(tokens))
    for i in range(0, len(wanted), _IN_BATCH):
        query = (select(search_tokens.c.token, search_docs.c.blob_id)
                 .join(search_docs, search_docs.c.id == search_tokens.c.doc_id)
                 .where(search_tokens.c.user_id == user_id,
                        search_tokens.c.token.in_(wanted[i:i + _IN_BATCH])))
        for row in conn.execute(query):
            found.setdefault(bytes(row.token), set()).add(row.blob_id)
    return found


def documents_with_all(conn: Connection, user_id: int, tokens: Sequence[bytes]) -> set[str]:
    """The blob ids of the documents holding every one of ``tokens``, intersected by the
    database (one row per such document, however common each token is)."""
    wanted = sorted(set(tokens))
    found: Optional[set[str]] = None
    for i in range(0, len(wanted), _IN_BATCH):
        batch = wanted[i:i + _IN_BATCH]
        query = (select(search_docs.c.blob_id)
                 .join(search_docs, search_docs.c.id == search_tokens.c.doc_id)
                 .where(search_tokens.c.user_id == user_id, search_tokens.c.token.in_(batch))
                 .group_by(search_docs.c.id, search_docs.c.blob_id)
                 .having(func.count() == len(batch)))
        blobs = {row.blob_id for row in conn.execute(query)}
        found = blobs if found is None else found & blobs
        if not found:
            break
    return found or set()


def indexed_blobs(conn: Connection, user_id: int) -> set[str]:
    """Every blob of ``user_id`` that has a document."""
    return {row.blob_id for row in conn.execute(
        select(search_docs.c.blob_id).where(search_docs.c.user_id == user_id))}


def unindexed_blobs(conn: Connection, user_id: int, limit: int) -> list[tuple[int, str]]:
    """Up to ``limit`` (message id, blob id) of live messages whose blob has no document:
    mail stored before the index existed (the backfill reads these)."""
    m = messages.c
    has_doc = exists().where(search_docs.c.user_id == user_id,
                             search_docs.c.blob_id == m.blob_id)
    rows = conn.execute(select(m.id, m.blob_id).where(
        m.user_id == user_id, m.deleted_at.is_(None), ~has_doc).order_by(m.id).limit(limit))
    seen: dict[str, int] = {}
    for row in rows:
        seen.setdefault(row.blob_id, int(row.id))
    return [(message_id, blob_id) for blob_id, message_id in seen.items()]


def purge_orphans(conn: Connection) -> int:
    """Remove the documents (and, by cascade, tokens) of blobs no message of their user
    refers to any more: the index goes with the message."""
    used = exists().where(messages.c.user_id == search_docs.c.user_id,
                          messages.c.blob_id == search_docs.c.blob_id)
    doomed = [row.id for row in conn.execute(select(search_docs.c.id).where(~used))]
    for i in range(0, len(doomed), _IN_BATCH):
        batch = doomed[i:i + _IN_BATCH]
        conn.execute(delete(search_tokens).where(search_tokens.c.doc_id.in_(batch)))
        conn.execute(delete(search_docs).where(search_docs.c.id.in_(batch)))
    return len(doomed)


def indexed_among(conn: Connection, user_id: int, blob_ids: Iterable[str]) -> set[str]:
    """Which of ``blob_ids`` have a document."""
    wanted = sorted(set(blob_ids))
    found: set[str] = set()
    for i in range(0, len(wanted), _IN_BATCH):
        found.update(row.blob_id for row in conn.execute(select(search_docs.c.blob_id).where(
            search_docs.c.user_id == user_id,
            search_docs.c.blob_id.in_(wanted[i:i + _IN_BATCH]))))
    return found
