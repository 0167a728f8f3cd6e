"""The search index: keyed hashes of the words of each message (JMAP Email/query, webmail).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 00:00:00

``search_docs`` is one row per indexed message blob of a user (copies and moves share the
blob, so they share the document); ``search_tokens`` the HMAC tokens of its words under the
user's "search" key (mail/searchtext.py), never the words.  Messages stored before this
revision have no document: the query layer treats them as candidates of every text search
and a background pass indexes them (mail/query.py).
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create search_docs and search_tokens."""
    op.create_table(
        "search_docs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("blob_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_search_docs_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_docs")),
        sa.UniqueConstraint("user_id", "blob_id", name=op.f("uq_search_docs_user_id_blob_id")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "search_tokens",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.LargeBinary(8), nullable=False),
        sa.Column("doc_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_search_tokens_user_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["doc_id"], ["search_docs.id"],
                                name=op.f("fk_search_tokens_doc_id_search_docs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "token", "doc_id", name=op.f("pk_search_tokens")),
    )
    op.create_index("ix_search_tokens_doc_id", "search_tokens", ["doc_id"], unique=False)


def downgrade() -> None:
    """Drop the index tables (nothing else refers to them)."""
    op.drop_index("ix_search_tokens_doc_id", table_name="search_tokens")
    op.drop_table("search_tokens")
    op.drop_table("search_docs")
