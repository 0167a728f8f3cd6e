# -*- test-case-name: tests.test_mail_service -*-
"""The mail service: one object per process, and the per-user view every front end calls.

``MailService`` holds what reaching mail needs (the database runner, the keyring, the blob
store, the worker threads, the clock, the spam trainer); ``MailService.for_user`` hands out a
``UserMail``, whose methods are the operations of a mail client: mailboxes and subscriptions,
append, copy/move, flags, expunge, quota, status, and the reads that keep a view current.
Every method returns a Deferred; the work runs in database or worker threads.

After each commit the service publishes what changed on the change feed (events.py): new
messages with their rows, flag changes with their MODSEQ, expunges, mailbox changes; so every
front end (IMAP IDLE, POP3, later webmail) hears every other.  ``origin`` names the session
that made a change (its own view is already up to date).

Errors are the store's (``MailboxNotFound``, ``QuotaExceeded``, ...), each carrying the codes
a front end maps once in its own place.
"""

from __future__ import annotations

import hashlib
import hmac

from datetime import datetime, timezone
from typing import (Any, BinaryIO, Callable, Iterable, Literal, Optional, Sequence, TypeVar,
                    Union)

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from mailgosend.crypto import KeyRing
from mailgosend.db.runner import DatabaseRunner
from mailgosend.mail import mailboxes as mailbox_jobs
from mailgosend.mail import messages as message_jobs
from mailgosend.mail import query, sync
from mailgosend.mail.accountdata import AccountData
from mailgosend.mail.vacation import VacationResponder
from mailgosend.mail.snooze import SnoozeResult, Snoozer
from mailgosend.store.snoozes import Snooze
from mailgosend.mail.emails import EmailRecord, load_emails
from mailgosend.mail import uploads
from mailgosend.mail.searchtext import KEY_PURPOSE as SEARCH_KEY
from mailgosend.mail.searchtext import Term
from mailgosend.events import (Change, ChangeBatch, Events, Expunged, FlagsChanged,
                               MailboxCreated, MailboxDeleted, MailboxRenamed, NewMessage)
from mailgosend.mail.delivery import LocalDelivery, Placement
from mailgosend.mail.filing import training_verdict
from mailgosend.mail.moves import CopyResult, copy_messages
from mailgosend.mail.source import BoundedCache, InfoCache, MessageSource, Remember
from mailgosend.spam import bayes
from mailgosend.spam.interfaces import ISpamTrainer, MessageRef, NoSpamTraining
from mailgosend.store import accounts
from mailgosend.store import dav as store_dav
from mailgosend.store import jmapdata
from mailgosend.store import emails as store_emails
from mailgosend.store import mailstate
from mailgosend.store import remotesenders
from mailgosend.store import mailboxes as store_mailboxes
from mailgosend.store import messages as store_messages
from mailgosend.store.accounts import User
from mailgosend.store.blobs import BlobReader, BlobStore, SealedBlobCache
from mailgosend.store.emails import Changes, MailboxTally, Position
from mailgosend.store.mailboxes import Mailbox
from mailgosend.store.messages import (Delivered, FlagsResult, MailboxCounts, MessageRow,
                                       RawSource, Workers)
from mailgosend.store.mimeinfo import MessageInfo

__all__ = ["MailService", "UserMail"]

log = Logger()

FlagMode = Literal["add", "remove", "replace"]
_T = TypeVar("_T")

