"""Web sessions: which port a session belongs to, and the sign-in step it still owes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 00:00:00

Admin sessions are separate from webmail sessions (a cookie from the web port never opens the
admin port), so each row says its ``kind``.  A sign-in that has passed the password but still
owes a second step (TOTP, a passkey) is a session with ``pending_step`` set: it authorises
nothing but that step.  Sessions are listed per user, hence the index on ``user_id``.
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add sessions.kind and sessions.pending_step; index sessions.user_id."""
    # Sessions from before this revision were never served (no web listener existed).
    op.execute(sa.text("DELETE FROM sessions"))
    op.add_column("sessions", sa.Column("kind", sa.String(length=8), nullable=False,
                                        server_default=sa.text("'web'")))
    op.add_column("sessions", sa.Column("pending_step", sa.String(length=16), nullable=True))
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sessions_user_id"), table_name="sessions")
    op.drop_column("sessions", "pending_step")
    op.drop_column("sessions", "kind")
