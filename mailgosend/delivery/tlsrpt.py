# -*- test-case-name: tests.test_tlsrpt -*-
"""The daily TLS report (RFC 8460) of our outbound TLS results.

Once an hour the reporter looks for counters of finished UTC days (store/mtasts.py, written
by the queue worker through delivery/mtasts.py).  For each policy domain it reads TXT
``_smtp._tls.<domain>`` (RFC 8460 §3); a domain without one gets no report and its counters
are dropped.  The report (§4.4 JSON, gzip) goes to each ``rua``: a ``mailto:`` through the
outbound queue as a multipart/report message (§5.3; the queue worker DKIM-signs it like any
mail from our domains), an ``https:`` URI by POST (§5.4).  A domain's counters are deleted
in the transaction that queues its report, so a report is sent once even with several nodes
or a crash in between.  A DNS failure leaves the counters for the next hour.
"""

from __future__ import annotations

import gzip
import json
import secrets
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid
from typing import Any, Optional, Sequence
from urllib.parse import unquote, urlsplit

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from mailgosend.delivery.https import HTTPSClient, HTTPSError
from mailgosend.delivery.mx import txt_records
from mailgosend.events import QueueChanged
from mailgosend.mail.delivery import Envelope
from mailgosend.mtasts import parse_tlsrpt_record
from mailgosend.store import mtasts as store
from mailgosend.store.queue import QUEUE_OWNER

log = Logger()

__all__ = ["TLSReporter", "build_report", "report_message"]

CHECK_SECONDS = 3600.0
MEDIA_TYPE = "application/tlsrpt+gzip"   # RFC 8460 §6.4


def _day_range(day: str) -> tuple[datetime, datetime]:
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    return start, start + timedelta(days=1) - timedelta(seconds=1)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(*, day: str, domain: str, counts: Sequence[store.TLSCount],
                 organization: str, contact: str, report_id: str) -> dict[str, Any]:
    """The RFC 8460 §4.4 report of one policy domain for one UTC day."""
    start, end = _day_range(day)
    groups: dict[tuple[str, tuple[str, ...]], list[store.TLSCount]] = defaultdict(list)
    for count in counts:
        groups[(count.policy_type, count.policy)].append(count)
    policies = []
    for (policy_type, lines), members in groups.items():
        policy: dict[str, Any] = {"policy-type": policy_type, "policy-domain": domain}
        if lines:
            policy["policy-string"] = list(lines)
            mx = [line.split(":", 1)[1].strip() for line in lines
                  if line.lower().startswith("mx:")]
            if mx:
                policy["mx-host"] = mx
        ok = sum(c.count for c in members if c.result_type == "success")
        failed = [c for c in members if c.result_type != "success"]
        entry: dict[str, Any] = {
            "policy": policy,
            "summary": {"total-successful-session-count": ok,
                        "total-failure-session-count": sum(c.count for c in failed)},
        }
        if failed:
            details = []
            for c in failed:
                detail: dict[str, Any] = {"result-type": c.result_type,
                                          "failed-session-count": c.count}
                if c.mx_host:
                    detail["receiving-mx-hostname"] = c.mx_host
                details.append(detail)
            entry["failure-details"] = details
        policies.append(entry)
    return {
        "organization-name": organization,
        "date-range": {"start-datetime": _stamp(start), "end-datetime": _stamp(end)},
        "contact-info": contact,
        "report-id": report_id,
        "policies": policies,
    }


def report_message(*, report: dict[str, Any], domain: str, submitter: str, sender: str,
                   recipient: str, now: datetime) -> tuple[bytes, bytes]:
    """(the message, the gzip body) for a mailto: rua (RFC 8460 §5.3)."""
    body = gzip.compress(json.dumps(report, indent=1).encode(), mtime=0)
    start, end = _day_range(report["date-range"]["start-datetime"][:10])
    unique = report["report-id"].split("@")[0]
    filename = (f"{submitter}!{domain}!{int(start.timestamp())}!{int(end.timestamp())}"
                f"!{unique}.json.gz")
    message = MIMEMultipart("report", report_type="tlsrpt")
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = (f"Report Domain: {domain} Submitter: {submitter} "
                          f"Report-ID: <{report['report-id']}>")
    message["TLS-Report-Domain"] = domain
    message["TLS-Report-Submitter"] = submitter
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=submitter)
    message.attach(MIMEText(
        f"This is the daily TLS report (RFC 8460) of {submitter} about mail it sent to "
        f"{domain} on {start:%Y-%m-%d} (UTC).\n"))
    part = MIMEApplication(body, "tlsrpt+gzip", name=filename)
    part.add_header("Content-Disposition", "attachment", filename=filename)
    message.attach(part)
    raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    return raw, body


