"""The admin panel: the audit log and the dashboard's hourly counters.

Revision ID: 0014
Revises: 0009
Create Date: 2026-12-05 00:00:00

``audit_log`` records every administrative action (who, what, target, when, from where);
``counter_buckets`` holds the server's counters (messages received/sent/bounced/rejected,
delivery results, logins, connections) per hour, counter, label and node, so the dashboard
reads a few hundred rows instead of scanning the message tables, and the numbers survive
restarts and add up across nodes.
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0014"
down_revision: Union[str, Sequence[str], None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create audit_log and counter_buckets."""
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("detail", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("ip", sa.String(45), server_default=sa.text("''"), nullable=False),
        sa.Column("domain", sa.String(253), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_domain_at", "audit_log", ["domain", "at"])
    op.create_table(
        "counter_buckets",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(48), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "name", "label", "node", name=op.f("pk_counter_buckets")),
    )
    op.create_index("ix_counter_buckets_name_hour", "counter_buckets", ["name", "hour"])


def downgrade() -> None:
    """Drop both tables: the audit history and the dashboard's history are lost."""
    op.drop_index("ix_counter_buckets_name_hour", table_name="counter_buckets")
    op.drop_table("counter_buckets")
    op.drop_index("ix_audit_log_domain_at", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
