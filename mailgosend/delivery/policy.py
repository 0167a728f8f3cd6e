"""Pure decisions of the queue worker: what a reply means for a recipient, when to try again,
which MX host to start with, and whether a DSN is due.  No reactor, no database.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from mailgosend.delivery.mx import Destinations, Host

# RFC 3463 §3.5: X.4.7 "delivery time expired".
EXPIRED_TEXT = "4.4.7 Delivery time expired: the message stayed in the queue too long"


@dataclass(frozen=True)
class RetryPolicy:
    steps_minutes: tuple[int, ...]     # QUEUE_RETRY_MINS; the last step repeats
    max_age: timedelta                 # QUEUE_MAX_AGE_HOURS
    jitter: float = 0.1                # ±10 %: retries of one outage do not arrive in step

    def delay(self, attempts: int, rand: random.Random) -> timedelta:
        """Wait after the ``attempts``-th failed attempt (1 = the first)."""
        index = min(max(attempts, 1), len(self.steps_minutes)) - 1
        minutes = self.steps_minutes[index] * (1 + rand.uniform(-self.jitter, self.jitter))
        return timedelta(minutes=minutes)


def decide(code: int, *, created_at: datetime, attempts_before: int, now: datetime,
           policy: RetryPolicy, rand: random.Random) -> tuple[str, Optional[datetime]]:
    """(status, next attempt) for one recipient after a reply ``code`` (RFC 5321 §4.2.1).

    2yz delivered; 5yz failed for good; anything else is temporary: deferred to the next
    retry step, or expired once the message is older than the maximum age — also when the
    next step would land past it, so the sender learns at the promised time, not a step late.
    """
    if 200 <= code < 300:
        return "delivered", None
    if 500 <= code < 600:
        return "failed", None
    due = now + policy.delay(attempts_before + 1, rand)
    if now - created_at >= policy.max_age:
        return "expired", None
    return "deferred", min(due, created_at + policy.max_age)


def ordered_attempts(destinations: Destinations,
                     last_mx: Optional[str]) -> list[tuple[Host, str]]:
    """Every (host, address) to try, starting after the host that deferred us last time.

    RFC 5321 §4.5.4.1 asks a client to try other MX hosts when one fails; a host that
    answered 4xx at the last attempt is moved to the end, not skipped.
    """
    attempts = list(destinations.attempts())
    if not last_mx or len(destinations.hosts) < 2:
        return attempts
    names = [h.name for h in destinations.hosts]
    if last_mx not in names:
        return attempts
    start = names.index(last_mx) + 1
    order = names[start:] + names[:start]
    rank = {name: i for i, name in enumerate(order)}
    return sorted(attempts, key=lambda pair: rank[pair[0].name])


def wants_failure_dsn(notify: Optional[str]) -> bool:
    """RFC 3461 §4.1: without NOTIFY a failure is reported; NOTIFY=NEVER or a list without
    FAILURE asks for silence."""
    if not notify:
        return True
    return "FAILURE" in {word.strip().upper() for word in notify.split(",")}


def wants_success_dsn(notify: Optional[str]) -> bool:
    """RFC 3461 §4.1: a success report only when NOTIFY lists SUCCESS."""
    return bool(notify) and "SUCCESS" in {w.strip().upper() for w in (notify or "").split(",")}


def wants_delay_dsn(notify: Optional[str]) -> bool:
    """RFC 3461 §4.1: DELAY must be asked for explicitly, or NOTIFY absent (then the MTA may
    decide; we send the warning, as Postfix does with delay_warning_time)."""
    if not notify:
        return True
    return "DELAY" in {word.strip().upper() for word in notify.split(",")}


def delay_warning_due(created_at: datetime, now: datetime, warned: bool,
                      hours: float) -> bool:
    return hours > 0 and not warned and now - created_at >= timedelta(hours=hours)


def reply_status(code: int, enhanced: Optional[str]) -> str:
    """An RFC 3463 status for the DSN: the server's own, or the class of its basic code."""
    if enhanced and enhanced[:1] in "245" and enhanced[0] == str(code)[0]:
        return enhanced
    return {2: "2.0.0", 4: "4.0.0", 5: "5.0.0"}.get(code // 100, "4.0.0")


def split_reply_text(text: str) -> tuple[int, Optional[str], str]:
    """``"550 5.1.2 No such domain"`` (our own failure texts, mx.py) → (550, "5.1.2", text)."""
    words = text.split(" ")
    code = 451
    if words and len(words[0]) == 3 and words[0].isdigit():
        code = int(words.pop(0))
    enhanced = None
    if words and words[0][:1] in "245" and words[0].count(".") == 2 and \
            all(p.isdigit() for p in words[0].split(".")):
        enhanced = words.pop(0)
    return code, enhanced, " ".join(words)
