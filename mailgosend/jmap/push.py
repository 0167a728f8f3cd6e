# -*- test-case-name: tests.test_jmap_core_push -*-
"""Push over EventSource (RFC 8620 §7.3), fed from the change feed (events.py).

GET /jmap/eventsource/?types=Email,Mailbox&closeafter=state|no&ping=N opens a
``text/event-stream``.  Every ChangeBatch of the user names the data types it touched
(``changed_types``: the mail types, and Identity, EmailSubmission and VacationResponse for
the account data's changes); the stream then reads the states of the wanted ones among them
(state.py ``type_states``, the one place state strings come from, each reader once) and
sends those whose state moved since it last said (RFC 8620 §7.1)

    event: state
    data: {"@type":"StateChange","changed":{"<accountId>":{"Email":"<state>",...}}}

Batches that arrive while a state is being read are folded into the next event, so a burst
of deliveries costs a few reads, not one per message.  ``ping=N`` sends ``event: ping``
with ``{"interval": N}`` every N seconds (at least MIN_PING, at most MAX_PING: RFC 8620 §7.3
lets the server choose and says so in the data).  ``closeafter=state`` ends the response
after the first state event (long polling).  At shutdown the Site's channels end the
stream at once (web/site.py ``end_stream``), so draining never waits for it.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.server import NOT_DONE_YET

from mailgosend.events import (ChangeBatch, DavChanged, Expunged, FlagsChanged, IdentityChanged,
                               MailboxCreated, MailboxDeleted, MailboxRenamed, NewMessage,
                               RemoteChange, Resync, SubmissionChanged, VacationChanged)
from mailgosend.jmap.auth import Caller
from mailgosend.jmap.errors import RequestError
from mailgosend.jmap.state import STATE_READERS, type_states
from mailgosend.web.request import WebRequest

__all__ = ["EventSourceRoute", "changed_types", "TYPES"]

log = Logger()

# The data types whose state the change feed moves (RFC 8621 §1.5 for EmailDelivery).
MAIL_TYPES = ("Email", "Mailbox", "Thread", "EmailDelivery")
TYPES = tuple(STATE_READERS)
_ACCOUNT_DATA = {IdentityChanged: "Identity", SubmissionChanged: "EmailSubmission",
                 VacationChanged: "VacationResponse"}
MIN_PING = 1
MAX_PING = 300


def changed_types(batch: ChangeBatch) -> set[str]:
    """The JMAP data types whose state one batch of the change feed changed."""
    found: set[str] = set()
    for change in batch.changes:
        if isinstance(change, NewMessage):
            found.update(("Email", "Mailbox", "Thread"))
            if batch.origin is None:  # delivered, not stored by a client of ours
                found.add("EmailDelivery")
        elif isinstance(change, FlagsChanged):
            found.update(("Email", "Mailbox"))
        elif isinstance(change, Expunged):
            found.update(("Email", "Mailbox", "Thread"))
        elif isinstance(change, (MailboxCreated, MailboxRenamed, MailboxDeleted)):
            found.add("Mailbox")
            if isinstance(change, MailboxDeleted) or (isinstance(change, MailboxRenamed)
                                                      and change.emptied_id is not None):
                found.update(("Email", "Thread"))
        elif isinstance(change, (IdentityChanged, SubmissionChanged, VacationChanged)):
            found.add(_ACCOUNT_DATA[type(change)])
        elif isinstance(change, DavChanged):   # RFC 9610 / JMAP Calendars type names
            found.update(("AddressBook", "ContactCard") if change.kind == "addressbook"
                         else ("Calendar", "CalendarEvent"))
        elif isinstance(change, RemoteChange):  # another node's mail change
            found.update(MAIL_TYPES)
        elif isinstance(change, Resync):
            found.update(TYPES)
    return found


def _arguments(request: WebRequest) -> tuple[set[str], bool, int]:
    args: dict[bytes, list[bytes]] = request.args or {}

    def one(name: str, default: str) -> str:
        values = args.get(name.encode(), [])
        return values[0].decode("utf-8", "replace") if values else default

    types_text = one("types", "*").strip()
    types = set(TYPES) if types_text in ("*", "") else \
        {t.strip() for t in types_text.split(",") if t.strip()}
    closeafter = one("closeafter", "no")
    if closeafter not in ("state", "no"):
        raise RequestError("invalidArguments", "closeafter: must be state or no")
    ping_text = one("ping", "0")
    if not ping_text.isdigit() or len(ping_text) > 9:
        raise RequestError("invalidArguments", "ping: must be a non-negative integer "
                                               "(seconds)")
    ping = int(ping_text)
    if ping:
        ping = min(max(ping, MIN_PING), MAX_PING)
    return types, closeafter == "state", ping


class EventSourceRoute:
    def __init__(self, events: Any, clock: Any) -> None:
        self._events = events
        self._clock = clock
        self.streams: set[_Stream] = set()

    async def stream(self, request: WebRequest, caller: Caller) -> Any:
        types, close_after, ping = _arguments(request)
        stream = _Stream(self, request, caller, types, close_after, ping)
        await stream.start()
        return NOT_DONE_YET


class _Stream:
    def __init__(self, route: EventSourceRoute, request: WebRequest, caller: Caller,
                 types: set[str], close_after: bool, ping: int) -> None:
        self._route = route
        self._request = request
        self._caller = caller
        self._types = types
        self._close_after = close_after
        self._ping = ping
        self._states: Optional[dict[str, str]] = None  # the states last told, by type
        self._pending: set[str] = set()
        self._reading = False
        self._ended = False
        self._unsubscribe: Any = None
        self._pinger: Optional[task.LoopingCall] = None

    async def start(self) -> None:
        request = self._request
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Accel-Buffering", b"no")  # a proxy must not hold events back
        # Subscribe before reading the state, so no change falls between the two.
        self._unsubscribe = self._route._events.subscribe(self._caller.user.id, self._heard)
        request.notifyFinish().addBoth(self._finished)
        request.end_stream = self.end  # type: ignore[attr-defined]
        self._route.streams.add(self)
        if getattr(request.channel.site, "shutting_down", False):  # type: ignore[union-attr, attr-defined]
            self.end()   # shutdown began while this request was being authenticated
            return
        self._states = await type_states(self._caller.mail, self._types)
        if self._ended:
            return
        request.write(b": mailgosend push\n\n")  # headers out now: the client knows it is open
        if self._ping:
            self._pinger = task.LoopingCall(self._send_ping)
            self._pinger.clock = self._route._clock
            self._pinger.start(self._ping, now=False)
        if self._pending:
            self._schedule()

    def _heard(self, batch: ChangeBatch) -> None:
        wanted = changed_types(batch) & self._types
        if not wanted or self._ended:
            return
        self._pending |= wanted
        if self._states is not None:
            self._schedule()

    @property
    def started(self) -> bool:
        """The first states are read: every change from now on is heard."""
        return self._states is not None

    def _schedule(self) -> None:
        if not self._reading:
            self._reading = True
            Deferred.fromCoroutine(self._send_state()).addErrback(self._failed)

    async def _send_state(self) -> None:
        try:
            while self._pending and not self._ended:
                types, self._pending = self._pending, set()
                states = await type_states(self._caller.mail, types)
                assert self._states is not None
                moved = {t: s for t, s in states.items() if self._states.get(t) != s}
                if self._ended or not moved:
                    continue
                self._states.update(moved)
                changed = {self._caller.account_id: dict(sorted(moved.items()))}
                self._write("state", {"@type": "StateChange", "changed": changed})
                if self._close_after:
                    self.end()
        finally:
            self._reading = False

    def _send_ping(self) -> None:
        self._write("ping", {"interval": self._ping})

    def _write(self, event: str, data: dict[str, Any]) -> None:
        if self._ended:
            return
        payload = json.dumps(data, separators=(",", ":"))
        self._request.write(f"event: {event}\ndata: {payload}\n\n".encode())

    def _failed(self, failure: Any) -> None:
        log.error("jmap push: could not read the state ({kind}); closing the stream",
                  kind=failure.type.__name__)
        self.end()

    def end(self) -> None:
        """End the response (closeafter=state, shutdown, an error)."""
        if self._ended:
            return
        self._cleanup()
        request = self._request
        if not request.finished and not getattr(request, "_disconnected", False):
            request.finish()

    def _finished(self, _: Any) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        self._ended = True
        self._route.streams.discard(self)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
