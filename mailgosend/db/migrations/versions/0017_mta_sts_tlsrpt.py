"""MTA-STS policy cache and TLS-RPT counters (RFC 8461, RFC 8460).

Revision ID: 0017
Revises: 0009
Create Date: 2026-12-05 00:00:00

``mta_sts_policies`` caches recipient domains' MTA-STS policies for their max_age;
``tls_results`` counts outbound TLS outcomes per policy domain and day for the daily report.
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision: str = "0017"
# 0009 on branch autoconf; chained after 0015 on branch admin-ops so there is one head.
down_revision: Union[str, Sequence[str], None] = "0015"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create the policy cache and the TLS result counters."""
    op.create_table(
        "mta_sts_policies",
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("policy_id", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("max_age", sa.Integer(), nullable=False),
        sa.Column("mx", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_mta_sts_policies")),
    )
    op.create_table(
        "tls_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("policy_type", sa.String(16), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("mx_host", sa.String(253), nullable=False),
        sa.Column("result_type", sa.String(40), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tls_results")),
        sa.UniqueConstraint("day", "domain", "policy_type", "mx_host", "result_type",
                            name=op.f("uq_tls_results_day_domain_policy_type_mx_host_"
                                      "result_type")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_tls_results_day", "tls_results", ["day"])


def downgrade() -> None:
    """Drop both tables (cached policies are fetched again; unreported counts are lost)."""
    op.drop_index("ix_tls_results_day", table_name="tls_results")
    op.drop_table("tls_results")
    op.drop_table("mta_sts_policies")
