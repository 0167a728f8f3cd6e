"""Initial schema: accounts, mail, blobs, outbound queue, security tables.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00

Tables are written out here instead of calling metadata.create_all(): this file must keep creating
the schema as it was at revision 0001 however schema.py evolves later.  Timestamps are
``DateTime(timezone=True)``, the DDL of ``UTCDateTime``.
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_AUTOINC = {"sqlite_autoincrement": True}


def _big_id() -> sa.types.TypeEngine[int]:
    """BIGINT on PostgreSQL, INTEGER (rowid alias, so it autoincrements) on SQLite."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table of the initial schema."""
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_meta")),
    )
    op.create_table(
        "domains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_domains")),
        sa.UniqueConstraint("name", name=op.f("uq_domains_name")),
        **_AUTOINC,
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(32), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("local_part", sa.String(64), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("quota_bytes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("used_bytes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("totp_secret", sa.LargeBinary(), nullable=True),
        _ts("locked_until", nullable=True),
        _ts("password_changed_at"),
        _ts("created_at"),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
            name=op.f("fk_users_domain_id_domains"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("uuid", name=op.f("uq_users_uuid")),
        **_AUTOINC,
    )
    op.create_table(
        "aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(320), nullable=False),
        sa.Column("destination", sa.String(320), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
            name=op.f("fk_aliases_domain_id_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aliases")),
        sa.UniqueConstraint("source", "destination", name=op.f("uq_aliases_source_destination")),
        **_AUTOINC,
    )
    op.create_index(op.f("ix_aliases_source"), "aliases", ["source"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_secret", sa.LargeBinary(32), nullable=False),
        _ts("created_at"),
        _ts("last_seen_at"),
        _ts("expires_at"),
        sa.Column("ip", sa.String(45), nullable=True),
        sa.Column("user_agent", sa.String(300), nullable=True),
        sa.Column("mfa_passed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sessions_token_hash")),
        **_AUTOINC,
    )
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"])
    op.create_table(
        "mailboxes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("special_use", sa.String(16), nullable=True),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uidnext", sa.BigInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("highestmodseq", sa.BigInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("subscribed", sa.Boolean(), server_default=sa.true(), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_mailboxes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailboxes")),
        sa.UniqueConstraint("user_id", "name", name=op.f("uq_mailboxes_user_id_name")),
        **_AUTOINC,
    )
    op.create_table(
        "messages",
        sa.Column("id", _big_id(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.Column("flags", sa.Text(), server_default=sa.text("''"), nullable=False),
        _ts("internal_date"),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("blob_id", sa.String(64), nullable=False),
        sa.Column("meta", sa.LargeBinary(), nullable=True),
        _ts("deleted_at", nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_messages_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_messages_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("mailbox_id", "uid", name=op.f("uq_messages_mailbox_id_uid")),
        **_AUTOINC,
    )
    op.create_index("ix_messages_mailbox_id_modseq", "messages", ["mailbox_id", "modseq"])
    op.create_index(op.f("ix_messages_blob_id"), "messages", ["blob_id"])
    op.create_table(
        "blobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        _ts("created_at"),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_blobs_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blobs")),
    )
    op.create_table(
        "queue",
        sa.Column("id", _big_id(), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("blob_id", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("envid", sa.String(100), nullable=True),
        sa.Column("ret", sa.String(8), nullable=True),
        sa.Column("smtputf8", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("body_8bit", sa.Boolean(), server_default=sa.false(), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_queue_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue")),
        **_AUTOINC,
    )
    op.create_table(
        "queue_recipients",
        sa.Column("id", _big_id(), nullable=False),
        sa.Column("queue_id", sa.BigInteger(), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("status", sa.String(16), server_default=sa.text("'queued'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _ts("next_attempt_at"),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        _ts("claimed_at", nullable=True),
        sa.Column("last_code", sa.Integer(), nullable=True),
        sa.Column("last_text", sa.Text(), nullable=True),
        sa.Column("notify", sa.String(40), nullable=True),
        sa.Column("orcpt", sa.String(500), nullable=True),
        _ts("updated_at"),
        _ts("created_at"),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["queue.id"],
            name=op.f("fk_queue_recipients_queue_id_queue"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_recipients")),
        **_AUTOINC,
    )
    op.create_index(
        "ix_queue_recipients_status_next_attempt_at",
        "queue_recipients",
        ["status", "next_attempt_at"],
    )
    op.create_index("ix_queue_recipients_queue_id", "queue_recipients", ["queue_id"])
    op.create_index(op.f("ix_queue_blob_id"), "queue", ["blob_id"])
    op.create_table(
        "delivery_log",
        sa.Column("id", _big_id(), nullable=False),
        sa.Column("queue_id", sa.BigInteger(), nullable=True),
        sa.Column("recipient", sa.String(320), nullable=True),
        _ts("attempted_at"),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("code", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("mx_host", sa.String(255), nullable=True),
        sa.Column("tls_version", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_log")),
        **_AUTOINC,
    )
    op.create_index(op.f("ix_delivery_log_queue_id"), "delivery_log", ["queue_id"])
    op.create_table(
        "ip_bans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ip", sa.String(45), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ip_bans")),
        **_AUTOINC,
    )
    op.create_index(op.f("ix_ip_bans_ip"), "ip_bans", ["ip"])
    op.create_index(op.f("ix_ip_bans_expires_at"), "ip_bans", ["expires_at"])
    op.create_table(
        "account_bans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_bans")),
        **_AUTOINC,
    )
    op.create_index(op.f("ix_account_bans_username"), "account_bans", ["username"])
    op.create_table(
        "login_attempts",
        sa.Column("id", _big_id(), nullable=False),
        sa.Column("ip", sa.String(45), nullable=False),
        sa.Column("username", sa.String(320), nullable=False),
        sa.Column("service", sa.String(16), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
        **_AUTOINC,
    )
    op.create_index("ix_login_attempts_ip_created_at", "login_attempts", ["ip", "created_at"])
    op.create_index(
        "ix_login_attempts_username_created_at", "login_attempts", ["username", "created_at"]
    )
    op.create_table(
        "security_events",
        sa.Column("id", _big_id(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ip", sa.String(45), nullable=True),
        sa.Column("username", sa.String(320), nullable=True),
        sa.Column("service", sa.String(16), nullable=True),
        sa.Column("detail", sa.Text(), server_default=sa.text("''"), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_events")),
        **_AUTOINC,
    )
    op.create_index("ix_security_events_created_at", "security_events", ["created_at"])


def downgrade() -> None:
    """Drop every table, children before parents (indexes go with their tables)."""
    for table in (
        "security_events",
        "login_attempts",
        "account_bans",
        "ip_bans",
        "delivery_log",
        "queue_recipients",
        "queue",
        "blobs",
        "messages",
        "mailboxes",
        "sessions",
        "aliases",
        "users",
        "domains",
        "meta",
    ):
        op.drop_table(table)
