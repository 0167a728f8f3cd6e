"""Housekeeping removes expunged rows after the retention, then their blobs."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from twisted.internet import defer, task
from twisted.trial import unittest

from mailgosend.crypto import KeyRing
from mailgosend.db.runner import run_sync
from mailgosend.db.schema import blobs, messages as messages_table
from mailgosend.maintenance import MaintenanceService
from mailgosend.store import accounts, messages
from mailgosend.store.blobs import DatabaseBlobs
from mailgosend.store.mimeinfo import analyse
from tests.support.db import DatabaseTestBase, PostgresDatabaseMixin, SQLiteDatabaseMixin

START = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


class MaintenanceTestsMixin(DatabaseTestBase):
    @defer.inlineCallbacks
    def test_expunged_message_and_its_blob_go_after_retention(self):  # type: ignore[no-untyped-def]
        keyring = KeyRing(bytes(range(32)))
        store = DatabaseBlobs(self.mktemp())
        run_sync(self.engine, accounts.add_domain, "example.com", START, write=True)
        user = run_sync(self.engine, accounts.add_user, "a@example.com", "h", START, write=True)
        raw = b"Subject: x\r\n\r\nbody\r\n"
        sealed = store.seal(keyring, user.uuid, io.BytesIO(raw))
        meta = messages.seal_info(keyring, user.uuid, sealed.blob_id, analyse(raw))
        delivered = run_sync(self.engine, messages.deliver, user, "inbox", sealed, meta,
                             ["\\Deleted"], START, START, blob_store=store, write=True)
        store.release(sealed)
        run_sync(self.engine, messages.expunge, delivered.mailbox_id, now=START, write=True)

        clock = task.Clock()
        clock.advance((START + timedelta(hours=2)).timestamp())
        service = MaintenanceService(self.runner, store, clock)
        rows, removed = yield service.run_once()      # within the retention: kept
        self.assertEqual((rows, removed), (0, 0))
        clock.advance(timedelta(days=2).total_seconds())
        rows, removed = yield service.run_once()
        self.assertEqual((rows, removed), (1, 1))

        def count(conn, table):  # type: ignore[no-untyped-def]
            return conn.execute(select(func.count()).select_from(table)).scalar_one()
        self.assertEqual(run_sync(self.engine, count, messages_table, write=False), 0)
        self.assertEqual(run_sync(self.engine, count, blobs, write=False), 0)


class MaintenanceSQLiteTests(SQLiteDatabaseMixin, MaintenanceTestsMixin, unittest.TestCase):
    pass


class MaintenancePostgresTests(PostgresDatabaseMixin, MaintenanceTestsMixin, unittest.TestCase):
    pass