class TLSReporter(Service):
    def __init__(self, *, runner: Any, workers: Any, resolver: Any, https: HTTPSClient,
                 local: Any, events: Any, clock: Any, hostname: str, sender: str) -> None:
        self.setName("tlsrpt")
        self._runner = runner
        self._workers = workers
        self._resolver = resolver
        self._https = https
        self._local = local
        self._events = events
        self._clock = clock
        self._hostname = hostname
        self._sender = sender
        self._call: Any = None
        self._busy: Optional[Deferred[int]] = None

    def startService(self) -> None:
        super().startService()
        self._call = self._clock.callLater(60, self._tick)

    def stopService(self) -> Any:
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        return self._busy

    def _tick(self) -> None:
        if self._busy is None:
            self._busy = Deferred.fromCoroutine(self.report_due())
            self._busy.addErrback(lambda f: log.failure("TLS-RPT: reporting failed", f))

            def done(_: Any) -> None:
                self._busy = None
            self._busy.addBoth(done)
        if self.running:
            self._call = self._clock.callLater(CHECK_SECONDS, self._tick)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), timezone.utc)

    async def report_due(self) -> int:
        """Send the reports of every finished day; returns how many were sent or queued."""
        now = self._now()
        counts = await self._runner.read(store.results_before, now.strftime("%Y-%m-%d"))
        by_key: dict[tuple[str, str], list[store.TLSCount]] = defaultdict(list)
        for count in counts:
            by_key[(count.day, count.domain)].append(count)
        sent = 0
        for (day, domain), members in by_key.items():
            records = await self._workers.run(txt_records, f"_smtp._tls.{domain}",
                                              resolver=self._resolver)
            if records is None:
                continue   # DNS failed for now: try again next hour
            ruas = parse_tlsrpt_record(records)
            report_id = f"{day}.{secrets.token_hex(6)}@{self._hostname}"
            report = build_report(day=day, domain=domain, counts=members,
                                  organization=self._hostname, contact=self._sender,
                                  report_id=report_id)
            mailto = [unquote(urlsplit(uri).path) for uri in ruas
                      if uri.lower().startswith("mailto:")]
            https = [uri for uri in ruas if uri.lower().startswith("https:")]
            for uri in https:
                sent += await self._post(uri, report, domain)
            if mailto:
                await self._queue(report, domain, mailto, day, now)
                sent += len(mailto)
            else:
                await self._runner.write(store.forget_results, day, domain)
        return sent

    async def _post(self, uri: str, report: dict[str, Any], domain: str) -> int:
        """RFC 8460 §5.4: POST the gzip report; any 2xx is success."""
        parts = urlsplit(uri)
        body = gzip.compress(json.dumps(report).encode(), mtime=0)
        try:
            response = await self._https.request(
                b"POST", parts.hostname or "", parts.path or "/", body=body,
                content_type=MEDIA_TYPE, limit=64 * 1024, port=parts.port)
        except HTTPSError as exc:
            log.info("TLS-RPT: report for {domain} to {uri} failed: {why}", domain=domain,
                     uri=uri, why=str(exc))
            return 0
        if not 200 <= response.code < 300:
            log.info("TLS-RPT: report for {domain} to {uri}: HTTP {code}", domain=domain,
                     uri=uri, code=response.code)
            return 0
        log.info("TLS-RPT: report for {domain} posted to {uri}", domain=domain, uri=uri)
        return 1

    async def _queue(self, report: dict[str, Any], domain: str, recipients: list[str],
                     day: str, now: datetime) -> None:
        raw, _body = report_message(report=report, domain=domain, submitter=self._hostname,
                                    sender=self._sender, recipient=", ".join(recipients),
                                    now=now)
        sealed = await self._workers.run(self._local.seal, raw, [QUEUE_OWNER])
        envelope = Envelope(sender=self._sender, recipients=tuple(recipients))

        def commit(conn: Any) -> None:
            self._local.queue_copy(conn, envelope, recipients, sealed[QUEUE_OWNER][0], now)
            store.forget_results(conn, day, domain)
        try:
            await self._runner.write(commit)
        except BaseException:
            self._local.abandon(sealed, refused=False)
            raise
        self._local.settle(sealed, [], queued=True, publish=False)
        self._events.publish_queued(QueueChanged())
        log.info("TLS-RPT: report for {domain} ({day}) queued to {to}", domain=domain,
                 day=day, to=", ".join(recipients))
