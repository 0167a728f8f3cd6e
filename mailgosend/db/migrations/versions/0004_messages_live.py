"""IMAP: a partial index over the live (not expunged) messages of each mailbox.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 00:00:00

IMAP counts a mailbox's live messages at NOOP and when a shared snapshot is brought up to date
(imap/snapshot.py), and lists their UIDs when the count disagrees.  Without this index both read
every row, ``meta`` included (measured on 10,000 messages in SQLite: 30 ms per count; with it
0.5 ms, an index-only scan).  Partial (``deleted_at IS NULL``) on both back ends, so expunged
rows waiting for the purge cost nothing.  Index only: creating it reads the table once.
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create ix_messages_live (mailbox_id, uid) WHERE deleted_at IS NULL."""
    op.create_index("ix_messages_live", "messages", ["mailbox_id", "uid"], unique=False,
                    sqlite_where=sa.text("deleted_at IS NULL"),
                    postgresql_where=sa.text("deleted_at IS NULL"))


def downgrade() -> None:
    """Drop the index; queries fall back to the table (slower, still correct)."""
    op.drop_index("ix_messages_live", table_name="messages")
