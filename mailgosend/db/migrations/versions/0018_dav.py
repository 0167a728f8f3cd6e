"""CalDAV/CardDAV storage: collections, objects (sealed), tombstones (issue #15).

Revision ID: 0018
Revises: 0019
Create Date: 2026-12-05 00:00:00

Chained after 0017 (not 0009 as planned): 0017 is already merged, and two revisions on
0009 would make two Alembic heads, which ``upgrade head`` refuses.
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = "0018"
down_revision: Union[str, Sequence[str], None] = "0019"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the three DAV tables."""
    op.create_table(
        "dav_collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("components", sa.String(64), nullable=False),
        sa.Column("props", sa.LargeBinary(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("sync_floor", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_dav_collections_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dav_collections")),
        sa.UniqueConstraint("user_id", "kind", "name",
                            name=op.f("uq_dav_collections_user_id_kind_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "dav_objects",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("uid", sa.String(255), nullable=False),
        sa.Column("etag", sa.String(40), nullable=False),
        sa.Column("component", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["collection_id"], ["dav_collections.id"], ondelete="CASCADE",
                                name=op.f("fk_dav_objects_collection_id_dav_collections")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_dav_objects_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dav_objects")),
        sa.UniqueConstraint("collection_id", "name",
                            name=op.f("uq_dav_objects_collection_id_name")),
        sa.UniqueConstraint("collection_id", "uid",
                            name=op.f("uq_dav_objects_collection_id_uid")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_dav_objects_collection_id_modseq", "dav_objects",
                    ["collection_id", "modseq"])
    op.create_table(
        "dav_tombstones",
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["collection_id"], ["dav_collections.id"], ondelete="CASCADE",
                                name=op.f("fk_dav_tombstones_collection_id_dav_collections")),
        sa.PrimaryKeyConstraint("collection_id", "name", name=op.f("pk_dav_tombstones")),
    )
    op.create_index("ix_dav_tombstones_collection_id_modseq", "dav_tombstones",
                    ["collection_id", "modseq"])


def downgrade() -> None:
    """Drop the DAV tables (their calendars and contacts are lost)."""
    op.drop_index("ix_dav_tombstones_collection_id_modseq", table_name="dav_tombstones")
    op.drop_table("dav_tombstones")
    op.drop_index("ix_dav_objects_collection_id_modseq", table_name="dav_objects")
    op.drop_table("dav_objects")
    op.drop_table("dav_collections")
