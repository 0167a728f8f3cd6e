"""The user's display name, set on the account settings page.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 00:00:00

A nullable column added with plain ADD COLUMN (no rebuild of the users table on SQLite).
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add users.display_name."""
    op.add_column("users", sa.Column("display_name", sa.String(100), nullable=True))


def downgrade() -> None:
    """Drop users.display_name: the names set are lost."""
    op.drop_column("users", "display_name")
