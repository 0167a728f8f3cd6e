"""Periodic housekeeping (DESIGN.md §3): expunged messages are soft-deleted
rows until EXPUNGE_RETENTION has passed (IMAP sessions may still fetch them
until told, RFC 3501 §7.4.1); then the rows go (with the JMAP tombstones of
deleted mailboxes, raising each user's pruning floor: store/mailstate.py), and blobs no row references
any more (and spool files of crashed deliveries) are removed.  Greylist rows
past their retry window or expiry go in the same hourly run (RFC 6647 §6), delivery
attempts older than DELIVERY_LOG_RETENTION, web sessions past their lifetime, and JMAP
uploads past theirs (store/uploads.py), before the blob purge that then removes their blobs.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from mailgosend.db.runner import DatabaseRunner
from mailgosend.spam import greylist
from mailgosend.store.blobs import BlobStore
from mailgosend.store.emails import purge_tombstones
from mailgosend.store.messages import purge_expunged
from mailgosend.store.search import purge_orphans
from mailgosend.store.queue import purge_delivery_log
from mailgosend.store.sessions import purge_expired
from mailgosend.store.uploads import purge_expired as purge_expired_uploads

log = Logger()

INTERVAL_SECONDS = 3600.0
EXPUNGE_RETENTION = timedelta(days=1)
DELIVERY_LOG_RETENTION = timedelta(days=30)   # `mailgosend queue show` history


class MaintenanceService(Service):
    def __init__(self, runner: DatabaseRunner, blob_store: BlobStore, clock: Any) -> None:
        self.setName("maintenance")
        self._runner = runner
        self._blobs = blob_store
        self._clock = clock
        self._loop: Optional[task.LoopingCall] = None
        # service.py sets the configured policy when greylisting is on; the defaults
        # still clear rows left from a time it was on.
        self.greylist_policy = greylist.GreylistPolicy()

    def startService(self) -> None:
        super().startService()
        self._loop = task.LoopingCall(self.run_once)
        self._loop.clock = self._clock
        # Not at start-up: a restart loop must not turn into a purge loop.
        self._loop.start(INTERVAL_SECONDS, now=False)

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    @defer.inlineCallbacks
    def run_once(self) -> Any:
        now = datetime.fromtimestamp(self._clock.seconds(), timezone.utc)
        try:
            rows = yield self._runner.write(purge_expunged, before=now - EXPUNGE_RETENTION)
            # JMAP: what the purge removed is history; both raise the users' pruning floor.
            rows += yield self._runner.write(purge_tombstones, before=now - EXPUNGE_RETENTION)
            # The search index goes with the message (its blob no longer used by the user).
            documents = yield self._runner.write(purge_orphans)
            uploads = yield self._runner.write(purge_expired_uploads, now)
            run = self._runner.write if self._blobs.purge_writes_database else self._runner.read
            blobs = yield run(lambda conn: self._blobs.purge_unreferenced(conn, now=now))
            triplets = yield self._runner.write(greylist.purge, now, self.greylist_policy)
            attempts = yield self._runner.write(purge_delivery_log, now - DELIVERY_LOG_RETENTION)
            sessions = yield self._runner.write(purge_expired, now)
        except Exception as exc:  # try again next hour; never stop the loop
            log.error("maintenance failed: {error}", error=exc)
            return None
        if documents:
            log.info("maintenance: removed {documents} search index document(s)",
                     documents=documents)
        if rows or blobs or triplets or attempts or sessions or uploads:
            log.info("maintenance: removed {rows} expunged message(s), {blobs} unused blob(s), "
                     "{triplets} greylist entries, {attempts} delivery log entries, "
                     "{sessions} expired web session(s), {uploads} expired upload(s)",
                     rows=rows, blobs=blobs, triplets=triplets, attempts=attempts,
                     sessions=sessions, uploads=uploads)
        return rows, blobs
