"""JMAP identities, email submissions and the vacation response (RFC 8621 §6-8).

Revision ID: 0012
Revises: 0013 (one head with jmap-state's 0010 and 0013 merged; the lead re-chains)
Create Date: 2026-12-05 00:00:00

``jmap_identities`` and ``jmap_submissions`` keep destroyed rows as tombstones and a per-user
``modseq`` so /changes can answer; their private parts (names, signatures, envelopes) are
sealed with the user's key.  ``vacation_responses`` is the per-user singleton (texts sealed),
``vacation_replies`` remembers by keyed hash whom an automatic reply went to (RFC 3834 §2).
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0012"
down_revision: Union[str, Sequence[str], None] = "0013"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the four tables."""
    op.create_table(
        "jmap_identities",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_modseq", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.Column("destroyed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_jmap_identities_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jmap_identities")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_jmap_identities_user_id_modseq", "jmap_identities",
                    ["user_id", "modseq"])
    op.create_table(
        "jmap_submissions",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("identity_id", sa.BigInteger(), nullable=False),
        sa.Column("email_id", sa.BigInteger(), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undo_status", sa.String(8), nullable=False),
        sa.Column("queue_id", sa.BigInteger(), nullable=True),
        sa.Column("created_modseq", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.Column("destroyed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_jmap_submissions_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jmap_submissions")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_jmap_submissions_user_id_modseq", "jmap_submissions",
                    ["user_id", "modseq"])
    op.create_index("ix_jmap_submissions_undo_status_send_at", "jmap_submissions",
                    ["undo_status", "send_at"])
    op.create_table(
        "vacation_responses",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("is_enabled", sa.Boolean(), nullable=False),
        sa.Column("from_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("to_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_vacation_responses_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_vacation_responses")),
    )
    op.create_table(
        "vacation_replies",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("sender_hash", sa.String(64), nullable=False),
        sa.Column("replied_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_vacation_replies_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "sender_hash", name=op.f("pk_vacation_replies")),
    )


def downgrade() -> None:
    """Drop the four tables: identities' settings, submissions and the vacation reply are
    lost."""
    op.drop_table("vacation_replies")
    op.drop_table("vacation_responses")
    op.drop_index("ix_jmap_submissions_undo_status_send_at", table_name="jmap_submissions")
    op.drop_index("ix_jmap_submissions_user_id_modseq", table_name="jmap_submissions")
    op.drop_table("jmap_submissions")
    op.drop_index("ix_jmap_identities_user_id_modseq", table_name="jmap_identities")
    op.drop_table("jmap_identities")
