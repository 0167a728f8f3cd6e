"""A real authoritative DNS server for tests (twisted.names), UDP and TCP on one port.

SPF, DKIM, DMARC, DNSBL and MX delivery tests resolve through it, so the code
under test runs its real DNS path.  Zone data is a plain dict, JSON-friendly:

    {
        "example.com": {
            "A": ["192.0.2.1"], "AAAA": ["2001:db8::1"],
            "MX": [[10, "mx.example.com"]],
            "TXT": ["v=spf1 -all", ["two", "strings"]],   # str: split at 255 bytes
        },
        "www.example.com": {"CNAME": "example.com"},
        "1.2.0.192.in-addr.arpa": {"PTR": ["mx.example.com"]},
        "broken.example": "SERVFAIL",                   # every type
        "slow.example": {"TXT": "TIMEOUT", "A": ["192.0.2.9"]},  # one type
    }

Special values (for a whole name or one type): "SERVFAIL", "TIMEOUT" (the
server never answers, so the client times out: temperror paths), "REFUSED",
"NXDOMAIN".  Names missing from the dict get NXDOMAIN, except ancestors of
names that exist (empty non-terminals), which get NOERROR with no data.

The server runs in the reactor thread; code that does blocking DNS (dnspython,
pyspf, dkimpy) must therefore be called from tests through
``twisted.internet.threads.deferToThread``.

Also runnable as its own process for multi-process tests:
``python -m tests.support.dnsserver --port 0 --zone-json FILE`` prints the
bound port on stdout and serves until terminated.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.names import dns, server

SPECIAL = ("SERVFAIL", "TIMEOUT", "REFUSED", "NXDOMAIN")
_TYPES = {"A": dns.A, "AAAA": dns.AAAA, "MX": dns.MX, "TXT": dns.TXT,
          "CNAME": dns.CNAME, "PTR": dns.PTR, "NS": dns.NS}
_TYPE_NAMES = {v: k for k, v in _TYPES.items()}
_RCODES = {"SERVFAIL": dns.ESERVER, "REFUSED": dns.EREFUSED, "NXDOMAIN": dns.ENAME}


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _txt_strings(value: str | bytes | list[Any]) -> list[bytes]:
    """One TXT record's character-strings: a long string is cut every 255 bytes."""
    if isinstance(value, list):
        return [v.encode() if isinstance(v, str) else bytes(v) for v in value]
    data = value.encode() if isinstance(value, str) else value
    return [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]


def _payload(rtype: str, value: Any, ttl: int) -> Any:
    if rtype == "A":
        return dns.Record_A(value, ttl=ttl)
    if rtype == "AAAA":
        return dns.Record_AAAA(value, ttl=ttl)
    if rtype == "MX":
        preference, exchange = value
        # "." (RFC 7505 null MX) and "host." mean the absolute name: drop the final dot.
        return dns.Record_MX(int(preference), exchange.rstrip(".").encode(), ttl=ttl)
    if rtype == "TXT":
        return dns.Record_TXT(*_txt_strings(value), ttl=ttl)
    if rtype == "CNAME":
        return dns.Record_CNAME(value.rstrip(".").encode(), ttl=ttl)
    if rtype == "PTR":
        return dns.Record_PTR(value.rstrip(".").encode(), ttl=ttl)
    if rtype == "NS":
        return dns.Record_NS(value.rstrip(".").encode(), ttl=ttl)
    raise ValueError(f"unsupported record type {rtype!r}")


def compile_zone(records: Mapping[str, Any], ttl: int) -> dict[str, Any]:
    """Validate the zone dict and turn values into twisted.names payloads.

    Done eagerly so a typo in a test's zone fails at set-up, not as a
    puzzling NXDOMAIN later.
    """
    zone: dict[str, Any] = {}
    for name, entry in records.items():
        if isinstance(entry, str):
            if entry not in SPECIAL:
                raise ValueError(f"{name}: special value must be one of {SPECIAL}, not {entry!r}")
            zone[_norm(name)] = entry
            continue
        compiled: dict[int, Any] = {}
        for rtype, values in entry.items():
            rtype = rtype.upper()
            if rtype not in _TYPES:
                raise ValueError(f"{name}: unsupported record type {rtype!r}")
            if isinstance(values, str) and values in SPECIAL:
                compiled[_TYPES[rtype]] = values
            elif rtype == "CNAME":
                target = values[0] if isinstance(values, list) else values
                compiled[dns.CNAME] = [_payload("CNAME", target, ttl)]
            else:
                compiled[_TYPES[rtype]] = [_payload(rtype, v, ttl) for v in values]
        zone[_norm(name)] = compiled
    return zone


