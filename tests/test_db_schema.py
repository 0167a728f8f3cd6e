"""Schema, migrations, column types and engine configuration, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from twisted.trial import unittest

from mailgosend.db import schema as s
from mailgosend.db.engine import connect_for_write, create_db_engine, postgres_url
from mailgosend.db.migrate import current_revision, head_revision, shipped_head, upgrade_to_head
from mailgosend.db.types import UTCDateTime
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NOW = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)

# Tables whose surrogate key may exceed 2**31 over the server's life.
BIG_ID_TABLES = (
    "messages",
    "queue",
    "queue_recipients",
    "delivery_log",
    "login_attempts",
    "security_events",
)


def schema_differences(engine: Engine, target: sa.MetaData) -> list[Any]:
    """What Alembic autogenerate would change to turn the database into ``target``."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, target))


def add_domain(conn: sa.Connection, name: str = "example.org") -> int:
    return conn.execute(
        sa.insert(s.domains).values(name=name, created_at=NOW).returning(s.domains.c.id)
    ).scalar_one()


def add_user(conn: sa.Connection, domain_id: int, local: str = "alice") -> int:
    return conn.execute(
        sa.insert(s.users)
        .values(
            uuid=f"{local:0<32}"[:32],
            domain_id=domain_id,
            local_part=local,
            email=f"{local}@example.org",
            password_hash="x",
            password_changed_at=NOW,
            created_at=NOW,
        )
        .returning(s.users.c.id)
    ).scalar_one()


def add_queue_item(conn: sa.Connection) -> int:
    return conn.execute(
        sa.insert(s.queue)
        .values(sender="", blob_id="b", size=1, created_at=NOW)
        .returning(s.queue.c.id)
    ).scalar_one()