class MailService:
    """Everything a front end needs to reach mail, shared by a process's listeners."""

    def __init__(self, *, runner: DatabaseRunner, keyring: KeyRing, blob_store: BlobStore,
                 workers: Workers, clock: IReactorTime,
                 trainer: Optional[ISpamTrainer] = None, events: Optional[Events] = None
                 ) -> None:
        self.runner = runner
        self.keyring = keyring
        self.blob_store = blob_store
        self.workers = workers
        self.clock = clock
        self.trainer: ISpamTrainer = trainer or NoSpamTraining()
        self.info_cache = InfoCache()  # decrypted structures, bounded
        self.blob_cache = SealedBlobCache()  # small sealed (still encrypted) blobs, 32 MB
        # JMAP Mailbox counts by (user, change counter, trash): exact for that state
        self.tally_cache: BoundedCache[dict[int, MailboxTally]] = BoundedCache(1000)
        # Email/get's properties that come from a message's content (from, subject,
        # preview...), by (user id, email id, 0): an email's content never changes
        # (jmap/email_get.py); a list window then decrypts and parses nothing.
        self.list_cache: BoundedCache[dict[str, Any]] = BoundedCache(20_000)
        self.events = events
        # Email/query's per-user indexes (mail/query.py), bounded in messages
        self.query_indexes = query.QueryIndexes()
        # the one local-delivery path (SMTP receive, DSNs, APPEND): mail/delivery.py
        self.delivery = LocalDelivery(runner=runner, keyring=keyring, blob_store=blob_store,
                                      workers=workers, events=events)
        # RFC 8621 §8 / RFC 3834 automatic replies (its interval: VACATION_REPLY_DAYS)
        self.vacation = VacationResponder(self)
        self.delivery.responder = self.vacation
        # snooze: moves to \Snoozed and back at their time (mail/snooze.py)
        self.snoozer = Snoozer(self)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    def for_user(self, user: User) -> UserMail:
        return UserMail(self, user)

    def open_account(self, email: str) -> Deferred[UserMail]:
        """A user who just logged in: the view, with the default mailboxes created if the
        account has none yet (first login before any delivery)."""
        return Deferred.fromCoroutine(self._open_account(email))

    async def _open_account(self, email: str) -> UserMail:
        user = await self.runner.read(accounts.get_user, email)
        if await self.runner.read(store_mailboxes.get_by_role, user.id, "inbox") is None:
            await self.runner.write(store_mailboxes.ensure_default_mailboxes, user.id,
                                    self.now())
        return UserMail(self, user)

    async def spam_probabilities(self, users: Sequence[User], tokens: Sequence[str], *,
                                 min_messages: int) -> dict[int, float]:
        """Each user's Bayes verdict on one message (spam/bayes.py), from its tokens: the
        tokens are hashed under each user's key, which stays here."""
        return await bayes.user_probabilities(self.runner, self.keyring, users, tokens,
                                              min_messages=min_messages)

    def due_submissions(self) -> Deferred[list[tuple[User, int]]]:
        """Held JMAP submissions whose undo window is over: (user, submission id)."""
        return self.runner.read(_due_submissions, self.now())

    def inbox_index(self, email: str) -> Deferred[message_jobs.InboxIndex]:
        """The INBOX rows of ``email`` (POP3 numbers them at login); nothing decrypted."""
        return self.runner.read(message_jobs.inbox_index, email)

