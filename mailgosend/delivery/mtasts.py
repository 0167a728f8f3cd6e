# -*- test-case-name: tests.test_mtasts -*-
"""Outbound MTA-STS (RFC 8461) and the TLS results TLS-RPT reports (RFC 8460).

For each destination domain the queue worker asks :meth:`MTASTS.lookup` once per job:

1. TXT ``_mta-sts.<domain>`` through the configured resolver (RFC 8461 §3.1).  No record:
   a cached, unexpired policy still applies (§5.1: a TXT removal does not end it).
2. The cached policy is used while unexpired and its id equals the TXT id; otherwise the
   policy is fetched from ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (§3.3: the
   certificate must verify for that name, no redirects, 200 and text/plain) and cached for
   its max_age.  A failed fetch falls back to the cached policy (§5.1) and is counted as
   ``sts-policy-fetch-error``.
3. ``enforce``: only MX hosts matching an mx pattern are used and TLS must verify for the MX
   name (§4, §5): otherwise the mail stays queued (4.7.5), never sent in clear.  ``testing``
   delivers as usual and counts the failures; ``none`` is no policy.

Every session's TLS outcome is counted per policy domain and UTC day (store/mtasts.py) for
delivery/tlsrpt.py's daily report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Optional, Sequence

from twisted.logger import Logger

from mailgosend.delivery.https import HTTPSClient, HTTPSError
from mailgosend.delivery.mx import Destinations, txt_records
from mailgosend.mtasts import (MAX_POLICY_BYTES, Policy, PolicyError, parse_policy,
                               parse_sts_record)
from mailgosend.store import mtasts as store

log = Logger()

__all__ = ["MTASTS", "StsLookup", "classify_tls"]

POLICY_PATH = "/.well-known/mta-sts.txt"


@dataclass(frozen=True)
class StsLookup:
    """What applies to one destination domain."""

    domain: str
    policy: Optional[Policy] = None       # None: no policy (or mode none)
    policy_id: str = ""
    fetch_error: Optional[str] = None     # a published policy that could not be fetched

    @property
    def enforced(self) -> bool:
        return self.policy is not None and self.policy.mode == "enforce"

    @property
    def policy_type(self) -> str:
        return "sts" if self.policy is not None else "no-policy-found"

    @property
    def policy_lines(self) -> tuple[str, ...]:
        if self.policy is None:
            return ()
        return tuple(line for line in self.policy.text().split("\r\n") if line)


def classify_tls(tls_version: Optional[str], verified: bool, note: Optional[str]) -> str:
    """An RFC 8460 §4.3 result type for one session ("success" when TLS verified, or when
    it was only asked to be opportunistic and was established)."""
    text = (note or "").lower()
    if tls_version is None and "not verified" not in text:
        return "starttls-not-supported"
    if verified:
        return "success"
    if "name mismatch" in text:
        return "certificate-host-mismatch"
    if "expired" in text:
        return "certificate-expired"
    if "verify failed" in text or "not verified" in text:
        return "certificate-not-trusted"
    return "validation-failure"


class MTASTS:
    def __init__(self, *, runner: Any, workers: Any, resolver: Any, https: HTTPSClient,
                 clock: Any, ca_file: Optional[str]) -> None:
        self._runner = runner
        self._workers = workers
        self._resolver = resolver
        self._https = https
        self._clock = clock
        self.ca_file = ca_file

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), timezone.utc)

    # --- the policy ---------------------------------------------------------------------

    async def lookup(self, domain: str) -> StsLookup:
        """The policy that applies to mail for ``domain`` now (never raises)."""
        try:
            return await self._lookup(domain)
        except Exception as exc:   # a bug must not stop delivery to domains without policy
            log.failure("MTA-STS: lookup for {domain} failed", domain=domain)
            cached = await self._runner.read(store.cached_policy, domain)
            if cached is not None and cached.expires_at > self._now():
                return StsLookup(domain, _active(cached.policy), cached.policy_id)
            return StsLookup(domain, fetch_error=type(exc).__name__)

    async def _lookup(self, domain: str) -> StsLookup:
        records = await self._workers.run(txt_records, f"_mta-sts.{domain}",
                                          resolver=self._resolver)
        cached = await self._runner.read(store.cached_policy, domain)
        now = self._now()
        valid = cached if cached is not None and cached.expires_at > now else None
        sts_id = parse_sts_record(records) if records is not None else None
        if sts_id is None:
            # RFC 8461 §5.1: no (or an unreadable) record: a cached policy still holds.
            if valid is not None:
                return StsLookup(domain, _active(valid.policy), valid.policy_id)
            return StsLookup(domain)
        if valid is not None and valid.policy_id == sts_id:
            return StsLookup(domain, _active(valid.policy), valid.policy_id)
        try:
            policy = await self._fetch(domain)
        except (HTTPSError, PolicyError) as exc:
            log.info("MTA-STS: policy of {domain} not fetched: {why}", domain=domain,
                     why=str(exc))
            if valid is not None:
                return StsLookup(domain, _active(valid.policy), valid.policy_id,
                                 fetch_error=str(exc))
            return StsLookup(domain, fetch_error=str(exc))
        await self._runner.write(store.store_policy, domain, sts_id, policy, now)
        log.info("MTA-STS: {domain} policy {id}: mode {mode}, max_age {age}",
                 domain=domain, id=sts_id, mode=policy.mode, age=policy.max_age)
        return StsLookup(domain, _active(policy), sts_id)

    async def _fetch(self, domain: str) -> Policy:
        response = await self._https.request(b"GET", f"mta-sts.{domain}", POLICY_PATH,
                                             limit=MAX_POLICY_BYTES)
        # RFC 8461 §3.3: 200 only (redirects are not followed), media type text/plain.
        if response.code != 200:
            raise HTTPSError(f"policy fetch answered HTTP {response.code}")
        if response.content_type.split(";")[0].strip().lower() != "text/plain":
            raise PolicyError(f"policy served as {response.content_type or 'no type'}, "
                              "not text/plain")
        try:
            text = response.body.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError("policy is not UTF-8") from None
        return parse_policy(text)

    # --- enforcement --------------------------------------------------------------------

    @staticmethod
    def permitted(lookup: StsLookup, destinations: Destinations
                  ) -> tuple[Destinations, list[str]]:
        """The destinations the policy lets us use under enforce, and the MX names it
        excludes (RFC 8461 §4.1).  Under testing every host stays (the mismatch is counted)."""
        if lookup.policy is None:
            return destinations, []
        excluded = [h.name for h in destinations.hosts if not lookup.policy.allows(h.name)]
        if not lookup.enforced:
            return destinations, excluded
        kept = tuple(h for h in destinations.hosts if lookup.policy.allows(h.name))
        return replace(destinations, hosts=kept), excluded

    def client_settings(self, lookup: Optional[StsLookup], host_name: str,
                        settings: Any) -> Any:
        """Under enforce: TLS required, and the certificate verified for the MX name
        (RFC 8461 §4.2), so a failure ends the session before anything is sent."""
        if lookup is None or not lookup.enforced:
            return settings
        return replace(settings, tls="encrypt", verify_hostname=host_name,
                       ca_file=self.ca_file)

    # --- TLS-RPT counters ---------------------------------------------------------------

    async def count(self, lookup: StsLookup, mx_host: str, result_type: str) -> None:
        day = self._now().strftime("%Y-%m-%d")
        try:
            await self._runner.write(store.count_result, day=day, domain=lookup.domain,
                                     policy_type=lookup.policy_type,
                                     policy=lookup.policy_lines, mx_host=mx_host,
                                     result_type=result_type)
        except Exception:
            log.failure("TLS-RPT: counting a result for {domain} failed",
                        domain=lookup.domain)

    async def count_all(self, lookup: StsLookup, mx_hosts: Sequence[str],
                        result_type: str) -> None:
        for mx in mx_hosts:
            await self.count(lookup, mx, result_type)


def _active(policy: Policy) -> Optional[Policy]:
    """RFC 8461 §5: mode none means no policy applies."""
    return None if policy.mode == "none" else policy
