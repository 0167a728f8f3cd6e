"""JMAP uploads: blobs a client uploaded (RFC 8620 §6.1), kept for 24 hours.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-05 00:00:00

``uploads`` maps an upload's token (its blob id is "U" + token) to the sealed blob in the
blob store, its owner, declared type and size; the maintenance job deletes expired rows and
then the blob purge removes blobs nothing references any more.
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0013"
down_revision: Union[str, Sequence[str], None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create the uploads table."""
    op.create_table(
        "uploads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("blob_id", sa.String(64), nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_uploads_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
        sa.UniqueConstraint("token", name=op.f("uq_uploads_token")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_uploads_user_id"), "uploads", ["user_id"])
    op.create_index(op.f("ix_uploads_blob_id"), "uploads", ["blob_id"])
    op.create_index(op.f("ix_uploads_expires_at"), "uploads", ["expires_at"])


def downgrade() -> None:
    """Drop the table: pending uploads are forgotten (their blobs purged later)."""
    op.drop_index(op.f("ix_uploads_expires_at"), table_name="uploads")
    op.drop_index(op.f("ix_uploads_blob_id"), table_name="uploads")
    op.drop_index(op.f("ix_uploads_user_id"), table_name="uploads")
    op.drop_table("uploads")