class SchemaTestsMixin(DatabaseTestBase):
    """Migrations and schema behaviour that must hold on every back end."""

    def test_upgrade_from_empty_database_reaches_head(self) -> None:
        engine = self.make_engine()
        self.addCleanup(engine.dispose)
        self.assertIsNone(current_revision(engine))
        self.assertEqual(sa.inspect(engine).get_table_names(), [])
        upgrade_to_head(engine)
        self.assertEqual(current_revision(engine), head_revision())
        self.assertEqual(
            set(sa.inspect(engine).get_table_names()), set(s.metadata.tables) | {"alembic_version"}
        )

    def test_upgrade_at_head_is_a_noop(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(s.meta).values(key="key_id", value="k1"))
        statements: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        sa.event.listen(self.engine, "before_cursor_execute", record)
        self.addCleanup(sa.event.remove, self.engine, "before_cursor_execute", record)
        upgrade_to_head(self.engine)
        ddl = [q for q in statements if q.lstrip().upper().startswith(("CREATE", "ALTER", "DROP"))]
        self.assertEqual(ddl, [])
        self.assertEqual(current_revision(self.engine), head_revision())
        with self.engine.connect() as conn:
            self.assertEqual(conn.execute(sa.select(s.meta.c.value)).scalar_one(), "k1")

    def test_head_read_from_the_scripts_is_alembics_head(self) -> None:
        self.assertEqual(shipped_head(), head_revision())

    def test_upgrade_at_head_does_not_load_alembic(self) -> None:
        # The CLI's start-up time: a current database is recognised without Alembic.
        url = self.engine.url.render_as_string(hide_password=False)
        code = ("import sys; from mailgosend.db.migrate import upgrade_to_head; "
                f"from sqlalchemy import create_engine; e = create_engine({url!r}); "
                "upgrade_to_head(e); print('alembic' in sys.modules)")
        env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=60)
        self.assertEqual((done.returncode, done.stdout.strip()), (0, "False"), done.stderr)

    def test_migrated_database_matches_metadata(self) -> None:
        self.assertEqual(schema_differences(self.engine, s.metadata), [])

    def test_schema_comparison_detects_drift(self) -> None:
        # Proves the previous test can fail: a one-column change is reported.
        drifted = sa.MetaData(naming_convention=s.metadata.naming_convention)
        for table in s.metadata.sorted_tables:
            table.to_metadata(drifted)
        drifted.tables["sessions"].append_column(sa.Column("extra", sa.Integer()))
        drifted.tables["users"].c.email.type = sa.String(100)
        kinds = {self._kind(d) for d in schema_differences(self.engine, drifted)}
        self.assertEqual(kinds, {"add_column", "modify_type"})

    @staticmethod
    def _kind(diff: Any) -> str:
        # compare_metadata yields tuples, or lists of tuples for column modifications.
        return diff[0][0] if isinstance(diff, list) else diff[0]

    def test_utc_datetime_round_trips_aware_values_as_utc(self) -> None:
        paris = timezone(timedelta(hours=2))
        local = datetime(2025, 6, 1, 14, 0, 0, 654321, tzinfo=paris)
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(s.ip_bans).values(
                    ip="192.0.2.1", reason="test", created_at=NOW, expires_at=local
                )
            )
        with self.engine.connect() as conn:
            stored = conn.execute(sa.select(s.ip_bans.c.expires_at)).scalar_one()
            later = conn.execute(
                sa.select(sa.func.count()).where(
                    s.ip_bans.c.expires_at > datetime(2025, 6, 1, 11, 59, tzinfo=timezone.utc)
                )
            ).scalar_one()
        self.assertEqual(stored, local)
        self.assertIs(stored.tzinfo, timezone.utc)
        self.assertEqual(stored.hour, 12)
        self.assertEqual(later, 1)

    def test_utc_datetime_refuses_naive_values(self) -> None:
        with self.engine.connect() as conn:
            with self.assertRaises(StatementError) as caught:
                conn.execute(
                    sa.insert(s.ip_bans).values(
                        ip="192.0.2.1",
                        reason="test",
                        created_at=NOW,
                        expires_at=datetime(2025, 6, 1, 12, 0),
                    )
                )
            conn.rollback()
            self.assertIsInstance(caught.exception.orig, ValueError)
            self.assertEqual(
                conn.execute(sa.select(sa.func.count()).select_from(s.ip_bans)).scalar_one(), 0
            )

    def test_user_with_missing_domain_is_refused(self) -> None:
        with self.assertRaises(IntegrityError):
            with self.engine.begin() as conn:
                add_user(conn, domain_id=4242)

    def test_domain_with_users_cannot_be_deleted(self) -> None:
        with self.engine.begin() as conn:
            domain_id = add_domain(conn)
            add_user(conn, domain_id)
        with self.assertRaises(IntegrityError):
            with self.engine.begin() as conn:
                conn.execute(sa.delete(s.domains).where(s.domains.c.id == domain_id))

    def test_deleting_a_user_cascades_to_mailboxes(self) -> None:
        with self.engine.begin() as conn:
            user_id = add_user(conn, add_domain(conn))
            conn.execute(
                sa.insert(s.mailboxes).values(
                    user_id=user_id, name="INBOX", uidvalidity=1, created_at=NOW
                )
            )
            conn.execute(sa.delete(s.users).where(s.users.c.id == user_id))
            remaining = conn.execute(
                sa.select(sa.func.count()).select_from(s.mailboxes)
            ).scalar_one()
        self.assertEqual(remaining, 0)

    def test_server_defaults_apply(self) -> None:
        with self.engine.begin() as conn:
            user_id = add_user(conn, add_domain(conn))
            row = conn.execute(sa.select(s.users).where(s.users.c.id == user_id)).one()
        self.assertEqual(
            (row.quota_bytes, row.used_bytes, row.enabled, row.is_admin), (0, 0, True, False)
        )

    def test_big_int_primary_keys_autoincrement(self) -> None:
        with self.engine.begin() as conn:
            user_id = add_user(conn, add_domain(conn))
            mailbox_id = conn.execute(
                sa.insert(s.mailboxes)
                .values(user_id=user_id, name="INBOX", uidvalidity=1, created_at=NOW)
                .returning(s.mailboxes.c.id)
            ).scalar_one()
            queue_id = add_queue_item(conn)
            rows: dict[str, list[dict[str, Any]]] = {
                "messages": [
                    dict(
                        mailbox_id=mailbox_id,
                        user_id=user_id,
                        uid=uid,
                        modseq=1,
                        internal_date=NOW,
                        size=1,
                        blob_id="b",
                        created_at=NOW,
                    )
                    for uid in (1, 2)
                ],
                "queue": [dict(sender="", blob_id="b", size=1, created_at=NOW)] * 2,
                "queue_recipients": [
                    dict(
                        queue_id=queue_id,
                        recipient="bob@example.net",
                        domain="example.net",
                        next_attempt_at=NOW,
                        updated_at=NOW,
                        created_at=NOW,
                    )
                ]
                * 2,
                "delivery_log": [dict(attempted_at=NOW)] * 2,
                "login_attempts": [
                    dict(ip="192.0.2.1", username="a", service="imap", success=False,
                         created_at=NOW)
                ]
                * 2,
                "security_events": [dict(kind="ban", created_at=NOW)] * 2,
            }
            self.assertEqual(set(rows), set(BIG_ID_TABLES))
            ids = {
                name: [
                    conn.execute(
                        sa.insert(s.metadata.tables[name])
                        .values(values)
                        .returning(s.metadata.tables[name].c.id)
                    ).scalar_one()
                    for values in rows[name]
                ]
                for name in BIG_ID_TABLES
            }
        for name, (first, second) in ids.items():
            self.assertIsInstance(first, int, name)
            self.assertLess(first, second, name)

    def test_queue_ids_are_not_reused_after_deleting_the_newest(self) -> None:
        # delivery_log.queue_id has no foreign key; a reused id would attach old log lines to a
        # new message.
        with self.engine.begin() as conn:
            add_queue_item(conn)
            newest = add_queue_item(conn)
            conn.execute(sa.delete(s.queue).where(s.queue.c.id == newest))
            self.assertGreater(add_queue_item(conn), newest)


