"""Two whole mailgosend servers in the test process, "alpha.test" on 127.0.0.2 and "beta.test"
on 127.0.0.3, with one twisted.names server on 127.0.0.1 serving their MX, A, SPF, DKIM and
DMARC records.  Both listen for SMTP on the same port number, which is alpha's DELIVERY_PORT,
so alpha's queue worker reaches beta exactly as it would reach a real MX on port 25.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from twisted.internet import defer

from mailgosend.db.runner import run_sync
from mailgosend.store import dkimkeys
from tests.support.dnsserver import TestDNSServer
from tests.support.mailserver import MailServer
from tests.support.net import free_ports

ALPHA_IP, BETA_IP = "127.0.0.2", "127.0.0.3"


def zone() -> dict[str, Any]:
    return {
        "alpha.test": {"MX": [[10, "mx.alpha.test"]], "TXT": [f"v=spf1 ip4:{ALPHA_IP} -all"]},
        "mx.alpha.test": {"A": [ALPHA_IP]},
        "_dmarc.alpha.test": {"TXT": ["v=DMARC1; p=reject; adkim=s; aspf=s"]},
        "beta.test": {"MX": [[10, "mx.beta.test"]], "TXT": [f"v=spf1 ip4:{BETA_IP} -all"]},
        "mx.beta.test": {"A": [BETA_IP]},
        "_dmarc.beta.test": {"TXT": ["v=DMARC1; p=reject"]},
    }


class TwoServers:
    """alpha (alice) and beta (bob); ``alpha_settings``/``beta_settings`` override config."""

    def __init__(self, directory: str, *, alpha_settings: Optional[dict[str, Any]] = None,
                 beta_settings: Optional[dict[str, Any]] = None,
                 alpha_clock: Any = None) -> None:
        self.directory = os.path.abspath(directory)
        self.smtp_port = free_ports(1, ALPHA_IP, also=(BETA_IP,))[0]
        self.dns = TestDNSServer(zone())
        common = dict(DELIVERY_PORT=str(self.smtp_port), DELIVERY_PAUSED="false",
                      QUEUE_RETRY_MINS="1,2", SPAM_CHECK_SPF="true")
        self.alpha = MailServer(os.path.join(self.directory, "alpha"), dns=self.dns,
                                hostname="mx.alpha.test", bind=ALPHA_IP,
                                ports={"SMTP": self.smtp_port},
                                DELIVERY_BIND=ALPHA_IP, clock=alpha_clock,
                                **{**common, **(alpha_settings or {})})
        self.beta = MailServer(os.path.join(self.directory, "beta"), dns=self.dns,
                               hostname="mx.beta.test", bind=BETA_IP,
                               ports={"SMTP": self.smtp_port}, DELIVERY_BIND=BETA_IP,
                               **{**common, **(beta_settings or {})})

    @defer.inlineCallbacks
    def start(self, *, beta: bool = True) -> Any:
        self.dns.start()
        yield self.alpha.start()
        self.alpha.add_domain("alpha.test")
        self.alice = self.alpha.add_user("alice@alpha.test")
        if beta:
            yield self.start_beta()

    @defer.inlineCallbacks
    def start_beta(self) -> Any:
        yield self.beta.start()
        if not getattr(self, "_beta_accounts", False):
            self.beta.add_domain("beta.test")
            self.bob = self.beta.add_user("bob@beta.test")
            self._beta_accounts = True

    @defer.inlineCallbacks
    def stop(self) -> Any:
        yield self.alpha.stop()
        yield self.beta.stop()
        yield self.dns.stop()

    def publish_dkim(self, server: MailServer, domain: str, *algos: str) -> list[Any]:
        """Generate keys in ``server``'s database and publish them in the test DNS."""
        keyring = server.root.components["keyring"]
        keys = [run_sync(server.engine, dkimkeys.generate_key, keyring, domain, algo,
                         now=server.now(), write=True) for algo in algos]
        records = run_sync(server.engine, dkimkeys.dns_records, domain, write=False)
        self.dns.update_records({name.rstrip("."): {"TXT": [value]} for name, value in records})
        server.root.components["delivery"]._signer.invalidate(domain)
        return keys
