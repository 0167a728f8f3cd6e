"""The database schema (SQLAlchemy Core), the single source the migrations are checked against.

Conventions:

- Every timestamp is ``UTCDateTime`` and has no server default: times come from the caller's
  injected clock (STYLE.md), so tests control them and SQLite/PostgreSQL agree on the format.
- Surrogate keys that can grow large are ``BIGINT`` on PostgreSQL and ``INTEGER`` on SQLite, because
  only ``INTEGER PRIMARY KEY`` is a rowid alias that autoincrements there.  Tables with integer keys
  also set ``sqlite_autoincrement`` so SQLite never hands out an id again after the highest row is
  deleted (PostgreSQL sequences never do); ``delivery_log.queue_id`` relies on that.
- Constraint and index names are fixed by ``NAMING_CONVENTION`` so that Alembic batch migrations on
  SQLite, which rebuild tables, can refer to them by name.
- Encrypted columns (``LargeBinary``) hold crypto.py envelopes (DESIGN §4); only what the server
  must route and index is plain.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)

from mailgosend.db.types import UTCDateTime

__all__ = [
    "NAMING_CONVENTION",
    "metadata",
    "meta",
    "domains",
    "users",
    "aliases",
    "sessions",
    "mailboxes",
    "messages",
    "blobs",
    "queue",
    "queue_recipients",
    "delivery_log",
    "ip_bans",
    "account_bans",
    "login_attempts",
    "security_events",
    "bayes_tokens",
    "bayes_totals",
    "bayes_seen",
    "dkim_keys",
    "greylist",
    "messages_live",
    "messages_counts",
    "recovery_codes",
    "app_passwords",
    "passkeys",
    "passkey_challenges",
    "jmap_identities",
    "jmap_submissions",
    "vacation_responses",
    "vacation_replies",
    "mail_state",
    "thread_refs",
    "mailbox_tombstones",
    "email_tombstones",
    "search_docs",
    "search_tokens",
    "uploads",
    "remote_content_senders",
    "snoozes",
    "domain_admins",
    "audit_log",
    "counter_buckets",
    "dav_collections",
    "dav_objects",
    "dav_tombstones",
]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# BIGINT on PostgreSQL, INTEGER (the rowid alias, so it autoincrements) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _created_at() -> Column[datetime]:
    """``created_at`` is on nearly every table; one definition keeps it identical everywhere."""
    return Column("created_at", UTCDateTime(), nullable=False)


meta = Table(
    "meta",
    metadata,
    # Server facts such as the id of the encryption key the database was created with.
    Column("key", String(64), primary_key=True),
    Column("value", Text(), nullable=False),
)

domains = Table(
    "domains",
    metadata,
    Column("id", Integer(), primary_key=True),
    # Lower-case ASCII; IDNs are stored as A-labels so lookups never need normalising.
    Column("name", String(253), nullable=False, unique=True),
    Column("enabled", Boolean(), nullable=False, server_default=true()),
    _created_at(),
    sqlite_autoincrement=True,
)

users = Table(
    "users",
    metadata,
    Column("id", Integer(), primary_key=True),
    # Random hex, never reused: the owner id in per-user key derivation (DESIGN §4), so a
    # re-created account can never read an old account's data.
    Column("uuid", String(32), nullable=False, unique=True),
    Column(
        "domain_id", Integer(), ForeignKey("domains.id", ondelete="RESTRICT"), nullable=False
    ),
    Column("local_part", String(64), nullable=False),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("quota_bytes", BigInteger(), nullable=False, server_default=text("0")),  # 0 = unlimited
    Column("used_bytes", BigInteger(), nullable=False, server_default=text("0")),
    Column("enabled", Boolean(), nullable=False, server_default=true()),
    Column("is_admin", Boolean(), nullable=False, server_default=false()),
    # TOTP (RFC 6238, auth/totp.py): the sealed secret (purpose "totp"), set at enrolment;
    # MFA is on once totp_enabled_at is set; totp_last_step is the last time step accepted,
    # so a code is accepted once (migration 0007).
    Column("totp_secret", LargeBinary(), nullable=True),  # encrypted
    Column("totp_enabled_at", UTCDateTime(), nullable=True),
    Column("totp_last_step", BigInteger(), nullable=True),
    Column("locked_until", UTCDateTime(), nullable=True),
    Column("password_changed_at", UTCDateTime(), nullable=False),
    # The name shown with the address (account settings page; migration 0008); NULL: none.
    Column("display_name", String(100), nullable=True),
    _created_at(),
    sqlite_autoincrement=True,
)

aliases = Table(
    "aliases",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("domain_id", Integer(), ForeignKey("domains.id", ondelete="CASCADE"), nullable=False),
    # "local@domain", or "@domain" for a per-domain catch-all.
    Column("source", String(320), nullable=False, index=True),
    Column("destination", String(320), nullable=False),  # one address, local or remote
    Column("enabled", Boolean(), nullable=False, server_default=true()),
    _created_at(),
    UniqueConstraint("source", "destination"),
    sqlite_autoincrement=True,
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer(), primary_key=True),
    # Only a hash of the cookie token is stored, so a database leak does not leak sessions.
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("csrf_secret", LargeBinary(32), nullable=False),
    _created_at(),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False, index=True),
    Column("ip", String(45), nullable=True),
    Column("user_agent", String(300), nullable=True),
    Column("mfa_passed", Boolean(), nullable=False, server_default=false()),
    # "web" or "admin": a session opens only the port it was made on.
    Column("kind", String(8), nullable=False, server_default=text("'web'")),
    # The sign-in step still owed (e.g. "totp"); NULL once the sign-in is complete.
    Column("pending_step", String(16), nullable=True),
    sqlite_autoincrement=True,
)

mailboxes = Table(
    "mailboxes",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(512), nullable=False),  # UTF-8, '/' as hierarchy delimiter
    # RFC 6154: \Sent, \Drafts, \Trash, \Junk, \Archive or NULL (INBOX has none).
    Column("special_use", String(16), nullable=True),
    Column("uidvalidity", BigInteger(), nullable=False),
    Column("uidnext", BigInteger(), nullable=False, server_default=text("1")),
    Column("highestmodseq", BigInteger(), nullable=False, server_default=text("1")),
    _created_at(),
    # RFC 3501 §2.3.2: the highest UID a session has already been shown as \Recent; the
    # messages above it are \Recent to the next session that selects the mailbox.
    Column("recent_floor", BigInteger(), nullable=False, server_default=text("0")),
    # JMAP state (migration 0010; store/mailstate.py): the user's change counter when the
    # mailbox was created and when its own properties (name, parent, subscription, sort
    # order) last changed; HIGHESTMODSEQ is the counter at its messages' last change.
    Column("created_modseq", BigInteger(), nullable=False, server_default=text("0")),
    Column("changed_modseq", BigInteger(), nullable=False, server_default=text("0")),
    Column("sort_order", Integer(), nullable=False, server_default=text("0")),  # RFC 8621 §2
    UniqueConstraint("user_id", "name"),
    sqlite_autoincrement=True,
)

# RFC 3501 §6.3.6: a subscription is a name, not a mailbox: CREATE does not add one, DELETE
# keeps it, and a name may be subscribed whether or not such a mailbox exists.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(512), nullable=False),  # as mailboxes.name
    PrimaryKeyConstraint("user_id", "name"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigId, primary_key=True),
    Column(
        "mailbox_id", Integer(), ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False
    ),
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("uid", BigInteger(), nullable=False),
    Column("modseq", BigInteger(), nullable=False),
    Column("flags", Text(), nullable=False, server_default=text("''")),  # space-separated
    Column("internal_date", UTCDateTime(), nullable=False),
    Column("size", BigInteger(), nullable=False),
    Column("blob_id", String(64), nullable=False, index=True),  # the blob purge looks it up
    Column("meta", LargeBinary(), nullable=True),  # encrypted envelope/bodystructure/snippet
    Column("deleted_at", UTCDateTime(), nullable=True),  # expunge is a soft delete (DESIGN §3)
    _created_at(),
    # JMAP (migration 0010): the Email id (the row id of the row that first stored it; MOVE
    # keeps it, COPY makes a new one), its Thread (RFC 8621 §3, store/threads.py) and the
    # change counter when the Email was created (kept by MOVE), so /changes tells created
    # from updated.  Set in the transaction that inserts the row (NULL only inside it).
    Column("email_id", BigInteger(), nullable=True),
    Column("thread_id", BigInteger(), nullable=True),
    Column("created_modseq", BigInteger(), nullable=False, server_default=text("0")),
    UniqueConstraint("mailbox_id", "uid"),
    Index("ix_messages_mailbox_id_modseq", "mailbox_id", "modseq"),
    Index("ix_messages_user_id_email_id", "user_id", "email_id"),
    Index("ix_messages_user_id_thread_id", "user_id", "thread_id"),
    Index("ix_messages_user_id_modseq", "user_id", "modseq"),
    sqlite_autoincrement=True,
)

blobs = Table(
    "blobs",
    metadata,
    # The STORAGE_BACKEND=db blob store; the id is chosen by the blob layer.
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("size", BigInteger(), nullable=False),
    _created_at(),
    # Last column on purpose: SQLite can then fill it with incremental blob I/O without
    # materialising the whole value in memory (measured +3 MB instead of +100 MB at 50 MB).
    Column("data", LargeBinary(), nullable=False),
)

queue = Table(
    "queue",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("sender", String(320), nullable=False),  # '' is the null reverse-path <>
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("blob_id", String(64), nullable=False, index=True),
    Column("size", BigInteger(), nullable=False),
    Column("envid", String(100), nullable=True),  # RFC 3461 ENVID
    Column("ret", String(8), nullable=True),  # RFC 3461 RET=FULL|HDRS
    Column("smtputf8", Boolean(), nullable=False, server_default=false()),
    Column("body_8bit", Boolean(), nullable=False, server_default=false()),
    Column("delay_warned", Boolean(), nullable=False, server_default=false()),
    # RFC 4865 FUTURERELEASE / JMAP send later: not sent before this (None: at once)
    Column("release_at", UTCDateTime(), nullable=True),
    _created_at(),
    sqlite_autoincrement=True,
)

queue_recipients = Table(
    "queue_recipients",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("queue_id", BigInteger(), ForeignKey("queue.id", ondelete="CASCADE"), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("domain", String(253), nullable=False),
    # queued | delivering | held (by an administrator) | delivered | failed | expired
    Column("status", String(16), nullable=False, server_default=text("'queued'")),
    Column("attempts", Integer(), nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("claimed_by", String(64), nullable=True),  # node id holding the claim (DESIGN §9)
    Column("claimed_at", UTCDateTime(), nullable=True),
    Column("last_code", Integer(), nullable=True),
    Column("last_text", Text(), nullable=True),
    Column("notify", String(40), nullable=True),  # RFC 3461 NOTIFY
    Column("orcpt", String(500), nullable=True),  # RFC 3461 ORCPT
    # The MX host of the last temporary failure: the next attempt starts after it.
    Column("last_mx", String(255), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    _created_at(),
    Index("ix_queue_recipients_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_queue_recipients_queue_id", "queue_id"),
    sqlite_autoincrement=True,
)

delivery_log = Table(
    "delivery_log",
    metadata,
    Column("id", BigId, primary_key=True),
    # No foreign key: the log outlives the queue row it describes.
    Column("queue_id", BigInteger(), nullable=True, index=True),
    Column("recipient", String(320), nullable=True),
    Column("attempted_at", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=True),
    Column("code", Integer(), nullable=True),
    Column("text", Text(), nullable=True),
    Column("mx_host", String(255), nullable=True),
    Column("tls_version", String(32), nullable=True),
    # The admin panel's delivery log pages newest first by (attempted_at, id) keyset
    # (migration 0015): a page is an index range scan, whatever the log's size.
    Index("ix_delivery_log_attempted_at_id", "attempted_at", "id"),
    Index("ix_delivery_log_recipient", "recipient"),
    sqlite_autoincrement=True,
)

ip_bans = Table(
    "ip_bans",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("ip", String(45), nullable=False, index=True),
    Column("reason", String(200), nullable=False),
    _created_at(),
    Column("expires_at", UTCDateTime(), nullable=False, index=True),
    sqlite_autoincrement=True,
)

account_bans = Table(
    "account_bans",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("username", String(320), nullable=False, index=True),
    Column("reason", String(200), nullable=False),
    _created_at(),
    Column("expires_at", UTCDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

login_attempts = Table(
    "login_attempts",
    metadata,
    # Deliberately no password column, not even a hash: attempts are evidence, not secrets.
    Column("id", BigId, primary_key=True),
    Column("ip", String(45), nullable=False),
    Column("username", String(320), nullable=False),
    Column("service", String(16), nullable=False),
    Column("success", Boolean(), nullable=False),
    _created_at(),
    Index("ix_login_attempts_ip_created_at", "ip", "created_at"),
    Index("ix_login_attempts_username_created_at", "username", "created_at"),
    sqlite_autoincrement=True,
)

security_events = Table(
    "security_events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("ip", String(45), nullable=True),
    Column("username", String(320), nullable=True),
    Column("service", String(16), nullable=True),
    Column("detail", Text(), nullable=False, server_default=text("''")),
    _created_at(),
    Index("ix_security_events_created_at", "created_at"),
    sqlite_autoincrement=True,
)

# --- per-user Bayesian classifier (spam/bayes.py, store/bayes.py) ---------------------------
# Tokens are HMAC-SHA256(per-user key, token)[:8], never words: the statistics reveal neither
# what a user reads nor, across users, who received the same text.

bayes_tokens = Table(
    "bayes_tokens",
    metadata,
    Column(
        "user_id",
        Integer(),
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("token", LargeBinary(8), primary_key=True),
    # Messages (not occurrences) of each class that contained the token.
    Column("ham_count", Integer(), nullable=False),
    Column("spam_count", Integer(), nullable=False),
)

bayes_totals = Table(
    "bayes_totals",
    metadata,
    # Also the per-user lock of training: every training transaction updates this row before
    # any token, so concurrent trainings of one user serialise here instead of deadlocking.
    Column(
        "user_id",
        Integer(),
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("ham_messages", Integer(), nullable=False),
    Column("spam_messages", Integer(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

bayes_seen = Table(
    "bayes_seen",
    metadata,
    # Which messages were learned and as what, so moving a message into Junk twice counts once
    # and moving it back out retrains it instead of counting it as both (SpamAssassin's
    # bayes_seen).  The digest is an HMAC under the same per-user key as the tokens.
    Column(
        "user_id",
        Integer(),
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("digest", LargeBinary(16), primary_key=True),
    Column("is_spam", Boolean(), nullable=False),
    Column("learned_at", UTCDateTime(), nullable=False),
)

# --- outbound: DKIM signing keys, greylisting (migration 0003) ------------------------------

dkim_keys = Table(
    "dkim_keys",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("domain_id", Integer(), ForeignKey("domains.id", ondelete="CASCADE"), nullable=False),
    Column("selector", String(63), nullable=False),
    Column("algorithm", String(16), nullable=False),  # rsa-sha256 | ed25519-sha256
    # crypto.py envelope of the PEM private key (owner: the "dkim" purpose of the master key).
    Column("private_key", LargeBinary(), nullable=False),
    Column("public_key", Text(), nullable=False),  # base64 for the p= tag; public by definition
    Column("active", Boolean(), nullable=False, server_default=true()),
    _created_at(),
    UniqueConstraint("domain_id", "selector"),
    sqlite_autoincrement=True,
)

greylist = Table(
    "greylist",
    metadata,
    # RFC 6647 §4.2 triplet, stored as a keyed hash: the table never reveals who wrote to whom.
    Column("triplet", LargeBinary(32), primary_key=True),
    Column("first_seen", UTCDateTime(), nullable=False),
    Column("last_seen", UTCDateTime(), nullable=False, index=True),
    Column("passed", Boolean(), nullable=False, server_default=false()),
)

# --- IMAP: live messages per mailbox (migration 0004) ----------------------------------------

# Counting a mailbox's live messages (NOOP, snapshot refresh) and listing their UIDs read only
# this index, never the wide rows (imap/snapshot.py).
messages_live = Index(
    "ix_messages_live",
    messages.c.mailbox_id,
    messages.c.uid,
    sqlite_where=messages.c.deleted_at.is_(None),
    postgresql_where=messages.c.deleted_at.is_(None),
)

# JMAP Mailbox counts (store/emails.py mailbox_tallies) read only this index, never the wide
# rows: per mailbox its live messages' threads and flags (migration 0010).
messages_counts = Index(
    "ix_messages_counts",
    messages.c.user_id,
    messages.c.mailbox_id,
    messages.c.thread_id,
    messages.c.flags,
    sqlite_where=messages.c.deleted_at.is_(None),
    postgresql_where=messages.c.deleted_at.is_(None),
)

# --- second factor and app passwords (migration 0007) ----------------------------------------

recovery_codes = Table(
    "recovery_codes",
    metadata,
    # HMAC-SHA256 of the normalised code under a per-user key (purpose "recovery"): a database
    # leak alone does not let anyone test guesses offline.  A used code is deleted.
    Column(
        "user_id",
        Integer(),
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("code_hash", LargeBinary(32), primary_key=True),
    _created_at(),
)

app_passwords = Table(
    "app_passwords",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    # The first characters of the password, shown in lists and used to find the one row to
    # check with bcrypt, so a login costs one bcrypt however many app passwords a user has.
    Column("prefix", String(8), nullable=False),
    Column("password_hash", String(255), nullable=False),  # bcrypt
    Column("protocols", String(64), nullable=False),  # comma-separated: imap,pop3,submission,dav
    _created_at(),
    Column("last_used_at", UTCDateTime(), nullable=True),
    Column("last_ip", String(45), nullable=True),
    UniqueConstraint("user_id", "name"),
    sqlite_autoincrement=True,
)

# --- passkeys / security keys, WebAuthn (migration 0009) --------------------------------------

passkeys = Table(
    "passkeys",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("name", String(64), nullable=False),
    # The credential id and COSE public key the authenticator gave at registration; public
    # by nature (WebAuthn §6.5), so stored plain.
    Column("credential_id", LargeBinary(1023), nullable=False, unique=True),
    Column("public_key", LargeBinary(), nullable=False),
    Column("sign_count", BigInteger(), nullable=False),
    Column("transports", String(64), nullable=False),  # comma-separated hints for the browser
    Column("rp_id", String(253), nullable=False),
    _created_at(),
    Column("last_used_at", UTCDateTime(), nullable=True),
    UniqueConstraint("user_id", "name"),
    sqlite_autoincrement=True,
)

passkey_challenges = Table(
    "passkey_challenges",
    metadata,
    # One WebAuthn challenge handed to one session's browser; deleted when used (single use).
    Column("challenge", LargeBinary(32), primary_key=True),
    Column("session_id", Integer(), ForeignKey("sessions.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", String(8), nullable=False),  # "register" or "login"
    Column("rp_id", String(253), nullable=False),
    Column("origin", String(300), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

jmap_identities = Table(
    "jmap_identities",
    metadata,
    # A JMAP Identity (RFC 8621 §6): an address the user sends as, with name, reply-to, bcc
    # and signatures sealed with the user's key; rows are kept destroyed (tombstones) so
    # Identity/changes can report the destruction.  modseq orders changes per user.
    Column("id", BigId, primary_key=True),
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("sealed", LargeBinary(), nullable=False),
    Column("created_modseq", BigInteger(), nullable=False),
    Column("modseq", BigInteger(), nullable=False),
    Column("destroyed", Boolean(), nullable=False, server_default=false()),
    _created_at(),
    Index("ix_jmap_identities_user_id_modseq", "user_id", "modseq"),
    sqlite_autoincrement=True,
)

jmap_submissions = Table(
    "jmap_submissions",
    metadata,
    # A JMAP EmailSubmission (RFC 8621 §7).  The envelope is sealed; send_at and undo_status
    # stay plain so held submissions can be released (pending -> final) or canceled.
    Column("id", BigId, primary_key=True),
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("identity_id", BigInteger(), nullable=False),
    Column("email_id", BigInteger(), nullable=False),
    Column("thread_id", BigInteger(), nullable=False),
    Column("sealed", LargeBinary(), nullable=False),
    Column("send_at", UTCDateTime(), nullable=False),
    Column("undo_status", String(8), nullable=False),  # pending | final | canceled
    Column("queue_id", BigInteger(), nullable=True),
    Column("created_modseq", BigInteger(), nullable=False),
    Column("modseq", BigInteger(), nullable=False),
    Column("destroyed", Boolean(), nullable=False, server_default=false()),
    _created_at(),
    Index("ix_jmap_submissions_user_id_modseq", "user_id", "modseq"),
    Index("ix_jmap_submissions_undo_status_send_at", "undo_status", "send_at"),
    sqlite_autoincrement=True,
)

vacation_responses = Table(
    "vacation_responses",
    metadata,
    # The VacationResponse singleton (RFC 8621 §8); subject and bodies sealed.  is_enabled
    # and the dates are plain: local delivery decides without decrypting.
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("is_enabled", Boolean(), nullable=False),
    Column("from_date", UTCDateTime(), nullable=True),
    Column("to_date", UTCDateTime(), nullable=True),
    Column("sealed", LargeBinary(), nullable=False),
    Column("modseq", BigInteger(), nullable=False),
)

vacation_replies = Table(
    "vacation_replies",
    metadata,
    # Who got an automatic reply when (RFC 3834 §2: at most one per sender per period), by
    # a keyed hash of the sender's address: no plaintext correspondents stored.
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("sender_hash", String(64), nullable=False),
    Column("replied_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("user_id", "sender_hash"),
)

# --- JMAP state: the per-user change counter, threads, tombstones (migration 0010) -----------

mail_state = Table(
    "mail_state",
    metadata,
    # One change counter per user (store/mailstate.py): every mail change takes the next
    # value (MODSEQ of messages, HIGHESTMODSEQ of mailboxes, mailbox changes), so one number
    # is the JMAP state of the whole account.  The row lock orders a user's changes: values
    # commit in the order they are handed out.  ``pruned_modseq``: history up to this value
    # was purged (maintenance), so /changes from an older state cannot be calculated.
    Column(
        "user_id",
        Integer(),
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("modseq", BigInteger(), nullable=False),
    Column("pruned_modseq", BigInteger(), nullable=False, server_default=text("0")),
)

thread_refs = Table(
    "thread_refs",
    metadata,
    # RFC 8621 §3 threading without plaintext: HMAC(per-user key "message-id", Message-ID +
    # base subject)[:16] of every id a message names (Message-ID, In-Reply-To, References)
    # -> the thread it was filed in (store/threads.py).
    Column(
        "user_id",
        Integer(),
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("ref_hash", LargeBinary(16), primary_key=True),
    Column("thread_id", BigInteger(), nullable=False),
)

mailbox_tombstones = Table(
    "mailbox_tombstones",
    metadata,
    # A deleted mailbox, so Mailbox/changes still reports it destroyed; purged with the
    # expunged rows (maintenance), which raises mail_state.pruned_modseq.
    Column("mailbox_id", Integer(), primary_key=True, autoincrement=False),
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_modseq", BigInteger(), nullable=False),
    Column("modseq", BigInteger(), nullable=False),
    Column("deleted_at", UTCDateTime(), nullable=False),
    Index("ix_mailbox_tombstones_user_id_modseq", "user_id", "modseq"),
)

email_tombstones = Table(
    "email_tombstones",
    metadata,
    # Message rows removed with their mailbox (DELETE, Mailbox/set destroy): Email/changes
    # and Thread/changes still see them go.  ``modseq``: when the row stopped being live.
    Column("id", BigId, primary_key=True),
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("email_id", BigInteger(), nullable=False),
    Column("thread_id", BigInteger(), nullable=False),
    Column("mailbox_id", Integer(), nullable=False),  # no FK: the mailbox is gone
    Column("created_modseq", BigInteger(), nullable=False),
    Column("modseq", BigInteger(), nullable=False),
    Column("deleted_at", UTCDateTime(), nullable=False),
    Index("ix_email_tombstones_user_id_modseq", "user_id", "modseq"),
    Index("ix_email_tombstones_user_id_thread_id", "user_id", "thread_id"),
    sqlite_autoincrement=True,
)

# --- the search index: keyed hashes of words, never words (migration 0011) --------------------
# mail/searchtext.py: a token is HMAC-SHA256(per-user key "search", field tag + word prefix)
# cut to a few bytes; results are always confirmed on the decrypted text (mail/query.py), so a
# collision costs time, never a wrong answer.  Copies and moves share a blob, hence one
# document per (user, blob): a MOVE re-indexes nothing.

search_docs = Table(
    "search_docs",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # The message blob indexed; the row is removed (tokens with it) once no message uses it.
    Column("blob_id", String(64), nullable=False),
    UniqueConstraint("user_id", "blob_id"),
    sqlite_autoincrement=True,
)

search_tokens = Table(
    "search_tokens",
    metadata,
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token", LargeBinary(8), nullable=False),
    Column("doc_id", BigInteger(), ForeignKey("search_docs.id", ondelete="CASCADE"),
           nullable=False),
    PrimaryKeyConstraint("user_id", "token", "doc_id"),
    Index("ix_search_tokens_doc_id", "doc_id"),
)

# --- JMAP uploads (migration 0013) -------------------------------------------------------------

uploads = Table(
    "uploads",
    metadata,
    # A blob uploaded to the JMAP endpoint (RFC 8620 §6.1), sealed in the blob store like a
    # message; kept until ``expires_at`` (24 h), then purged with its blob unless a message
    # made from it (Email/import, an attachment) references the blob by then.
    Column("id", Integer(), primary_key=True),
    Column("token", String(64), nullable=False, unique=True),  # the blob id is "U" + token
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("blob_id", String(64), nullable=False, index=True),
    Column("media_type", String(255), nullable=False),  # as the client declared it
    Column("size", BigInteger(), nullable=False),
    _created_at(),
    Column("expires_at", UTCDateTime(), nullable=False, index=True),
    sqlite_autoincrement=True,
)

# --- MTA-STS and TLS-RPT (migration 0017) -----------------------------------------------------

# --- per-domain administrators (migration 0015) ----------------------------------------------

domain_admins = Table(
    "domain_admins",
    metadata,
    # A user who may manage the users and aliases of one domain in the admin panel (and
    # nothing else there); a full administrator is users.is_admin.
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("domain_id", Integer(), ForeignKey("domains.id", ondelete="CASCADE"),
           nullable=False, index=True),
    _created_at(),
    PrimaryKeyConstraint("user_id", "domain_id"),
)

# --- the admin panel (web/admin_*.py): who did what, and the dashboard's counters ------------

audit_log = Table(
    "audit_log",
    metadata,
    # One administrative action (recorded by the admin panel): kept as text, so deleting the acting or the
    # target account keeps its history readable.  ``detail`` never holds a secret.
    Column("id", BigId, primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(320), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(512), nullable=False),
    Column("detail", Text(), nullable=False, server_default=text("''")),
    Column("ip", String(45), nullable=False, server_default=text("''")),
    # The mail domain concerned, when there is one: what a domain administrator may see.
    Column("domain", String(253), nullable=True),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_domain_at", "domain", "at"),
    sqlite_autoincrement=True,
)

counter_buckets = Table(
    "counter_buckets",
    metadata,
    # Server counters (counters.py) rolled into hourly buckets: one row per hour, counter,
    # label and node, so each node only ever updates its own rows (no write races across
    # nodes on PostgreSQL) and the dashboard sums over nodes.
    Column("hour", UTCDateTime(), nullable=False),
    Column("name", String(48), nullable=False),
    Column("label", String(255), nullable=False),
    Column("node", String(64), nullable=False),
    Column("value", BigInteger(), nullable=False),
    PrimaryKeyConstraint("hour", "name", "label", "node"),
    Index("ix_counter_buckets_name_hour", "name", "hour"),
)

mta_sts_policies = Table(
    "mta_sts_policies",
    metadata,
    # Recipient domains' MTA-STS policies (RFC 8461 §5.1 cache), fetched by delivery/mtasts.py.
    # Public data, stored plain.
    Column("domain", String(253), primary_key=True),
    Column("policy_id", String(32), nullable=False),     # the id of the _mta-sts TXT record
    Column("mode", String(8), nullable=False),           # enforce | testing | none
    Column("max_age", Integer(), nullable=False),
    Column("mx", Text(), nullable=False),                # mx patterns, one per line
    Column("fetched_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),  # fetched_at + max_age
)

tls_results = Table(
    "tls_results",
    metadata,
    # Outbound TLS outcomes per policy domain and UTC day, the counters of the daily
    # TLS-RPT report (RFC 8460 §4.4); deleted once the day has been reported.
    Column("id", Integer(), primary_key=True),
    Column("day", String(10), nullable=False),           # YYYY-MM-DD (UTC)
    Column("domain", String(253), nullable=False),       # the policy domain
    Column("policy_type", String(16), nullable=False),   # sts | no-policy-found
    Column("policy", Text(), nullable=False),            # the policy text lines, "\n"-joined
    Column("mx_host", String(253), nullable=False),      # receiving MX ("" when none)
    Column("result_type", String(40), nullable=False),   # "success" or an RFC 8460 §4.3 type
    Column("count", Integer(), nullable=False),
    UniqueConstraint("day", "domain", "policy_type", "mx_host", "result_type"),
    Index("ix_tls_results_day", "day"),
    sqlite_autoincrement=True,
)

# --- webmail: senders whose remote content is always shown (migration 0018) ------------------

remote_content_senders = Table(
    "remote_content_senders",
    metadata,
    # A sender's address as HMAC-SHA256 under a key derived for its user (crypto.py derive,
    # purpose "remote-senders"): the table never holds a plaintext address, and the same
    # address gives unrelated values for two users.
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("sender_hash", LargeBinary(32), nullable=False),
    _created_at(),
    PrimaryKeyConstraint("user_id", "sender_hash"),
)

# Snooze (issue 13, migration 0023): an Email (messages.email_id, kept by MOVE) waiting in
# the user's \Snoozed mailbox until ``wake_at``, then moved back to ``return_mailbox_id``
# (INBOX when that mailbox is gone).  The row is the claim: whoever deletes it moves the
# message (mail/snooze.py), so two nodes never both do.
snoozes = Table(
    "snoozes",
    metadata,
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("email_id", BigInteger(), nullable=False),
    Column("wake_at", UTCDateTime(), nullable=False, index=True),
    Column("return_mailbox_id", Integer(), nullable=True),
    _created_at(),
    PrimaryKeyConstraint("user_id", "email_id"),
)

# CalDAV/CardDAV (issue #15, migration 0018).  Collections and objects of one user; the
# iCalendar/vCard text and the collection's properties (name, colour, description) are
# sealed with the user's key (purpose "dav"); plain are only what queries need: the href
# name, UID, ETag, size, the time span for time-range filters, and the sync counters.
dav_collections = Table(
    "dav_collections",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(12), nullable=False),           # calendar | addressbook
    Column("name", String(100), nullable=False),          # the URL path segment
    Column("components", String(64), nullable=False),     # "VEVENT,VTODO" ("" for books)
    Column("props", LargeBinary(), nullable=False),       # encrypted JSON: displayname, ...
    # RFC 6578: the collection's change counter (the sync token) and the oldest token still
    # answered (tombstones older than it were pruned).
    Column("modseq", BigInteger(), nullable=False, server_default=text("1")),
    Column("sync_floor", BigInteger(), nullable=False, server_default=text("0")),
    _created_at(),
    UniqueConstraint("user_id", "kind", "name"),
    sqlite_autoincrement=True,
)

dav_objects = Table(
    "dav_objects",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("collection_id", Integer(), ForeignKey("dav_collections.id", ondelete="CASCADE"),
           nullable=False),
    Column("user_id", Integer(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),          # the href's last segment
    Column("uid", String(255), nullable=False),
    Column("etag", String(40), nullable=False),           # random per write, no content hash
    Column("component", String(16), nullable=False),      # VEVENT, VTODO, VJOURNAL, VCARD
    Column("size", BigInteger(), nullable=False),         # plaintext octets (the quota's)
    # The span the object occupies, UTC; NULL = unbounded (recurring without end, todos).
    Column("starts_at", UTCDateTime(), nullable=True),
    Column("ends_at", UTCDateTime(), nullable=True),
    Column("modseq", BigInteger(), nullable=False),
    _created_at(),
    Column("data", LargeBinary(), nullable=False),        # encrypted iCalendar / vCard
    UniqueConstraint("collection_id", "name"),
    UniqueConstraint("collection_id", "uid"),
    Index("ix_dav_objects_collection_id_modseq", "collection_id", "modseq"),
    sqlite_autoincrement=True,
)

dav_tombstones = Table(
    "dav_tombstones",
    metadata,
    # RFC 6578 §3.5: members removed since a sync token, kept until pruned (sync_floor).
    Column("collection_id", Integer(), ForeignKey("dav_collections.id", ondelete="CASCADE"),
           nullable=False),
    Column("name", String(255), nullable=False),
    Column("modseq", BigInteger(), nullable=False),
    PrimaryKeyConstraint("collection_id", "name"),
    Index("ix_dav_tombstones_collection_id_modseq", "collection_id", "modseq"),
)
