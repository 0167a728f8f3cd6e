"""Second factor (TOTP) state, recovery codes and app passwords.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 00:00:00

``users.totp_secret`` exists since 0001; MFA is on once ``totp_enabled_at`` is set, and
``totp_last_step`` makes each code single use (RFC 6238 §5.2).  Recovery codes are keyed
hashes, app passwords bcrypt hashes scoped to protocols (auth/checker.py).  Columns are added
with plain ADD COLUMN (nullable, no rebuild of the users table on SQLite).
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add the TOTP state columns and the recovery-code and app-password tables."""
    op.add_column("users", sa.Column("totp_enabled_at", sa.DateTime(timezone=True),
                                     nullable=True))
    op.add_column("users", sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    op.create_table(
        "recovery_codes",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("code_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_recovery_codes_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "code_hash", name=op.f("pk_recovery_codes")),
    )
    op.create_table(
        "app_passwords",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(8), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("protocols", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_ip", sa.String(45), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_app_passwords_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_passwords")),
        sa.UniqueConstraint("user_id", "name", name=op.f("uq_app_passwords_user_id_name")),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    """Drop what upgrade added: app passwords, recovery codes and MFA state are lost."""
    op.drop_table("app_passwords")
    op.drop_table("recovery_codes")
    op.drop_column("users", "totp_last_step")
    op.drop_column("users", "totp_enabled_at")
