# -*- test-case-name: tests.test_admin_dash_counters -*-
"""The server's counters (issue 14 items 1 and 12): what the dashboard charts and
Prometheus' ``/metrics`` show, kept as mail flows instead of counted from big tables.

Fed by the SMTP receive path (messages received, refusals by reason), the delivery worker
and bounces (attempts by result, per destination domain, bounces), the login checks
(logins by service and result) and the database runner (job latency).  Each ``add`` goes
two ways:

1. Into prometheus-client metrics in this server's own registry: process-lifetime
   counters, as Prometheus expects (it handles restarts).
2. Into hourly buckets (``counter_buckets``), flushed every FLUSH_SECONDS and at stop, so
   the dashboard's 24-hour and 30-day charts survive restarts; each node writes its own
   rows and the dashboard sums over nodes (PostgreSQL clusters, DESIGN.md §9).  The hour
   comes from the injected clock.

Gauges (queue depth and oldest message, storage per domain) are read from the small queue
and user tables by the same periodic job and cached (``gauges``); active connections and
certificate expiry are read from the listeners and the TLS contexts when asked.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Optional, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from mailgosend.store import counters as store

log = Logger()

FLUSH_SECONDS = 60
# Buckets of hours that ended this long ago are complete on every node (flushed).
SETTLED = timedelta(hours=1)
KEEP_DAYS = 35

# name -> (help, label names).  Prometheus exports ``mailgosend_<name>_total``.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "messages_received": ("Messages accepted by SMTP, per listener", ("listener",)),
    "messages_rejected": ("SMTP refusals of a connection, sender, recipient or message, "
                          "per reason", ("reason",)),
    "messages_sent": ("Recipients delivered to other servers", ()),
    "messages_bounced": ("Non-delivery reports (bounces) generated", ()),
    "delivery_attempts": ("Outbound delivery attempts per recipient, per result",
                          ("result",)),
    "delivery_domain_ok": ("Outbound recipients delivered, per destination domain",
                           ("domain",)),
    "delivery_domain_not_ok": ("Outbound attempts not delivered (deferred, failed, "
                               "expired), per destination domain", ("domain",)),
    "logins": ("Sign-in attempts, per service and result", ("service", "result")),
}
# Kept for the dashboard only, not exported to Prometheus: one label per destination
# domain would be an unbounded number of time series there.
DASHBOARD_ONLY = frozenset({"delivery_domain_ok", "delivery_domain_not_ok"})
# The dashboard's four message series.
MESSAGE_SERIES = ("messages_received", "messages_sent", "messages_bounced",
                  "messages_rejected")

# Enhanced status (RFC 3463) of a refusal -> the reason shown and exported.
REASONS = {
    "5.1.1": "unknown_recipient", "5.1.3": "bad_address", "5.1.7": "bad_address",
    "5.6.7": "bad_address", "5.7.1": "policy", "4.7.1": "greylisted",
    "4.7.0": "limits", "5.3.4": "too_large", "5.6.0": "malformed", "5.5.2": "malformed",
    "5.7.0": "authentication_required", "4.3.0": "temporary_failure",
    "4.5.3": "too_many_recipients", "4.3.2": "shutting_down",
}
REFUSAL_COMMANDS = ("CONNECT", "MAIL", "RCPT", "DATA", "BDAT", ".")


def rejection_reason(command: str, status: str) -> Optional[str]:
    """The reason for a refused SMTP command, or None for refusals that are not about mail
    (syntax errors, AUTH: counted as logins)."""
    verb = command.split(" ", 1)[0].upper()
    if verb not in REFUSAL_COMMANDS:
        return None
    if status.startswith("5.5.") and status not in REASONS:
        return None   # a command out of sequence or malformed: the client's, not mail's
    return REASONS.get(status, "other")


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


class CounterFeed:
    """What the feeding code calls; everything goes through ``add``."""

    def add(self, name: str, *labels: str, n: int = 1) -> None:
        raise NotImplementedError

    def refusal(self, command: str, status: str) -> None:
        reason = rejection_reason(command, status)
        if reason is not None:
            self.add("messages_rejected", reason)

    def delivery_outcomes(self, outcomes: Sequence[Any], bounces: int) -> None:
        """The delivery worker's results for one claim (queue Outcomes), and how many
        non-delivery reports they caused."""
        for outcome in outcomes:
            self.add("delivery_attempts", outcome.status)
            domain = outcome.recipient.rpartition("@")[2] or "-"
            if outcome.status == "delivered":
                self.add("messages_sent")
                self.add("delivery_domain_ok", domain)
            else:
                self.add("delivery_domain_not_ok", domain)
        if bounces:
            self.add("messages_bounced", n=bounces)


class NullCounters(CounterFeed):
    """Counts nothing: the default of components built without a server (tests, CLI)."""

    def add(self, name: str, *labels: str, n: int = 1) -> None:
        pass


NULL = NullCounters()


class _Gauges:
    """Exported at scrape time from the cached snapshot and the live sources."""

    def __init__(self, counters: "Counters") -> None:
        self._counters = counters

    def collect(self) -> Iterable[Any]:
        c = self._counters
        now = c.clock.seconds()
        g = c.gauges
        queue = GaugeMetricFamily("mailgosend_queue_messages", "Messages in the outbound queue")
        pending = GaugeMetricFamily("mailgosend_queue_pending_recipients",
                                    "Recipients waiting for delivery")
        oldest = GaugeMetricFamily("mailgosend_queue_oldest_age_seconds",
                                   "Age of the oldest queued message (0: empty)")
        if g is not None:
            queue.add_metric([], g.queued_messages)
            pending.add_metric([], g.pending_recipients)
            oldest.add_metric([], max(0.0, now - g.oldest.timestamp()) if g.oldest else 0.0)
        yield from (queue, pending, oldest)
        active = GaugeMetricFamily("mailgosend_connections_active",
                                   "Open connections on this node, per listener",
                                   labels=["protocol"])
        for protocol, count in sorted(c.active_connections().items()):
            active.add_metric([protocol], count)
        yield active
        expiry = GaugeMetricFamily("mailgosend_certificate_expiry_timestamp_seconds",
                                   "When each certificate in use expires (Unix time)",
                                   labels=["service", "name"])
        for cert in c.certificates():
            expiry.add_metric([cert["service"], cert["name"]],
                              cert["not_after"].timestamp())
        yield expiry


class Counters(CounterFeed, Service):
    def __init__(self, runner: Any, clock: Any, node: str = "",
                 flush_seconds: float = FLUSH_SECONDS) -> None:
        self.setName("counters")
        self.runner = runner
        self.clock = clock
        self.node = node[:64]
        self.flush_seconds = flush_seconds
        self.registry = CollectorRegistry(auto_describe=True)
        self._metrics = {name: Counter(f"mailgosend_{name}", text, list(labels),
                                       registry=self.registry)
                         for name, (text, labels) in COUNTERS.items()
                         if name not in DASHBOARD_ONLY}
        self.db_latency = Histogram(
            "mailgosend_db_job_seconds", "Database jobs, submission to result",
            ["kind"], registry=self.registry,
            buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self._pending: dict[tuple[datetime, str, str], int] = defaultdict(int)
        self._in_flight: dict[tuple[datetime, str, str], int] = {}
        self._loop: Optional[task.LoopingCall] = None
        # (names, group, since) -> (settled-before hour, its buckets): see recent_history.
        self._settled: dict[tuple[tuple[str, ...], str, datetime],
                            tuple[datetime, dict[tuple[datetime, str, str], int]]] = {}
        self._flushing: Optional[defer.Deferred[Any]] = None
        self.gauges: Optional[store.Gauges] = None
        self._gauges_at = 0.0
        # Set by the service wiring: {protocol: open connections}, [certificate dicts].
        self.active_connections: Callable[[], dict[str, int]] = dict
        self.certificates: Callable[[], list[dict[str, Any]]] = list
        self.registry.register(_Gauges(self))

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    # --- feeding (reactor thread) ------------------------------------------------------
    def add(self, name: str, *labels: str, n: int = 1) -> None:
        _help, names = COUNTERS[name]
        values = tuple(str(v)[:80].lower() for v in labels)
        if len(values) != len(names):
            raise ValueError(f"counter {name} takes labels {names}")
        metric = self._metrics.get(name)
        if metric is not None:
            (metric.labels(*values) if values else metric).inc(n)
        self._pending[(hour_of(self.now()), name, "/".join(values))] += n

    def observe_db(self, kind: str, seconds: float) -> None:
        self.db_latency.labels(kind).observe(seconds)

    # --- service -------------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = self.clock
        self._loop.start(self.flush_seconds, now=True).addErrback(
            lambda f: log.failure("counters: the periodic job stopped", f))

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        yield self.flush()

    @defer.inlineCallbacks
    def tick(self) -> Any:
        """Every FLUSH_SECONDS: write the buckets, refresh the gauges, drop old buckets."""
        try:
            yield self.flush()
            yield self.refresh_gauges()
        except Exception as exc:  # keep counting; the next tick tries again
            log.warn("counters: could not update the database: {error}", error=exc)

    @defer.inlineCallbacks
    def refresh_gauges(self, max_age: float = 0.0) -> Any:
        """Re-read the queue and storage gauges unless the cached ones are younger than
        ``max_age`` seconds (the dashboard: at most one read per few seconds)."""
        now = self.clock.seconds()
        if self.gauges is None or now - self._gauges_at >= max_age:
            self.gauges = yield self.runner.read(store.gauges)
            self._gauges_at = now
        return self.gauges

    @defer.inlineCallbacks
    def flush(self) -> Any:
        """Write what was counted since the last flush; one flush at a time per node."""
        if self._flushing is not None:
            yield self._flushing
        if not self._pending:
            return None
        batch, self._pending = dict(self._pending), defaultdict(int)
        self._in_flight = batch
        items = [(hour, name, label, n) for (hour, name, label), n in batch.items()]
        cutoff = hour_of(self.now()) - timedelta(days=KEEP_DAYS)

        def write(conn: Any) -> None:
            store.add_counts(conn, self.node, items)
            store.purge_before(conn, cutoff)
        self._flushing = self.runner.write(write)
        try:
            yield self._flushing
        except Exception:
            for key, n in batch.items():   # counted again at the next flush
                self._pending[key] += n
            raise
        finally:
            self._flushing = None
            self._in_flight = {}
        return None

    # --- reading (the dashboard) ---------------------------------------------------------
    @defer.inlineCallbacks
    def history(self, names: Sequence[str], since: datetime, group: str = "all") -> Any:
        """Buckets of ``names`` from ``since`` (all nodes, grouped as store.buckets), with
        what this node counted and has not written yet: {(hour, name, label): value}."""
        rows = yield self.runner.read(store.buckets, list(names), since, group)
        found: dict[tuple[datetime, str, str], int] = defaultdict(int)
        for row in rows:
            found[(row.hour, row.name, row.label)] += row.value
        for source in (self._in_flight, self._pending):
            for (hour, name, label), n in list(source.items()):
                if name in names and hour >= since:
                    key = (since if group == "label" else hour, name,
                           "" if group == "hour" else label)
                    found[key] += n
        return dict(found)

    @defer.inlineCallbacks
    def recent_history(self, names: Sequence[str], since: datetime,
                       group: str = "hour") -> Any:
        """As ``history``, for views repeated often (the dashboard): the buckets of hours
        that ended more than SETTLED ago no longer change (every node has flushed them),
        so they are read once an hour; each call reads only the last hours.  ``group`` is
        "hour" (per hour, labels summed) or "label" (per label, hours summed)."""
        now = self.now()
        settled = hour_of(now) - SETTLED
        key = (tuple(names), group, since)
        cached = self._settled.get(key)
        if cached is None or cached[0] != settled:
            every = yield self.history(names, since, "all")
            old = {k: v for k, v in every.items() if k[0] < settled}
            self._settled = {k: v for k, v in self._settled.items() if k[2] >= since}
            self._settled[key] = cached = (settled, old)
        fresh = yield self.history(names, max(since, settled), "all")
        found: dict[tuple[datetime, str, str], int] = defaultdict(int)
        for source in (cached[1], fresh):
            for (hour, name, label), value in source.items():
                found[(since if group == "label" else hour, name,
                       "" if group == "hour" else label)] += value
        return dict(found)
