"""Per-domain administrators; indexes for the admin panel's delivery log.

Revision ID: 0015
Revises: 0014 (0009 in the task; chained after admin-dash's 0014, merged here, so one head)
Create Date: 2026-12-05 00:00:00

``domain_admins`` names the users who may manage one domain's users and aliases in the admin
panel.  The delivery log gets an (attempted_at, id) index, the keyset its pages walk, and a
recipient index for the address search.
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0015"
down_revision: Union[str, Sequence[str], None] = "0014"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create domain_admins and the two delivery_log indexes."""
    op.create_table(
        "domain_admins",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_domain_admins_user_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["domain_id"], ["domains.id"],
                                name=op.f("fk_domain_admins_domain_id_domains"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "domain_id", name=op.f("pk_domain_admins")),
    )
    op.create_index(op.f("ix_domain_admins_domain_id"), "domain_admins", ["domain_id"])
    op.create_index(op.f("ix_delivery_log_attempted_at_id"), "delivery_log",
                    ["attempted_at", "id"])
    op.create_index(op.f("ix_delivery_log_recipient"), "delivery_log", ["recipient"])


def downgrade() -> None:
    """Drop them: the per-domain administrators are lost (their user accounts stay)."""
    op.drop_index(op.f("ix_delivery_log_recipient"), table_name="delivery_log")
    op.drop_index(op.f("ix_delivery_log_attempted_at_id"), table_name="delivery_log")
    op.drop_index(op.f("ix_domain_admins_domain_id"), table_name="domain_admins")
    op.drop_table("domain_admins")
