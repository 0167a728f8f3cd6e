"""Webmail: the senders whose remote content a user always shows (issue 13).

Revision ID: 0020
Revises: 0012
Create Date: 2026-12-05 00:00:00

``remote_content_senders`` holds (user, HMAC of the sender's address under the user's
derived key): no plaintext address is stored.
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0020"
down_revision: Union[str, Sequence[str], None] = "0012"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "remote_content_senders",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("sender_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_remote_content_senders_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "sender_hash",
                                name=op.f("pk_remote_content_senders")),
    )


def downgrade() -> None:
    """Drop the table: every sender's remote content is blocked again."""
    op.drop_table("remote_content_senders")
