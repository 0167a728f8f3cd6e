# -*- test-case-name: tests.test_jmap_submission -*-
"""EmailSubmission/get|changes|query|queryChanges|set (RFC 8621 §7).

Sending goes through the same rules and path as SMTP submission on port 587
(mail/submission.py: the From: and envelope sender must be the user's, ``forbiddenFrom``
/ ``forbiddenMailFrom`` otherwise; local recipients get their copy, the others the outbound
queue's, which the queue worker DKIM-signs).  The envelope defaults to the identity's
address and the To/Cc/Bcc addresses (§7: ``envelope`` null); Bcc: is removed from what is
sent.

Undo: with ``SUBMISSION_UNDO_SECONDS`` > 0 a submission is held (``undoStatus`` pending)
that long, and ``update {undoStatus: "canceled"}`` cancels it while it is; the release
(``release``) flips pending -> final in one conditional UPDATE before sending, so a
submission is never both sent and canceled.  ``onSuccessUpdateEmail`` and
``onSuccessDestroyEmail`` run an Email/set whose response follows this one (RFC 8620 §5.4).

Send later: ``envelope.mailFrom.parameters`` HOLDFOR/HOLDUNTIL (RFC 4865, checked by the
one rule of mail/submission.py ``release_time``, up to ``maxDelayedSend`` =
FUTURE_RELEASE_MAX_DAYS) hold the submission the same way, pending until ``sendAt``: the
same cancel and the same release, by the timer or by the ``Releaser`` after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional
from weakref import WeakKeyDictionary

from twisted.application.service import Service as TwistedService
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from mailgosend.jmap import email_set
from mailgosend.jmap.errors import MethodError, SetError, invalid_arguments
from mailgosend.jmap.headers import HeaderProperty, fields, utc_date
from mailgosend.jmap.identity import parse_state
from mailgosend.jmap.ids import format_id, parse_id
from mailgosend.jmap.methods import (SUBMISSION, Call, Method, account_of, argument,
                                     resolve_id)
from mailgosend.jmap.standard import get_ids, get_properties
from mailgosend.jmap.state import data_state, submission_state
from mailgosend.mail.accountdata import SUBMISSIONS, Submission
from mailgosend.mail.submission import (HOLD_PARAMETERS, ReleaseRefused, SubmissionRefused,
                                        check, release_time, submit, without_bcc)
from mailgosend.store.accounts import User

__all__ = ["METHODS", "SubmissionSettings", "Releaser", "capabilities", "release"]

log = Logger()

# the timers of held submissions, by mail service: its Releaser cancels them when it stops
# (a restarted service must not be reached by its predecessor's timers)
_TIMERS: "WeakKeyDictionary[Any, set[Any]]" = WeakKeyDictionary()

PROPERTIES = ("id", "identityId", "emailId", "threadId", "envelope", "sendAt", "undoStatus",
              "deliveryStatus", "dsnBlobIds", "mdnBlobIds")


@dataclass(frozen=True)
class SubmissionSettings:
    """``Services.extra["submission"]``: how long a submission is held for undo, and how far
    ahead it may be held for send later."""

    undo_seconds: int = 0
    hostname: Optional[str] = None  # HOSTNAME: a missing Message-ID's right side
    max_delay_seconds: int = 0  # send later's limit (FUTURE_RELEASE_MAX_DAYS); 0: off


def capabilities(settings: SubmissionSettings) -> dict[str, Any]:
    """The submission account capability's send-later part (RFC 8621 §7: maxDelayedSend,
    and submissionExtensions naming FUTURERELEASE with its interval; its date argument
    is left out, as it would change the Session object every second)."""
    if settings.max_delay_seconds <= 0:
        return {"maxDelayedSend": 0, "submissionExtensions": {}}
    return {"maxDelayedSend": settings.max_delay_seconds,
            "submissionExtensions": {"FUTURERELEASE": [str(settings.max_delay_seconds)]}}


def _settings(call: Call) -> SubmissionSettings:
    services = getattr(call.context, "services", None)
    extra = getattr(services, "extra", None) or {}
    found = extra.get("submission")
    return found if isinstance(found, SubmissionSettings) else SubmissionSettings()


async def _state(call: Call) -> str:
    return await submission_state(call.mail)


# RFC 8621 §7 deliveryStatus.delivered from a queue or delivery-log status.
_DELIVERED = {"queued": "queued", "delivering": "queued", "delivered": "yes",
              "failed": "no", "expired": "no", "deleted": "no"}


async def _json(call: Call, item: Submission) -> dict[str, Any]:
    row = item.row
    envelope = item.envelope["envelope"]
    status: Optional[dict[str, Any]] = None
    if row.undo_status == "final":
        queued = {}
        if row.queue_id is not None:
            for r in await call.mail.account_data.delivery_status(row.queue_id):
                queued[r.recipient.lower()] = r
        status = {}
        for rcpt in envelope["rcptTo"]:
            found = queued.get(rcpt["email"].lower())
            if found is None:  # a local recipient: filed at once
                status[rcpt["email"]] = {"smtpReply": "250 2.0.0 delivered locally",
                                         "delivered": "yes", "displayed": "unknown"}
            else:
                reply = (f"{found.code} {found.text or ''}".strip() if found.code
                         else "250 2.0.0 queued")
                status[rcpt["email"]] = {"smtpReply": reply,
                                         "delivered": _DELIVERED.get(found.status, "unknown"),
                                         "displayed": "unknown"}
    return {"id": format_id("S", row.id), "identityId": format_id("I", row.identity_id),
            "emailId": format_id("M", row.email_id), "threadId": format_id("T", row.thread_id),
            "envelope": envelope, "sendAt": utc_date(row.send_at),
            "undoStatus": row.undo_status, "deliveryStatus": status, "dsnBlobIds": [],
            "mdnBlobIds": []}


async def get_submissions(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    account_of(call, args)
    ids = get_ids(call, args)
    props = get_properties(args, PROPERTIES)
    items = {format_id("S", s.row.id): s for s in await call.mail.account_data.submissions()}
    wanted = list(items) if ids is None else ids
    found, not_found = [], []
    for given in wanted:
        real = resolve_id(call, given) if isinstance(given, str) else None
        item = items.get(real) if real else None
        if item is None:
            not_found.append(given)
            continue
        full = await _json(call, item)
        found.append({p: full[p] for p in props})
    return {"accountId": call.account_id, "state": await _state(call), "list": found,
            "notFound": not_found}


async def submission_changes(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    account_of(call, args)
    since = parse_state("sinceState", args.get("sinceState"))
    changes, state = await call.mail.account_data.changes(SUBMISSIONS, since)
    if since > state:
        raise MethodError("cannotCalculateChanges", "sinceState: not a state this server gave")
    return {"accountId": call.account_id, "oldState": data_state(since),
            "newState": data_state(state),
            "hasMoreChanges": False,
            "created": [format_id("S", i) for i in changes.created],
            "updated": [format_id("S", i) for i in changes.updated],
            "destroyed": [format_id("S", i) for i in changes.destroyed]}


_FILTERS = ("identityIds", "emailIds", "threadIds", "undoStatus", "before", "after")
_SORTS = {"emailId": lambda s: s.row.email_id, "threadId": lambda s: s.row.thread_id,
          "sentAt": lambda s: s.row.send_at}


def _matches(item: Submission, condition: dict[str, Any]) -> bool:
    row = item.row
    for key, value in condition.items():
        if key in ("identityIds", "emailIds", "threadIds"):
            prefix, own = {"identityIds": ("I", row.identity_id),
                           "emailIds": ("M", row.email_id),
                           "threadIds": ("T", row.thread_id)}[key]
            if format_id(prefix, own) not in value:
                return False
        elif key == "undoStatus" and row.undo_status != value:
            return False
        elif key in ("before", "after"):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if key == "before" and not row.send_at < moment:
                return False
            if key == "after" and not row.send_at >= moment:
                return False
    return True


def _check_filter(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_arguments("filter", "must be a FilterCondition object")
    for key, item in value.items():
        if key not in _FILTERS:
            raise MethodError("unsupportedFilter", f"filter: unknown condition {key!r}")
        if key in ("identityIds", "emailIds", "threadIds") and not (
                isinstance(item, list) and all(isinstance(i, str) for i in item)):
            raise invalid_arguments("filter", f"{key} must be a list of ids")
        if key == "undoStatus" and item not in ("pending", "final", "canceled"):
            raise invalid_arguments("filter", "undoStatus must be pending, final or canceled")
        if key in ("before", "after"):
            try:
                datetime.fromisoformat(str(item).replace("Z", "+00:00"))
            except ValueError:
                raise invalid_arguments("filter", f"{key} must be a UTCDate") from None
    return value


async def query_submissions(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    account_of(call, args)
    condition = _check_filter(args.get("filter"))
    sort = argument(args, "sort", list, None) or []
    position = argument(args, "position", int, 0)
    limit = argument(args, "limit", int, None)
    if limit is not None and limit < 0:
        raise invalid_arguments("limit", "must not be negative")
    items = [s for s in await call.mail.account_data.submissions() if _matches(s, condition)]
    items.sort(key=lambda s: s.row.id)
    for comparator in reversed(sort):
        if not isinstance(comparator, dict) or comparator.get("property") not in _SORTS:
            raise MethodError("unsupportedSort", "sort: emailId, threadId or sentAt")
        items.sort(key=_SORTS[comparator["property"]],  # type: ignore[arg-type]
                   reverse=comparator.get("isAscending", True) is False)
    total = len(items)
    if position < 0:
        position = max(0, total + position)
    window = items[position:] if limit is None else items[position:position + limit]
    return {"accountId": call.account_id, "queryState": await _state(call),
            "canCalculateChanges": False, "position": position,
            "ids": [format_id("S", s.row.id) for s in window], "total": total,
            **({"limit": limit} if limit is not None else {})}


async def query_changes(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    account_of(call, args)
    raise MethodError("cannotCalculateChanges", "query the submissions again")


def _envelope(call: Call, value: Any, header_fields: list[tuple[str, str]],
              identity_email: str) -> dict[str, Any]:
    """The given envelope, checked, or the one §7 derives from the message."""
    if value is not None:
        if not isinstance(value, dict) or not isinstance(value.get("mailFrom"), dict) or \
                not isinstance(value.get("rcptTo"), list):
            raise SetError("invalidProperties", "envelope: {mailFrom, rcptTo} required",
                           properties=["envelope"])
        for address in [value["mailFrom"], *value["rcptTo"]]:
            if not isinstance(address, dict) or not isinstance(address.get("email"), str):
                raise SetError("invalidProperties", "envelope: addresses need an email",
                               properties=["envelope"])
        given = value["mailFrom"].get("parameters")
        if given is not None and not (isinstance(given, dict) and all(
                isinstance(v, (str, type(None))) for v in given.values())):
            raise SetError("invalidProperties", "envelope: mailFrom parameters must map "
                                                "names to strings or null",
                           properties=["envelope"])
        # RFC 8621 §7: the send-later parameters are kept (the others are not used)
        hold = {k.upper(): v for k, v in (given or {}).items()
                if k.upper() in HOLD_PARAMETERS}
        return {"mailFrom": {"email": value["mailFrom"]["email"],
                             "parameters": hold or None},
                "rcptTo": [{"email": a["email"], "parameters": None}
                           for a in value["rcptTo"]]}
    sender = HeaderProperty.of("header:Sender:asAddresses")
    author = HeaderProperty.of("header:From:asAddresses")
    assert sender is not None and author is not None
    mail_from = (sender.value(header_fields) or author.value(header_fields)
                 or [{"email": identity_email}])[0]["email"]
    rcpt: list[str] = []
    for name in ("To", "Cc", "Bcc"):
        prop = HeaderProperty.of(f"header:{name}:asAddresses:all")
        assert prop is not None
        for group in prop.value(header_fields):
            for address in group or []:
                if address["email"].lower() not in [r.lower() for r in rcpt]:
                    rcpt.append(address["email"])
    return {"mailFrom": {"email": mail_from, "parameters": None},
            "rcptTo": [{"email": r, "parameters": None} for r in rcpt]}


async def _create(call: Call, obj: Any, identities: dict[str, Any]) -> int:
    if not isinstance(obj, dict):
        raise SetError("invalidProperties", "an EmailSubmission object is required")
    unknown = set(obj) - {"identityId", "emailId", "envelope"}
    if unknown:
        prop = sorted(unknown)[0]
        raise SetError("invalidProperties", f"{prop}: cannot be set", properties=[prop])
    identity_id = resolve_id(call, obj.get("identityId") or "") if isinstance(
        obj.get("identityId"), str) else None
    identity = identities.get(identity_id) if identity_id else None
    if identity is None:
        raise SetError("invalidProperties", "identityId: no such identity",
                       properties=["identityId"])
    email_id = resolve_id(call, obj["emailId"]) if isinstance(obj.get("emailId"), str) else None
    number = parse_id("M", email_id) if email_id else None
    records = await call.mail.email_records([number], raw=True) if number is not None else {}
    record = records.get(number) if number is not None else None
    if record is None or record.raw is None:
        raise SetError("invalidProperties", "emailId: no such email", properties=["emailId"])
    root = record.info.root
    envelope = _envelope(call, obj.get("envelope"),
                         fields(record.raw[root.header_start:root.body_start]), identity.email)
    sender = envelope["mailFrom"]["email"]
    recipients = [r["email"] for r in envelope["rcptTo"]]
    raw = without_bcc(record.raw)
    mail = call.mail
    service = mail.service
    now = service.now()
    settings = _settings(call)
    try:
        release = release_time(envelope["mailFrom"]["parameters"] or {}, now,
                               settings.max_delay_seconds)
    except ReleaseRefused as refused:
        raise SetError("invalidProperties", f"envelope: {refused.detail}",
                       properties=["envelope"]) from None
    send_at = now + timedelta(seconds=settings.undo_seconds)
    if release is not None and release > send_at:
        send_at = release
    # held for undo or until its release time: both the same pending submission
    hold = (send_at - now).total_seconds()
    queue_id = None
    try:
        if hold > 0:
            await check(service, mail.user, raw, sender, recipients)
        else:
            queue_id = (await submit(service, mail.user, raw, sender, recipients, now,
                                     hostname=_settings(call).hostname)).queue_id
    except SubmissionRefused as refused:
        extra = {"invalidRecipients": refused.addresses} if refused.kind == \
            "invalidRecipients" else {}
        raise SetError(refused.kind, refused.detail, **extra) from None
    thread = record.thread_id
    new_id: int = await mail.account_data.add_submission(
        identity_id=identity.id, email_id=record.number, thread_id=thread,
        envelope={"envelope": envelope, "blob": record.row.blob_id}, send_at=send_at,
        undo_status="pending" if hold > 0 else "final", queue_id=queue_id)
    if hold > 0:
        clock = service.clock
        timers = _TIMERS.setdefault(service, set())
        timers.difference_update([t for t in timers if not t.active()])
        timers.add(clock.callLater(hold, _release_later, service, mail.user, new_id,
                                   _settings(call).hostname))
    return new_id


def _release_later(service: Any, user: User, submission_id: int,
                   hostname: Optional[str]) -> None:
    Deferred.fromCoroutine(release(service, user, submission_id, hostname)).addErrback(
        lambda f: log.failure("held submission {id} not sent", f, id=submission_id))


async def release(service: Any, user: User, submission_id: int,
                  hostname: Optional[str] = None) -> bool:
    """Send a held submission whose undo window is over; False when it was canceled (or
    already sent) meanwhile.  The pending -> final change comes first: whoever changes the
    status first wins, so a canceled submission is never sent."""
    data = service.for_user(user).account_data
    items = await data.submissions([submission_id])
    if not items or items[0].row.undo_status != "pending":
        return False
    item = items[0]
    if not await data.set_submission_status(submission_id, "pending", "final"):
        return False
    reader = await service.for_user(user).open_blob(item.envelope["blob"])
    try:
        raw = await service.workers.run(reader.read_range, 0, reader.size)
    finally:
        reader.close()
    envelope = item.envelope["envelope"]
    try:
        sent = await submit(service, user, without_bcc(raw), envelope["mailFrom"]["email"],
                            [r["email"] for r in envelope["rcptTo"]], service.now(),
                            hostname=hostname)
    except SubmissionRefused as refused:  # the rules changed during the window
        log.warn("held submission {id} refused: {why}", id=submission_id, why=refused.kind)
        return False
    if sent.queue_id is not None:
        await data.set_submission_status(submission_id, "final", "final", sent.queue_id)
    return True


class Releaser(TwistedService):
    """Sends held submissions whose window is over, every ``interval`` seconds: those
    whose timer was lost in a restart (the timer set at creation sends the others)."""

    def __init__(self, service: Any, clock: Any, interval: float = 5.0,
                 hostname: Optional[str] = None) -> None:
        self.service = service
        self.hostname = hostname
        self.loop = LoopingCall(self._tick)
        self.loop.clock = clock
        self.interval = interval

    def startService(self) -> None:
        super().startService()
        self.loop.start(self.interval, now=True).addErrback(
            lambda f: log.failure("submission releaser stopped", f))

    def stopService(self) -> Any:
        if self.loop.running:
            self.loop.stop()
        for timer in _TIMERS.pop(self.service, set()):
            if timer.active():
                timer.cancel()
        return super().stopService()

    async def _release_due(self) -> None:
        for user, row_id in await self.service.due_submissions():
            await release(self.service, user, row_id, self.hostname)

    def _tick(self) -> Any:
            return Deferred.fromCoroutine(self._release_due()).addErrback(
            lambda f: log.failure("releasing held submissions failed", f))


async def set_submissions(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    account_of(call, args)
    create = argument(args, "create", dict, None) or {}
    update = argument(args, "update", dict, None) or {}
    destroy = argument(args, "destroy", list, None) or []
    on_update = argument(args, "onSuccessUpdateEmail", dict, None) or {}
    on_destroy = argument(args, "onSuccessDestroyEmail", list, None) or []
    if len(create) + len(update) + len(destroy) > call.limits.max_objects_in_set:
        raise MethodError("requestTooLarge", "too many objects")
    data = call.mail.account_data
    old_state = await _state(call)
    wanted_state = argument(args, "ifInState", str, None)
    if wanted_state is not None and wanted_state != old_state:
        raise MethodError("stateMismatch", "ifInState: the EmailSubmission state is "
                                           + old_state)
    identities = {format_id("I", i.id): i for i in await data.identities()}
    response: dict[str, Any] = {"accountId": call.account_id, "oldState": old_state}
    created: dict[str, Any] = {}
    not_created: dict[str, Any] = {}
    email_of: dict[str, str] = {}  # submission id -> its email id, for onSuccess*
    for creation_id, obj in create.items():
        try:
            new_id = await _create(call, obj, identities)
        except SetError as error:
            not_created[creation_id] = error.response()
            continue
        sid = format_id("S", new_id)
        [item] = await data.submissions([new_id])
        full = await _json(call, item)
        created[creation_id] = {k: full[k] for k in ("id", "threadId", "sendAt",
                                                     "undoStatus")}
        call.created[creation_id] = sid
        email_of[sid] = full["emailId"]
        email_of["#" + creation_id] = full["emailId"]
    existing = {format_id("S", s.row.id): s for s in await data.submissions()}
    updated: dict[str, Any] = {}
    not_updated: dict[str, Any] = {}
    for given, patch in update.items():
        real = resolve_id(call, given)
        item = existing.get(real) if real else None
        if item is None:
            not_updated[given] = SetError("notFound", "no such submission").response()
            continue
        if not isinstance(patch, dict) or set(patch) - {"undoStatus"}:
            prop = sorted(set(patch) - {"undoStatus"})[0] if isinstance(patch, dict) else ""
            not_updated[given] = SetError("invalidProperties", f"{prop}: cannot be changed",
                                          properties=[prop]).response()
            continue
        if "undoStatus" not in patch:
            updated[given] = None
            continue
        if patch["undoStatus"] != "canceled":
            not_updated[given] = SetError("invalidProperties", "undoStatus: only "
                                          "\"canceled\" can be set",
                                          properties=["undoStatus"]).response()
            continue
        if not await data.set_submission_status(item.row.id, "pending", "canceled"):
            not_updated[given] = SetError("cannotUnsend", "the message was already "
                                                          "sent").response()
            continue
        updated[given] = None
        email_of[real] = format_id("M", item.row.email_id)  # type: ignore[index]
    destroyed: list[str] = []
    not_destroyed: dict[str, Any] = {}
    for given in destroy:
        real = resolve_id(call, given) if isinstance(given, str) else None
        number = parse_id("S", real) if real else None
        if number is None or real not in existing or not await data.destroy(SUBMISSIONS,
                                                                             number):
            not_destroyed[given] = SetError("notFound", "no such submission").response()
        else:
            destroyed.append(given)
    response.update({"newState": await _state(call), "created": created or None,
                     "updated": updated or None, "destroyed": destroyed or None,
                     "notCreated": not_created or None, "notUpdated": not_updated or None,
                     "notDestroyed": not_destroyed or None})
    # RFC 8621 §7.5: the implicit Email/set for the submissions that succeeded
    succeeded = {**{"#" + c: email_of["#" + c] for c in created},
                 **{k: v for k, v in email_of.items() if not k.startswith("#")}}
    email_update = {succeeded[key]: patch for key, patch in on_update.items()
                    if key in succeeded}
    email_destroy = [succeeded[key] for key in on_destroy
                     if isinstance(key, str) and key in succeeded]
    if email_update or email_destroy:
        result = await email_set.set_emails(call, {"accountId": call.account_id,
                                                   "update": email_update,
                                                   "destroy": email_destroy})
        call.also("Email/set", result)
    return response


METHODS = {"EmailSubmission/get": Method(SUBMISSION, get_submissions),
           "EmailSubmission/changes": Method(SUBMISSION, submission_changes),
           "EmailSubmission/query": Method(SUBMISSION, query_submissions),
           "EmailSubmission/queryChanges": Method(SUBMISSION, query_changes),
           "EmailSubmission/set": Method(SUBMISSION, set_submissions)}
