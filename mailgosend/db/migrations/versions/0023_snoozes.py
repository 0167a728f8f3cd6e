"""Snooze: messages waiting in the \\Snoozed mailbox until their time (issue 13).

Revision ID: 0023
Revises: 0018
Create Date: 2026-12-05 00:00:00

``snoozes`` holds (user, Email id, wake-up time, the mailbox to return to); the wake-up
worker (mail/snooze.py) claims a due row by deleting it, in the transaction that moves the
message back.
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0023"
down_revision: Union[str, Sequence[str], None] = "0018"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create the table and its wake-up index."""
    op.create_table(
        "snoozes",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("email_id", sa.BigInteger(), nullable=False),
        sa.Column("wake_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("return_mailbox_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_snoozes_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "email_id", name=op.f("pk_snoozes")),
    )
    op.create_index(op.f("ix_snoozes_wake_at"), "snoozes", ["wake_at"], unique=False)


def downgrade() -> None:
    """Drop the table: snoozed messages stay in the Snoozed mailbox."""
    op.drop_index(op.f("ix_snoozes_wake_at"), table_name="snoozes")
    op.drop_table("snoozes")
