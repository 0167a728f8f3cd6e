"""Outbound delivery: dkim_keys, greylist, queue.delay_warned, queue_recipients.last_mx.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 00:00:00

New tables plus one column with a constant default, which SQLite adds in place (no batch
rebuild of the queue table, so a large queue migrates instantly).
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create the DKIM key and greylist tables; add the delay-warning flag to the queue."""
    op.create_table(
        "dkim_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("selector", sa.String(63), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("private_key", sa.LargeBinary(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["domain_id"], ["domains.id"],
                                name=op.f("fk_dkim_keys_domain_id_domains"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dkim_keys")),
        sa.UniqueConstraint("domain_id", "selector", name=op.f("uq_dkim_keys_domain_id_selector")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "greylist",
        sa.Column("triplet", sa.LargeBinary(32), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("passed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("triplet", name=op.f("pk_greylist")),
    )
    op.create_index(op.f("ix_greylist_last_seen"), "greylist", ["last_seen"], unique=False)
    op.add_column("queue", sa.Column("delay_warned", sa.Boolean(), server_default=sa.false(),
                                     nullable=False))
    op.add_column("queue_recipients", sa.Column("last_mx", sa.String(255), nullable=True))


def downgrade() -> None:
    """Drop what upgrade added: DKIM keys and greylist state are lost."""
    with op.batch_alter_table("queue_recipients") as batch:
        batch.drop_column("last_mx")
    with op.batch_alter_table("queue") as batch:
        batch.drop_column("delay_warned")
    op.drop_index(op.f("ix_greylist_last_seen"), table_name="greylist")
    op.drop_table("greylist")
    op.drop_table("dkim_keys")
