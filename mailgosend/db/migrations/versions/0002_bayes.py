"""Per-user Bayesian classifier statistics: bayes_tokens, bayes_totals, bayes_seen.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01 00:00:00

New tables only, so no batch mode is needed on SQLite.  Tokens and message digests are keyed
hashes (spam/bayes.py), never words.
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _user_id(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    """Create the three classifier tables."""
    op.create_table(
        "bayes_tokens",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("token", sa.LargeBinary(8), nullable=False),
        sa.Column("ham_count", sa.Integer(), nullable=False),
        sa.Column("spam_count", sa.Integer(), nullable=False),
        _user_id("bayes_tokens"),
        sa.PrimaryKeyConstraint("user_id", "token", name=op.f("pk_bayes_tokens")),
    )
    op.create_table(
        "bayes_totals",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ham_messages", sa.Integer(), nullable=False),
        sa.Column("spam_messages", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _user_id("bayes_totals"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_bayes_totals")),
    )
    op.create_table(
        "bayes_seen",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("digest", sa.LargeBinary(16), nullable=False),
        sa.Column("is_spam", sa.Boolean(), nullable=False),
        sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
        _user_id("bayes_seen"),
        sa.PrimaryKeyConstraint("user_id", "digest", name=op.f("pk_bayes_seen")),
    )


def downgrade() -> None:
    """Drop the classifier tables: every user's training is lost."""
    for table in ("bayes_seen", "bayes_totals", "bayes_tokens"):
        op.drop_table(table)