class SchemaSQLiteTests(SQLiteDatabaseMixin, SchemaTestsMixin, unittest.TestCase):
    pass


class SchemaPostgresTests(PostgresDatabaseMixin, SchemaTestsMixin, unittest.TestCase):
    pass


class SQLiteEngineTests(SQLiteDatabaseMixin, unittest.TestCase):
    """The SQLite settings DESIGN §2/§3 depend on."""

    def test_pragmas_are_set_on_every_connection(self) -> None:
        with self.engine.connect() as a, self.engine.connect() as b:
            for conn in (a, b):
                pragmas = [
                    conn.exec_driver_sql(pragma).scalar()
                    for pragma in (
                        "PRAGMA journal_mode",
                        "PRAGMA synchronous",
                        "PRAGMA foreign_keys",
                        "PRAGMA busy_timeout",
                    )
                ]
                self.assertEqual(pragmas, ["wal", 2, 1, 10000])  # synchronous 2 = FULL

    def _begin_statements(self, connect: Any) -> list[str]:
        seen: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.startswith("BEGIN"):
                seen.append(statement)

        sa.event.listen(self.engine, "before_cursor_execute", record)
        self.addCleanup(sa.event.remove, self.engine, "before_cursor_execute", record)
        with connect() as conn:
            conn.execute(sa.select(s.meta.c.key)).all()
        return seen

    def test_write_connections_begin_immediate(self) -> None:
        self.assertEqual(
            self._begin_statements(lambda: connect_for_write(self.engine)), ["BEGIN IMMEDIATE"]
        )

    def test_read_connections_begin_deferred(self) -> None:
        self.assertEqual(self._begin_statements(self.engine.connect), ["BEGIN"])

    def test_rollback_undoes_a_released_savepoint(self) -> None:
        # The sqlite3 module's legacy mode runs SAVEPOINT outside any transaction, so a released
        # savepoint would survive the outer rollback; SQLAlchemy-emitted BEGIN fixes that.
        with self.engine.connect() as conn:
            with conn.begin() as outer:
                with conn.begin_nested():
                    conn.execute(sa.insert(s.meta).values(key="k", value="v"))
                outer.rollback()
            self.assertEqual(conn.execute(sa.select(s.meta)).all(), [])

    def test_integer_ids_use_autoincrement_in_schema_and_migration(self) -> None:
        # Compare-metadata does not see sqlite_autoincrement, so check both sides here.
        integer_ids = {
            t.name
            for t in s.metadata.sorted_tables
            if "id" in t.c and t.c.id.primary_key and t.c.id.type.python_type is int
        }
        in_metadata = {
            t.name for t in s.metadata.sorted_tables if t.dialect_options["sqlite"]["autoincrement"]
        }
        master = sa.table("sqlite_master", sa.column("name"), sa.column("sql"))
        with self.engine.connect() as conn:
            in_database = set(
                conn.execute(
                    sa.select(master.c.name).where(
                        master.c.sql.contains("AUTOINCREMENT")
                    )
                ).scalars()
            )
        self.assertEqual(in_metadata, integer_ids)
        self.assertEqual(in_database, integer_ids)

    def test_missing_parent_directory_is_created(self) -> None:
        engine = create_db_engine("sqlite", sqlite_path=f"{self.mktemp()}/a/b/mail.sqlite")
        self.addCleanup(engine.dispose)
        upgrade_to_head(engine)
        self.assertEqual(current_revision(engine), head_revision())


