"""IMAP: the \\Recent floor of each mailbox, kept across restarts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 00:00:00

RFC 3501 §2.3.2: a message is \\Recent to the first session that selects its mailbox after it
arrived.  ``mailboxes.recent_floor`` is the highest UID already shown as \\Recent to a session
(imap/hub.py keeps it in memory and writes each raise here), so the messages that arrive
while nobody, or no server, is watching are \\Recent to the next session.  Existing mailboxes
start at UIDNEXT - 1: what they hold was delivered before this revision and has been seen.
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add mailboxes.recent_floor, set to UIDNEXT - 1 for the mailboxes that exist."""
    # A plain ADD COLUMN on both back ends: batch mode would rebuild the SQLite table without
    # its AUTOINCREMENT.
    op.add_column("mailboxes", sa.Column("recent_floor", sa.BigInteger(), nullable=False,
                                         server_default=sa.text("0")))
    boxes = sa.table("mailboxes", sa.column("uidnext", sa.BigInteger()),
                     sa.column("recent_floor", sa.BigInteger()))
    op.execute(boxes.update().values(recent_floor=boxes.c.uidnext - 1))


def downgrade() -> None:
    """Drop the column; \\Recent is then kept in memory only, as before."""
    op.drop_column("mailboxes", "recent_floor")  # SQLite >= 3.35 drops a column in place