class _ZoneFactory(server.DNSServerFactory):
    """Answers every query from the owner's zone; never recurses, never logs errors."""

    noisy = False

    def __init__(self, owner: TestDNSServer) -> None:
        super().__init__()
        self._owner = owner

    def handleQuery(self, message: dns.Message, protocol: Any, address: Any) -> None:
        query = message.queries[0]
        outcome = self._owner.answer(query.name.name.decode("ascii", "replace"), query.type)
        if outcome is None:
            return  # simulated timeout: no reply at all
        rcode, answers = outcome
        response = dns.Message(id=message.id, answer=1, opCode=message.opCode,
                               recDes=message.recDes, recAv=False, auth=True, rCode=rcode)
        response.queries = message.queries
        response.answers = answers
        if address is None:
            response.maxSize = 0  # TCP: no 512-byte limit
            protocol.writeMessage(response)
        else:
            # Over 512 bytes: sent truncated with TC set, and the client retries on TCP.
            protocol.writeMessage(response, address)


class TestDNSServer:
    """An in-process authoritative server on ``interface``, UDP and TCP on one port."""

    __test__ = False  # not a test class, despite the name (pytest collection)

    def __init__(self, records: Mapping[str, Any] | None = None, *, ttl: int = 0,
                 reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self._reactor = reactor
        self.ttl = ttl
        self._zone: dict[str, Any] = {}
        self.queries: list[tuple[str, str]] = []   # (name, type) in arrival order
        self._ports: list[Any] = []   # IListeningPort providers (UDP, TCP)
        self.host = ""
        self.port = 0
        self.set_records(records or {})

    def set_records(self, records: Mapping[str, Any]) -> None:
        """Replace the whole zone (takes effect for the next query)."""
        self._zone = compile_zone(records, self.ttl)

    def update_records(self, records: Mapping[str, Any]) -> None:
        """Add or replace some names, keeping the rest of the zone."""
        self._zone = {**self._zone, **compile_zone(records, self.ttl)}

    def start(self, interface: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on UDP and TCP; returns (host, port), usable as DNS_PRIMARY."""
        factory = _ZoneFactory(self)
        for _attempt in range(50):
            udp = self._reactor.listenUDP(port, dns.DNSDatagramProtocol(factory),
                                          interface=interface)
            bound = udp.getHost().port
            try:
                tcp = self._reactor.listenTCP(bound, factory, interface=interface)
            except CannotListenError:
                udp.stopListening()
                if port:
                    raise
                continue
            self._ports = [udp, tcp]
            self.host, self.port = interface, bound
            return interface, bound
        raise CannotListenError(interface, port, "no port free for both UDP and TCP")

    @property
    def nameserver(self) -> str:
        """The ``host:port`` text for DNS_PRIMARY / make_resolver."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def stop(self) -> defer.Deferred[Any]:
        """Stop listening; the Deferred fires when both ports are closed."""
        ports, self._ports = self._ports, []
        closing = []
        for listening in ports:
            d = listening.stopListening()
            closing.append(d if d is not None else defer.succeed(None))
        return defer.gatherResults(closing)

    def answer(self, qname: str, qtype: int) -> tuple[int, list[dns.RRHeader]] | None:
        """(rcode, answer records) for a query, or None to stay silent (timeout)."""
        name = _norm(qname)
        self.queries.append((name, _TYPE_NAMES.get(qtype, str(qtype))))
        zone = self._zone
        answers: list[dns.RRHeader] = []
        seen: set[str] = set()
        while True:
            entry = zone.get(name)
            if entry is None:
                if answers:
                    return dns.OK, answers    # CNAME pointing outside the zone
                suffix = "." + name
                if any(n.endswith(suffix) for n in zone):
                    return dns.OK, []         # empty non-terminal
                return dns.ENAME, []
            special = entry if isinstance(entry, str) else entry.get(qtype)
            if isinstance(special, str):
                return None if special == "TIMEOUT" else (_RCODES[special], [])
            cname = entry.get(dns.CNAME)
            if cname and qtype != dns.CNAME and name not in seen:
                seen.add(name)
                answers.append(self._rr(name, dns.CNAME, cname[0]))
                name = _norm(cname[0].name.name.decode())
                continue
            answers.extend(self._rr(name, qtype, p) for p in entry.get(qtype, []))
            return dns.OK, answers

    def _rr(self, name: str, qtype: int, payload: Any) -> dns.RRHeader:
        return dns.RRHeader(name=name.encode(), type=qtype, cls=dns.IN, ttl=self.ttl,
                            payload=payload, auth=True)


def serve_for_test(testcase: Any, records: Mapping[str, Any] | None = None,
                   **kwargs: Any) -> TestDNSServer:
    """Start a server for one trial test and stop it in the test's cleanup."""
    dns_server = TestDNSServer(records, **kwargs)
    dns_server.start()
    testcase.addCleanup(dns_server.stop)
    return dns_server


def main(argv: Iterable[str] | None = None) -> None:
    """Serve a JSON zone file until killed; print the bound port first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--zone-json", required=True, help="file holding the zone dict")
    parser.add_argument("--ttl", type=int, default=0)
    args = parser.parse_args(list(argv) if argv is not None else None)
    with open(args.zone_json, encoding="utf-8") as f:
        records = json.load(f)
    from twisted.internet import reactor
    dns_server = TestDNSServer(records, ttl=args.ttl, reactor=reactor)
    _host, port = dns_server.start(args.host, args.port)
    print(port, flush=True)
    reactor.run()  # type: ignore[attr-defined,misc]


if __name__ == "__main__":
    main(sys.argv[1:])