class EngineFactoryTests(unittest.TestCase):
    """Argument handling of create_db_engine; no database needed."""

    def test_unknown_driver_is_refused(self) -> None:
        with self.assertRaises(ValueError) as caught:
            create_db_engine("mysql", dsn="mysql://x")
        self.assertIn("mysql", str(caught.exception))

    def test_sqlite_needs_a_path(self) -> None:
        self.assertRaises(ValueError, create_db_engine, "sqlite")

    def test_postgres_needs_a_dsn(self) -> None:
        self.assertRaises(ValueError, create_db_engine, "postgres")

    def test_postgres_dsn_spellings_use_psycopg3(self) -> None:
        for dsn in (
            "postgresql://u@h/db",
            "postgres://u@h/db",
            "postgresql+psycopg://u@h/db",
        ):
            self.assertEqual(
                postgres_url(dsn).render_as_string(), "postgresql+psycopg://u@h/db", dsn
            )

    def test_other_postgres_drivers_are_refused(self) -> None:
        self.assertRaises(ValueError, postgres_url, "postgresql+psycopg2://u@h/db")


class UTCDateTimeTests(unittest.TestCase):
    """The type's conversions, without a database."""

    def setUp(self) -> None:
        self.type = UTCDateTime()
        self.sqlite = sa.create_engine("sqlite://").dialect
        self.postgres = sa.create_engine("postgresql+psycopg://u@h/db").dialect

    def test_naive_datetime_raises_value_error(self) -> None:
        for dialect in (self.sqlite, self.postgres):
            self.assertRaises(
                ValueError, self.type.process_bind_param, datetime(2025, 1, 1), dialect
            )

    def test_sqlite_gets_naive_utc_postgres_gets_aware_utc(self) -> None:
        value = datetime(2025, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=3)))
        self.assertEqual(
            self.type.process_bind_param(value, self.sqlite), datetime(2025, 1, 1, 0, 0)
        )
        bound = self.type.process_bind_param(value, self.postgres)
        self.assertEqual(bound, value)
        self.assertIs(bound and bound.tzinfo, timezone.utc)

    def test_results_are_aware_utc(self) -> None:
        self.assertEqual(
            self.type.process_result_value(datetime(2025, 1, 1), self.sqlite),
            datetime(2025, 1, 1, tzinfo=timezone.utc),
        )
        self.assertIsNone(self.type.process_result_value(None, self.sqlite))
