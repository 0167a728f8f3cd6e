"""IMAP: the \\Recent floor of each mailbox, and subscriptions as names.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 00:00:00

RFC 3501 §2.3.2: a message is \\Recent to the first session that selects its mailbox after it
arrived.  ``mailboxes.recent_floor`` is the highest UID already shown as \\Recent to a session
(imap/hub.py keeps it in memory and writes each raise here), so the messages that arrive
while nobody, or no server, is watching are \\Recent to the next session.  Existing mailboxes
start at UIDNEXT - 1: what they hold was delivered before this revision and has been seen.

RFC 3501 §6.3.6: subscriptions are names, independent of mailboxes (DELETE keeps them, a
deleted name can still be unsubscribed), so they move from ``mailboxes.subscribed`` to their
own table; every mailbox subscribed before stays subscribed.
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

_boxes = sa.table("mailboxes", sa.column("user_id", sa.Integer()),
                  sa.column("name", sa.String(512)), sa.column("uidnext", sa.BigInteger()),
                  sa.column("recent_floor", sa.BigInteger()),
                  sa.column("subscribed", sa.Boolean()))
_subscriptions = sa.table("subscriptions", sa.column("user_id", sa.Integer()),
                          sa.column("name", sa.String(512)))


def upgrade() -> None:
    """Add mailboxes.recent_floor (UIDNEXT - 1 for the mailboxes that exist); move
    mailboxes.subscribed into the subscriptions table."""
    # Plain ADD/DROP COLUMN on both back ends (SQLite >= 3.35): batch mode would rebuild the
    # SQLite table without its AUTOINCREMENT.
    op.add_column("mailboxes", sa.Column("recent_floor", sa.BigInteger(), nullable=False,
                                         server_default=sa.text("0")))
    op.execute(_boxes.update().values(recent_floor=_boxes.c.uidnext - 1))
    op.create_table(
        "subscriptions",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "name"),
    )
    op.execute(_subscriptions.insert().from_select(
        ["user_id", "name"], sa.select(_boxes.c.user_id, _boxes.c.name)
        .where(_boxes.c.subscribed == sa.true())))
    op.drop_column("mailboxes", "subscribed")


def downgrade() -> None:
    """Back to a subscribed flag per mailbox (names without a mailbox are lost) and a
    \\Recent floor kept in memory only."""
    op.add_column("mailboxes", sa.Column("subscribed", sa.Boolean(), nullable=False,
                                         server_default=sa.true()))
    op.execute(_boxes.update().values(subscribed=sa.exists().where(
        _subscriptions.c.user_id == _boxes.c.user_id, _subscriptions.c.name == _boxes.c.name)))
    op.drop_table("subscriptions")
    op.drop_column("mailboxes", "recent_floor")
