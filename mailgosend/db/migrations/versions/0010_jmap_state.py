"""JMAP state: Email and Thread ids on messages, one change counter per user, tombstones.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 00:00:00

- ``messages.email_id`` / ``thread_id`` / ``created_modseq`` (store/mailstate.py,
  store/threads.py), with indexes by user for lookups by Email id, Thread id and change,
  and ``ix_messages_counts``, a partial index over the live rows that the JMAP Mailbox
  counts read instead of the wide rows (benchmarks/jmap_state.py).
- ``mailboxes.created_modseq`` / ``changed_modseq`` / ``sort_order``.
- ``mail_state``: the per-user change counter and pruning floor; ``thread_refs``: keyed
  hashes of Message-IDs -> thread; ``mailbox_tombstones`` / ``email_tombstones``.

Backfill: every existing message becomes its own Email (``email_id = id``) and its own
Thread (``thread_id = id``): threading needs the Message-IDs, which are inside the sealed
structures, and the migration has neither the keyring nor a reason to decrypt every message
of every user.  New mail threads from now on.  Each user's counter starts at the highest
MODSEQ of their mailboxes (so new values exceed every MODSEQ IMAP clients have seen) and so
does the pruning floor: there is no JMAP history from before, so a state below it is answered
``cannotCalculateChanges``.
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010"
# 0009 on branch jmap-state; chained after main's 0017 in jmap-core so there is one head.
down_revision: Union[str, Sequence[str], None] = "0017"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Add the columns, tables and indexes; backfill ids, counters and floors."""
    op.add_column("messages", sa.Column("email_id", sa.BigInteger(), nullable=True))
    op.add_column("messages", sa.Column("thread_id", sa.BigInteger(), nullable=True))
    op.add_column("messages", sa.Column("created_modseq", sa.BigInteger(),
                                        server_default=sa.text("0"), nullable=False))
    for column in ("created_modseq", "changed_modseq"):
        op.add_column("mailboxes", sa.Column(column, sa.BigInteger(),
                                             server_default=sa.text("0"), nullable=False))
    op.add_column("mailboxes", sa.Column("sort_order", sa.Integer(),
                                         server_default=sa.text("0"), nullable=False))
    op.create_table(
        "mail_state",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.Column("pruned_modseq", sa.BigInteger(), server_default=sa.text("0"),
                  nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_mail_state_user_id_users",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name="pk_mail_state"),
    )
    op.create_table(
        "thread_refs",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ref_hash", sa.LargeBinary(16), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name="fk_thread_refs_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "ref_hash", name="pk_thread_refs"),
    )
    op.create_table(
        "mailbox_tombstones",
        sa.Column("mailbox_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_modseq", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name="fk_mailbox_tombstones_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("mailbox_id", name="pk_mailbox_tombstones"),
    )
    op.create_index("ix_mailbox_tombstones_user_id_modseq", "mailbox_tombstones",
                    ["user_id", "modseq"])
    op.create_table(
        "email_tombstones",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("email_id", sa.BigInteger(), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("created_modseq", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name="fk_email_tombstones_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_email_tombstones"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_email_tombstones_user_id_modseq", "email_tombstones",
                    ["user_id", "modseq"])
    op.create_index("ix_email_tombstones_user_id_thread_id", "email_tombstones",
                    ["user_id", "thread_id"])

    messages = sa.table("messages", sa.column("id"), sa.column("email_id"),
                        sa.column("thread_id"), sa.column("modseq"),
                        sa.column("created_modseq"))
    op.execute(sa.update(messages).values(email_id=messages.c.id, thread_id=messages.c.id,
                                          created_modseq=messages.c.modseq))
    op.create_index("ix_messages_user_id_email_id", "messages", ["user_id", "email_id"])
    op.create_index("ix_messages_user_id_thread_id", "messages", ["user_id", "thread_id"])
    op.create_index("ix_messages_user_id_modseq", "messages", ["user_id", "modseq"])
    op.create_index("ix_messages_counts", "messages",
                    ["user_id", "mailbox_id", "thread_id", "flags"],
                    sqlite_where=sa.text("deleted_at IS NULL"),
                    postgresql_where=sa.text("deleted_at IS NULL"))

    users = sa.table("users", sa.column("id"))
    mailboxes = sa.table("mailboxes", sa.column("user_id"), sa.column("highestmodseq"))
    state = sa.table("mail_state", sa.column("user_id"), sa.column("modseq"),
                     sa.column("pruned_modseq"))
    highest = sa.func.coalesce(
        sa.select(sa.func.max(mailboxes.c.highestmodseq))
        .where(mailboxes.c.user_id == users.c.id).scalar_subquery(), 0)
    op.execute(sa.insert(state).from_select(["user_id", "modseq", "pruned_modseq"],
                                            sa.select(users.c.id, highest, highest)))


def downgrade() -> None:
    """Drop what upgrade added: JMAP states and threads are lost (IMAP is unaffected)."""
    for index in ("ix_messages_counts", "ix_messages_user_id_modseq", "ix_messages_user_id_thread_id",
                  "ix_messages_user_id_email_id"):
        op.drop_index(index, table_name="messages")
    op.drop_index("ix_email_tombstones_user_id_thread_id", table_name="email_tombstones")
    op.drop_index("ix_email_tombstones_user_id_modseq", table_name="email_tombstones")
    op.drop_table("email_tombstones")
    op.drop_index("ix_mailbox_tombstones_user_id_modseq", table_name="mailbox_tombstones")
    op.drop_table("mailbox_tombstones")
    op.drop_table("thread_refs")
    op.drop_table("mail_state")
    with op.batch_alter_table("mailboxes") as batch:
        for column in ("sort_order", "changed_modseq", "created_modseq"):
            batch.drop_column(column)
    with op.batch_alter_table("messages") as batch:
        for column in ("created_modseq", "thread_id", "email_id"):
            batch.drop_column(column)
