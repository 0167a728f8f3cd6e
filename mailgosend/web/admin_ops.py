# -*- test-case-name: tests.test_admin_ops_pages -*-
"""What the operations pages of the admin panel share (domains, users, aliases, queue,
delivery log, security: web/admin_domains.py, admin_users.py, admin_queue.py,
admin_security.py): one way to make a change and record it in the audit log in the same
transaction, one way to show a refusal beside its field, and the form fields they read.

A change runs as one ``runner.write`` job: the operation (AccountAdmin, store/queue.py,
store/security.py: the same ones the CLI calls), then ``audit.record``; a refusal raises
before anything is written, so nothing is audited as done that was not.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

from klein import Klein
from twisted.internet import defer
from twisted.python.failure import Failure

from mailgosend import audit
from mailgosend.admin import Actor, NotPermitted
from mailgosend.store.accounts import AccountError
from mailgosend.store.accounts import UnknownDomain, UnknownUser
from mailgosend.store.queue import NoSuchEntry
from mailgosend.web.admin_guard import AdminGroup, install_error_pages
from mailgosend.web.forms import form_field
from mailgosend.web.replies import see_other, sentence
from mailgosend.web.request import WebRequest

__all__ = ["OpsGroup", "field_error", "install_ops_error_pages", "parse_when"]

PAGE_SIZE = 50


def field_error(exc: Exception) -> dict[str, str]:
    """``{"field": name, "error": text}`` for a refusal (AccountError names its field).
    An action outside the actor's rights is no form error: NotPermitted goes on up, to the
    403 page."""
    if isinstance(exc, NotPermitted):
        raise exc
    return {"field": getattr(exc, "argument", "") or "", "error": sentence(exc)}


def parse_when(text: str, field: str) -> Optional[datetime]:
    """A date (``2026-12-05``) or date and time (``2026-12-05T14:30``) in UTC, or None."""
    text = text.strip()
    if not text:
        return None
    for pattern in ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise AccountError(f"{field}: {text!r} is not a date such as 2026-12-05 or "
                       "2026-12-05T14:30 (UTC)", field)


def parse_hours(text: str, field: str, *, maximum: float = 24 * 365) -> timedelta:
    try:
        hours = float(text)
    except ValueError:
        raise AccountError(f"{field}: {text!r} is not a number of hours", field) from None
    if not 0 < hours <= maximum:
        raise AccountError(f"{field}: must be more than 0 and at most {maximum:g} hours",
                           field)
    return timedelta(hours=hours)


class OpsGroup(AdminGroup):
    """An admin page group that changes things."""

    @property
    def runner(self) -> Any:
        return self.panel.runner

    @property
    def admin(self) -> Any:
        return self.panel.admin

    def field(self, request: WebRequest, name: str) -> str:
        return form_field(request, name).strip()

    def change(self, request: WebRequest, actor: Actor, action: str, target: str,
               operation: Callable[..., Any], *args: Any, domain: Optional[str] = None,
               detail: "str | Callable[[Any], str]" = "", **kwargs: Any) -> "defer.Deferred[Any]":
        """Run ``operation(conn, *args, **kwargs)`` and record the action, in one write
        transaction; fires with the operation's result, or fails with its refusal."""
        at = self.panel.now()

        def job(conn: Any) -> Any:
            result = operation(conn, *args, **kwargs)
            text = detail(result) if callable(detail) else detail
            audit.record(conn, actor=actor.email, action=action, target=target,
                         ip=request.client_ip, at=at, detail=text, domain=domain)
            return result
        return self.runner.write(job)  # type: ignore[no-any-return]

    def back(self, request: WebRequest, location: str) -> bytes:
        return see_other(request, location)

    def wake_delivery(self) -> None:
        """Queued mail made due now is looked at at once, not at the next poll."""
        worker = self.panel.components.get("delivery")
        if worker is not None:
            worker.wake()


def _not_found(self: OpsGroup, request: WebRequest, failure: Failure) -> Any:
    request.setResponseCode(404)
    what = failure.value
    message = (f"There is no queued message {what.args[0]}: it was delivered, bounced or "
               "deleted meanwhile." if isinstance(what, NoSuchEntry) else sentence(what))
    return self.panel.pages.render(request, "error.html", request.web_session,
                                   title="Page not found", message=message)


def install_ops_error_pages(app: Klein) -> None:
    """404 for an unknown domain, user or queue entry in the path; then the panel's own."""
    app.handle_errors(UnknownDomain, UnknownUser, NoSuchEntry)(_not_found)  # type: ignore[arg-type]
    install_error_pages(app)