class UserMail:
    """One user's mail, as every front end sees it."""

    def __init__(self, service: MailService, user: User) -> None:
        self.service = service
        self.user = user

    def _publish(self, changes: Sequence[Change], origin: Any = None) -> None:
        """After a commit: tell every front end (events.py)."""
        events = self.service.events
        if events is not None and changes:
            events.publish(ChangeBatch(self.user.id, tuple(changes), origin))

    # --- mailboxes -------------------------------------------------------------------------

    def mailboxes_and_subscriptions(self) -> Deferred[tuple[list[Mailbox], set[str]]]:
        """Every mailbox, and the subscribed names, read in one transaction: a subscription
        is a name (RFC 3501 §6.3.6), kept when its mailbox is deleted."""
        d = self.service.runner.read(mailbox_jobs.mailboxes_and_subscriptions, self.user.id)
        return d.addCallback(lambda found: (found[0], set(found[1])))

    def counts_by_mailbox(self) -> Deferred[dict[int, MailboxCounts]]:
        """MESSAGES/UNSEEN/SIZE of every mailbox in one query."""
        return self.service.runner.read(store_messages.mailbox_counts_by_mailbox, self.user.id)

    def get_mailbox(self, name: str) -> Deferred[Optional[Mailbox]]:
        return self.service.runner.read(store_mailboxes.get_mailbox, self.user.id, name)

    def create_mailbox(self, name: str, special_use: Optional[str] = None) -> Deferred[Mailbox]:
        d = self.service.runner.write(store_mailboxes.create_mailbox, self.user.id, name,
                                      self.service.now(), special_use)

        def created(box: Mailbox) -> Mailbox:
            self._publish([MailboxCreated(box.id, box.name)])
            return box

        return d.addCallback(created)

    def delete_mailbox(self, name: str) -> Deferred[Mailbox]:
        d = self.service.runner.write(store_mailboxes.delete_mailbox, self.user.id, name,
                                      self.service.now())

        def deleted(box: Mailbox) -> Mailbox:
            self._publish([MailboxDeleted(box.id, box.name)])
            return box

        return d.addCallback(deleted)

    def rename_mailbox(self, old: str, new: str) -> Deferred[Mailbox]:
        return Deferred.fromCoroutine(self._rename(old, new))

    async def _rename(self, old: str, new: str) -> Mailbox:
        """Renaming INBOX empties it (store.mailboxes.rename_mailbox), which INBOX's sessions
        learn from ``emptied_id``."""
        runner = self.service.runner
        box = await runner.write(store_mailboxes.rename_mailbox, self.user.id, old, new,
                                 self.service.now())
        emptied = None
        old_name = store_mailboxes.normalize_name(old)
        if old_name == store_mailboxes.INBOX:
            inbox = await runner.read(store_mailboxes.get_mailbox, self.user.id,
                                      store_mailboxes.INBOX)
            emptied = inbox.id if inbox is not None else None
        self._publish([MailboxRenamed(box.id, old_name, box.name, emptied)])
        return box

    def set_subscription(self, name: str, subscribed: bool) -> Deferred[None]:
        d = self.service.runner.write(store_mailboxes.set_subscribed, self.user.id, name,
                                      subscribed)

        def stored(box_id: Optional[int]) -> None:
            if box_id is not None:  # the mailbox's isSubscribed changed (JMAP push)
                self._publish([MailboxRenamed(box_id, name, name)])

        return d.addCallback(stored)

    def status(self, name: str, recent_after: Optional[int]
               ) -> Deferred[tuple[Mailbox, MailboxCounts, int]]:
        """The mailbox, its counts, and how many live UIDs are above ``recent_after`` (the
        stored \\Recent floor when None)."""
        return self.service.runner.read(mailbox_jobs.mailbox_status, self.user.id, name,
                                        recent_after)

    def quota(self) -> Deferred[tuple[int, int]]:
        """(used bytes, limit bytes; 0 = unlimited) as of now."""
        return self.service.runner.read(mailbox_jobs.quota_usage, self.user.id)

    def raise_recent_floor(self, mailbox_id: int, floor: int) -> Deferred[None]:
        return self.service.runner.write(mailbox_jobs.raise_recent_floor, mailbox_id, floor)

    # --- keeping a view current ------------------------------------------------------------

    def refresh(self, name: str, known: dict[int, tuple[int, int, bool]]
                ) -> Deferred[sync.SnapshotDelta]:
        """The mailbox ``name`` and its changes since a snapshot (mail/sync.py)."""
        return self.service.runner.read(sync.refresh, self.user.id, name, known)

    def changes_since(self, mailbox_id: int, modseq: int, full: bool
                      ) -> Deferred[sync.SyncState]:
        return self.service.runner.read(sync.sync_state, self.user.id, mailbox_id, modseq,
                                        full)

    def live_uids(self, mailbox_id: int) -> Deferred[list[int]]:
        return self.service.runner.read(sync.live_uids, mailbox_id)

    def vanished(self, mailbox_id: int, since: int, uidnext: int) -> Deferred[sync.Vanished]:
        return self.service.runner.read(sync.vanished, mailbox_id, since, uidnext)

    # --- messages --------------------------------------------------------------------------

    def append(self, mailbox_id: int, source: RawSource, flags: Iterable[str],
               date: Optional[datetime]) -> Deferred[Delivered]:
        """Store one message (bytes, or a spool file's path) in one of the user's mailboxes;
        quota enforced (QuotaExceeded)."""
        now = self.service.now()
        d = Deferred.fromCoroutine(self.service.delivery.deliver(
            source, [Placement(self.user, mailbox_id, tuple(flags), date or now)], now))

        def only(results: list[Any]) -> Delivered:
            if isinstance(results[0], Exception):
                raise results[0]
            return results[0]  # type: ignore[no-any-return]

        return d.addCallback(only)

    def append_all(self, mailbox_id: int,
                   messages: Sequence[tuple[RawSource, Iterable[str], Optional[datetime]]]
                   ) -> Deferred[list[Delivered]]:
        """Store several messages in one mailbox, every one or none (one transaction), with
        consecutive UIDs (IMAP MULTIAPPEND, RFC 3502)."""
        now = self.service.now()
        return Deferred.fromCoroutine(self.service.delivery.deliver_all(
            self.user, mailbox_id,
            [(source, flags, date or now) for source, flags, date in messages], now))

    def copy(self, source: Mailbox, uids: Sequence[int], target: Mailbox, *, move: bool
             ) -> Deferred[CopyResult]:
        """Copy or move messages between two of the user's mailboxes (one transaction), then
        teach the user's spam filter what the filing says (filing.py)."""
        d = self.service.runner.write(copy_messages, self.user.id, source.id, list(uids),
                                      target.id, self.service.now(), move=move)
        return d.addCallback(self._moved, source, target)

    def _moved(self, result: CopyResult, source: Mailbox, target: Mailbox) -> CopyResult:
        """After the commit: published, then trained on; a failing trainer is logged and
        never fails the move."""
        changes: list[Change] = [NewMessage.of(item) for item in result.delivered]
        if result.expunged:
            changes.append(Expunged(source.id, tuple(result.expunged)))
        self._publish(changes)
        is_spam = training_verdict(source.role, target.role, same_mailbox=source.id == target.id)
        if is_spam is None:
            return result
        trainer = self.service.trainer
        for _, new_uid in result.pairs:
            ref = MessageRef(self.user.id, target.id, new_uid, result.blobs[new_uid])
            maybeDeferred(trainer.learn, self.user.id, ref, is_spam).addErrback(
                lambda f: log.failure("spam trainer failed", f))
        return result

    def set_flags(self, mailbox_id: int, uids: Optional[Sequence[int]], flags: Sequence[str],
                  mode: FlagMode, unchanged_since: Optional[int] = None, *,
                  origin: Any = None) -> Deferred[FlagsResult]:
        """Add, remove or replace flags (one new MODSEQ); RFC 7162 UNCHANGEDSINCE leaves the
        messages modified since then alone and names them in ``FlagsResult.modified``."""
        d = self.service.runner.write(
            store_messages.set_flags, mailbox_id, None if uids is None else list(uids),
            list(flags), mode, unchanged_since=unchanged_since)

        def stored(result: FlagsResult) -> FlagsResult:
            if result.changed:
                self._publish([FlagsChanged(mailbox_id, tuple(result.changed))], origin)
            return result

        return d.addCallback(stored)

    def expunge(self, mailbox_id: int, uids: Optional[Sequence[int]], *,
                origin: Any = None) -> Deferred[list[int]]:
        """Soft-delete the \\Deleted messages (of ``uids``, or all); the UIDs expunged."""
        d = self.service.runner.write(store_messages.expunge, mailbox_id,
                                      None if uids is None else list(uids),
                                      now=self.service.now())

        def expunged(uids: list[int]) -> list[int]:
            if uids:
                self._publish([Expunged(mailbox_id, tuple(uids))], origin)
            return uids

        return d.addCallback(expunged)

    def delete_and_mark_seen(self, mailbox_id: int, deleted: Sequence[int],
                             seen: Sequence[int]) -> Deferred[list[int]]:
        """\\Seen on ``seen``, expunge ``deleted``, in one transaction (POP3 UPDATE); fires
        with the UIDs expunged once committed and published."""
        d = self.service.runner.write(message_jobs.delete_and_mark_seen, self.user.id,
                                      mailbox_id, list(deleted), list(seen),
                                      self.service.now())

        def committed(result: tuple[list[Any], list[int]]) -> list[int]:
            flagged, expunged = result
            changes: list[Change] = []
            if flagged:
                changes.append(FlagsChanged(mailbox_id, tuple(flagged)))
            if expunged:
                changes.append(Expunged(mailbox_id, tuple(expunged)))
            self._publish(changes)
            return expunged

        return d.addCallback(committed)

    def read_range(self, blob_id: str, offset: int, length: int) -> Deferred[bytes]:
        """Plaintext octets [offset, offset + length) of a message, decrypting only the
        segments they touch."""
        service = self.service
        return service.runner.read(message_jobs.read_range, service.blob_store,
                                   service.keyring, self.user.uuid, blob_id, offset, length)

    # --- JMAP emails (RFC 8621 §4) ------------------------------------------------------------

    def email_records(self, numbers: Sequence[int], *, raw: bool = False
                      ) -> Deferred[dict[int, EmailRecord]]:
        """The user's live emails among ``numbers`` (mail/emails.py), in ONE database job:
        rows and structures, and the plaintext when ``raw``."""
        return self.read_messages(load_emails, list(numbers), raw=raw)

    def email_rows(self, numbers: Sequence[int]
                   ) -> Deferred[Optional[dict[int, tuple[MessageRow, int]]]]:
        """(row, thread id) of the user's live emails among ``numbers`` from the query index
        (no structure read), or None when the user has no index loaded yet."""
        return self.read_messages(query.index_rows_of, self.service.query_indexes,
                                  list(numbers))

    @property
    def account_data(self) -> AccountData:
        """Identities, submissions and the vacation response (mail/accountdata.py)."""
        return AccountData(self.service, self.user)

    # --- JMAP: Emails and Threads by id, and the account's change state -------------------

    def emails(self, email_ids: Sequence[int]) -> Deferred[list[store_emails.EmailRow]]:
        """The live rows of the user's Emails (JMAP ``M<email_id>``, jmap/ids.py), by Email
        id; ids unknown, gone or another user's are absent.  Nothing decrypted."""
        return self.service.runner.read(store_emails.emails_by_id, self.user.id,
                                        list(email_ids))

    def thread_emails(self, thread_ids: Sequence[int]
                      ) -> Deferred[list[store_emails.EmailRow]]:
        """The live rows of the user's Threads (``T<thread_id>``), each thread's oldest
        received first (RFC 8621 §3.1)."""
        return self.service.runner.read(store_emails.emails_in_threads, self.user.id,
                                        list(thread_ids))

    def thread_ids(self, limit: int) -> Deferred[list[int]]:
        """Up to ``limit`` live thread ids of the user (Thread/get with ids null)."""
        return self.service.runner.read(store_emails.thread_ids, self.user.id, limit)

    def mail_state(self) -> Deferred[mailstate.MailState]:
        """The user's change counter now (the JMAP state of Mailbox, Email and Thread,
        jmap/state.py) and the pruning floor below which /changes cannot be answered."""
        return self.service.runner.read(mailstate.read_state, self.user.id)

    def dav_state(self, kind: str) -> Deferred[str]:
        """The state of the user's calendars or address books ("calendar" |
        "addressbook"): it moves whenever one of them changes (store/dav.py)."""
        return self.service.runner.read(store_dav.collections_state, self.user.id, kind)

    def email_changes(self, since: Position, current: int, max_changes: Optional[int]
                      ) -> Deferred[Changes]:
        """Emails created, updated, destroyed after ``since`` (store/emails.py)."""
        return self.service.runner.read(store_emails.email_changes, self.user.id, since,
                                        current, max_changes)

    def thread_changes(self, since: Position, current: int, max_changes: Optional[int]
                       ) -> Deferred[Changes]:
        """Threads whose Emails came or went after ``since``."""
        return self.service.runner.read(store_emails.thread_changes, self.user.id, since,
                                        current, max_changes)

    def mailbox_changes(self, since: Position, current: int, max_changes: Optional[int]
                        ) -> Deferred[Changes]:
        """Mailboxes created, changed (or only their counts), destroyed after ``since``."""
        return self.service.runner.read(store_emails.mailbox_changes, self.user.id, since,
                                        current, max_changes)

    def mailbox_view(self) -> Deferred[store_emails.MailboxView]:
        """State, mailboxes, subscriptions and JMAP counts in one transaction (Mailbox/get).
        The counts come from the user's query index (mail/query.py), which a JMAP client
        loads anyway for its first Email/query, and which follows each change for the
        cost of that change."""
        indexes = self.service.query_indexes
        return self.service.runner.read(
            store_emails.mailbox_view, self.user.id, self.service.tally_cache,
            lambda conn, user_id, trash: query.mailbox_tallies(conn, indexes, user_id, trash))

    def set_sort_order(self, mailbox_id: int, sort_order: int) -> Deferred[Mailbox]:
        """JMAP Mailbox sortOrder (RFC 8621 §2): stored, a mailbox change like a rename."""
        d = self.service.runner.write(store_mailboxes.set_sort_order, self.user.id,
                                      mailbox_id, sort_order)

        def stored(box: Mailbox) -> Mailbox:
            self._publish([MailboxRenamed(box.id, box.name, box.name)])
            return box

        return d.addCallback(stored)

    # --- JMAP uploads (RFC 8620 §6.1) -------------------------------------------------------

    def add_upload(self, source: Union[BinaryIO, bytes], media_type: str
                   ) -> Deferred[uploads.Upload]:
        """Seal an uploaded blob with the user's key and keep it for a day (mail/uploads.py);
        ``QuotaExceeded`` when it does not fit beside the mail and the pending uploads."""
        return Deferred.fromCoroutine(uploads.add_upload(self.service, self.user, source,
                                                         media_type))

    def find_upload(self, token: str) -> Deferred[Optional[uploads.Upload]]:
        """The user's own unexpired upload with ``token``, or None."""
        return uploads.find_upload(self.service, self.user, token)  # type: ignore[no-any-return]

    # --- the one door to message structures and bytes --------------------------------------

    def read_messages(self, job: Callable[..., _T], *args: Any,
                      uidvalidity: Optional[int] = None,
                      headers: Optional[BoundedCache[bytes]] = None,
                      remember: Optional[Remember] = None, **kwargs: Any) -> Deferred[_T]:
        """Run ``job(source, *args, **kwargs)`` in a database reader thread, ``source`` a
        MessageSource on that job's connection.  One job per call, so a front end batches as
        it likes (FETCH per batch, SEARCH per chunk).  ``uidvalidity``: the rows are of one
        mailbox, so decrypted structures are remembered across jobs, with the front end's
        ``headers`` cache and ``remember`` hook (told of every structure decrypted)."""
        service = self.service
        return service.runner.read(_with_source, service, self.user, uidvalidity, headers,
                                   remember, job, args, kwargs)

    def message_source(self, uidvalidity: Optional[int] = None) -> MessageSource:
        """A MessageSource for worker threads outside a job (Twisted's IMailbox.fetch): each
        access borrows a connection from the runner for a moment."""
        service = self.service
        return MessageSource(service.runner, service.keyring, service.blob_store, self.user,
                             cache=service.info_cache, uidvalidity=uidvalidity,
                             blob_cache=service.blob_cache)

    def open_blob(self, blob_id: str) -> Deferred[BlobReader]:
        """A reader over one message's plaintext, opened in a worker thread; read its ranges
        there too (``workers.run(reader.read_range, ...)``) and close it when done."""
        service = self.service
        return service.workers.run(service.blob_store.open_blob, service.runner,
                                   service.keyring, self.user.uuid, blob_id)

    def open_cached_blob(self, blob_id: str) -> Optional[BlobReader]:
        """The message's reader if its sealed blob is in the process's small-blob cache (no
        database access; decrypting at most SMALL_BLOB_BYTES is fine in the reactor thread),
        else None."""
        service = self.service
        return service.blob_cache.open(service.keyring, self.user.uuid, blob_id)

    # --- snooze (mail/snooze.py) --------------------------------------------------------

    def snooze(self, email_ids: Sequence[int], until: datetime) -> Deferred[SnoozeResult]:
        """Move the Emails into the \\Snoozed mailbox (made on demand) until ``until``, when
        they come back unread to where they were; SnoozeError names a bad field."""
        return Deferred.fromCoroutine(self.service.snoozer.snooze(self, email_ids, until))

    def unsnooze(self, email_ids: Sequence[int]) -> Deferred[SnoozeResult]:
        """Bring snoozed Emails back now (flags unchanged)."""
        return Deferred.fromCoroutine(self.service.snoozer.unsnooze(self, email_ids))

    def snoozed(self) -> Deferred[list[Snooze]]:
        """The user's snoozed Emails and their wake-up times, soonest first."""
        return self.service.snoozer.snoozed(self)

    # --- the webmail's remote-content senders (web/webmail.py) ----------------------------

    def _sender_hash(self, address: str) -> bytes:
        key = self.service.keyring.derive("remote-senders", self.user.uuid)
        return hmac.new(key, address.strip().lower().encode("utf-8"), hashlib.sha256).digest()

    def remote_content_allowed(self, address: str) -> Deferred[bool]:
        """Whether the user chose to always show remote content from ``address``."""
        return self.service.runner.read(remotesenders.contains, self.user.id,
                                        self._sender_hash(address))

    def allow_remote_content(self, address: str) -> Deferred[None]:
        """Always show remote content from ``address`` (stored as a keyed hash only)."""
        return self.service.runner.write(remotesenders.add, self.user.id,
                                         self._sender_hash(address), self.service.now())

    # --- queries over the index (JMAP Email/query; mail/query.py) -----------------------------

    def _search_key(self) -> bytes:
        return self.service.keyring.derive(SEARCH_KEY, self.user.uuid)

    def query_emails(self, tree: Optional[query.Node], sorts: Sequence[query.Sort],
                     collapse: bool, position: int, anchor: Optional[int], anchor_offset: int,
                     limit: Optional[int], cache_key: Any) -> Deferred[query.QueryResult]:
        """One window of the user's messages filtered and sorted (one reader job); an
        ``anchor`` not in the results fails with KeyError."""
        d = self.read_messages(query.run_query, self.service.query_indexes, self._search_key(),
                               tree, sorts, collapse, position, anchor, anchor_offset, limit,
                               cache_key)
        return d.addCallback(self._after_query)

    def query_changes(self, since: str, tree: Optional[query.Node],
                      sorts: Sequence[query.Sort], collapse: bool, up_to: Optional[int],
                      immutable: bool, cache_key: Any) -> Deferred[query.QueryChanges]:
        """What changed in a query's results since ``since`` (UnknownState,
        CannotCalculateChanges)."""
        d = self.read_messages(query.run_query_changes, self.service.query_indexes,
                               self._search_key(), since, tree, sorts, collapse, up_to,
                               immutable, cache_key)
        return d.addCallback(self._after_query)

    def search_snippets(self, ids: Sequence[int], subject_terms: list[Term],
                        body_terms: list[Term]
                        ) -> Deferred[tuple[list[query.Snippet], list[int]]]:
        """The subject and a preview of each message with the terms marked."""
        return self.read_messages(query.run_snippets, self.service.query_indexes, ids,
                                  subject_terms, body_terms)

    def _after_query(self, result: _T) -> _T:
        """Messages stored before the search index: index them in the background."""
        index = self.service.query_indexes.get(self.user.id)
        if index.unindexed and not index.backfilling:
            self.index_backlog().addErrback(lambda f: log.failure("search backfill failed", f))
        return result

    def index_backlog(self) -> Deferred[int]:
        """Index every message of the user that has no search document yet."""
        return Deferred.fromCoroutine(query.backfill(
            self.read_messages, self.service.runner.write, self.service.query_indexes,
            self.user.id, self._search_key()))

    def store_structures(self, structures: list[tuple[int, str, MessageInfo]]) -> Deferred[Any]:
        """Re-seal structures a reader completed (header blocks of old messages)."""
        service = self.service
        return service.runner.write(store_messages.store_structures, service.keyring,
                                    self.user, structures)


def _due_submissions(conn: Any, now: datetime) -> list[tuple[User, int]]:
    found = []
    for row in jmapdata.due_submissions(conn, now):
        user = accounts.find_user_by_id(conn, row.user_id)
        if user is not None:
            found.append((user, row.id))
    return found


def _with_source(conn: Any, service: MailService, user: User, uidvalidity: Optional[int],
                 headers: Optional[BoundedCache[bytes]], remember: Optional[Remember],
                 job: Callable[..., _T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> _T:
    """Database thread: ``job`` with a MessageSource bound to this job's connection."""
    source = MessageSource(conn, service.keyring, service.blob_store, user,
                           cache=service.info_cache, uidvalidity=uidvalidity, headers=headers,
                           remember=remember, blob_cache=service.blob_cache)
    return job(source, *args, **kwargs)
