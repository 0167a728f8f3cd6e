"""Send later: the outbound queue's release time (RFC 4865 FUTURERELEASE, JMAP HOLDUNTIL).

Revision ID: 0019
Revises: 0020
Create Date: 2026-12-05 00:00:00

``queue.release_at``: a message held for later is not sent before it (its recipients' first
``next_attempt_at`` is that time); NULL for the usual message, sent at once.
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0019"
down_revision: Union[str, Sequence[str], None] = "0020"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add the column."""
    with op.batch_alter_table("queue") as batch:
        batch.add_column(sa.Column("release_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("queue") as batch:
        batch.drop_column("release_at")
