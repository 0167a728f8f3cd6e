"""The TLS page (web/admin_tls.py, tls/upload.py, tls/inventory.py): the certificates in use
per service and name; an upload whose key does not match, whose chain is out of order or
whose names miss HOSTNAME is refused with a clear message and nothing changes; a good one
is installed and served at once on a real TLS connection (as after SIGHUP), and audited."""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any

from cryptography import x509
from twisted.internet import defer, threads

from mailgosend.db.runner import run_sync
from mailgosend.store import audit as audit_store
from tests.support.certs import make_ca, make_cert
from tests.support.mailserver import HOSTNAME
from tests.support.web import csrf_from
from tests.test_admin_dash_pages import ADMIN, AdminTestCase


def read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def served_serial(port: int, ca_path: str) -> int:
    context = ssl.create_default_context(cafile=ca_path)
    context.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=HOSTNAME) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


class TLSPageTests(AdminTestCase):
    def setUp(self):  # type: ignore[no-untyped-def]
        d = super().setUp()

        def more(_: Any) -> None:
            self.pki = os.path.join(self.server.directory, "upload")
            self.files = (self.server.config["TLS_CERT"], self.server.config["TLS_KEY"])
            self.before = tuple(read(p) for p in self.files)
        return d.addCallback(more)

    @defer.inlineCallbacks
    def upload(self, web: Any, cert: bytes, key: bytes) -> Any:
        page = yield web.get("/admin/tls")
        answer = yield web.post("/admin/tls/upload", {"csrf_token": csrf_from(page.text)},
                                files={"certificate": ("chain.pem", cert),
                                       "key": ("key.pem", key)})
        return answer

    def serial_now(self) -> Any:
        return threads.deferToThread(served_serial, self.server.ports["SMTPS"],
                                     self.server.ca.root_path)

    @defer.inlineCallbacks
    def assert_unchanged(self, serial: int) -> Any:
        self.assertEqual(tuple(read(p) for p in self.files), self.before)
        now = yield self.serial_now()
        self.assertEqual(now, serial)
        entries = run_sync(self.server.engine, audit_store.search, audit_store.AuditQuery(),
                           write=False)
        self.assertEqual(entries, [])

    @defer.inlineCallbacks
    def test_the_certificates_in_use_per_service(self) -> Any:
        web = yield self.admin_client()
        page = yield web.get("/admin/tls")
        self.assertEqual(page.status_code, 200)
        for service in ("SMTP", "IMAP", "POP3"):
            self.assertIn(f">{service}</td>", page.text)
        self.assertIn(HOSTNAME, page.text)
        self.assertIn("mailgosend test ca", page.text)
        self.assertIn("Install certificate", page.text)

    @defer.inlineCallbacks
    def test_a_key_that_does_not_match_is_refused_and_nothing_changes(self) -> Any:
        web = yield self.admin_client()
        serial = yield self.serial_now()
        cert, _key = make_cert(self.pki, [HOSTNAME], ca=self.server.ca, name="one")
        _cert, other_key = make_cert(self.pki, [HOSTNAME], ca=self.server.ca, name="two")
        answer = yield self.upload(web, read(cert), read(other_key))
        self.assertEqual(answer.status_code, 400)
        self.assertIn("The certificate does not match the private key", answer.text)
        self.assertIn('role="alert"', answer.text)
        yield self.assert_unchanged(serial)

    @defer.inlineCallbacks
    def test_a_chain_out_of_order_or_for_other_names_is_refused(self) -> Any:
        web = yield self.admin_client()
        serial = yield self.serial_now()
        intermediate = make_ca(self.pki, "intermediate", parent=self.server.ca)
        cert, key = make_cert(self.pki, [HOSTNAME], ca=intermediate, name="chained")
        blocks = read(cert).split(b"-----END CERTIFICATE-----\n")
        reordered = blocks[1] + b"-----END CERTIFICATE-----\n" + blocks[0] + \
            b"-----END CERTIFICATE-----\n"
        answer = yield self.upload(web, reordered, read(key))
        self.assertEqual(answer.status_code, 400)
        self.assertIn("in the wrong order", answer.text)
        elsewhere, key = make_cert(self.pki, ["mail.other.test"], ca=self.server.ca,
                                   name="other")
        answer = yield self.upload(web, read(elsewhere), read(key))
        self.assertEqual(answer.status_code, 400)
        self.assertIn(f"do not cover this server&#39;s HOSTNAME {HOSTNAME}", answer.text)
        answer = yield self.upload(web, b"not a certificate", read(key))
        self.assertEqual(answer.status_code, 400)
        self.assertIn("The certificate file is not a PEM certificate chain.", answer.text)
        yield self.assert_unchanged(serial)

    @defer.inlineCallbacks
    def test_a_good_certificate_is_installed_and_served_at_once(self) -> Any:
        web = yield self.admin_client()
        intermediate = make_ca(self.pki, "intermediate", parent=self.server.ca)
        cert, key = make_cert(self.pki, [HOSTNAME, "localhost"], ca=intermediate, name="new")
        new_serial = x509.load_pem_x509_certificate(read(cert)).serial_number
        answer = yield self.upload(web, read(cert), read(key))
        self.assertEqual((answer.status_code, answer.headers.get("Location")),
                         (303, "/admin/tls?done=uploaded"))
        self.assertEqual(read(self.files[0]), read(cert))
        self.assertEqual(os.stat(self.files[1]).st_mode & 0o777, 0o600)
        self.assertEqual(read(self.files[0] + ".previous"), self.before[0])
        served = yield self.serial_now()
        self.assertEqual(served, new_serial)
        page = yield web.get("/admin/tls?done=uploaded")
        self.assertIn("mailgosend test intermediate", page.text)
        self.assertIn("The certificate was installed", page.text)
        entries = run_sync(self.server.engine, audit_store.search, audit_store.AuditQuery(),
                           write=False)
        self.assertEqual([(e.actor, e.action, e.target) for e in entries],
                         [(ADMIN, "tls.upload", f"{HOSTNAME}, localhost")])


class Renewer:
    def __init__(self) -> None:
        self.renewed = 0

    def renew_now(self) -> Any:
        self.renewed += 1
        return defer.succeed(None)


class ACMEHookTests(AdminTestCase):
    """The TLS page's hook for the ACME service: its status and "Renew now"."""

    @defer.inlineCallbacks
    def test_acme_status_and_renew_now(self) -> Any:
        from datetime import datetime, timezone

        web = yield self.admin_client()
        page = yield web.get("/admin/tls")
        self.assertNotIn("ACME (automatic certificates)", page.text)
        answer = yield web.post("/admin/tls/acme/renew", {"csrf_token": csrf_from(page.text)})
        self.assertEqual(answer.status_code, 404)
        renewer = Renewer()
        components = self.server.root.components
        components["acme"] = renewer
        components["acme_status"] = lambda: [{
            "names": ["mx.mailgo.test", "autoconfig.example.com"],
            "not_after": datetime(2027, 3, 1, tzinfo=timezone.utc),
            "last_success": None, "last_error": "rateLimited: too many certificates"}]
        page = yield web.get("/admin/tls")
        self.assertIn("mx.mailgo.test, autoconfig.example.com", page.text)
        self.assertIn("2027-03-01 00:00 UTC", page.text)
        self.assertIn("rateLimited: too many certificates", page.text)
        self.assertIn(">failing<", page.text)
        answer = yield web.post("/admin/tls/acme/renew", {"csrf_token": csrf_from(page.text)})
        self.assertEqual((answer.status_code, answer.headers["Location"]),
                         (303, "/admin/tls?done=renewing"))
        self.assertEqual(renewer.renewed, 1)
        entries = run_sync(self.server.engine, audit_store.search, audit_store.AuditQuery(),
                           write=False)
        self.assertEqual([e.action for e in entries], ["tls.acme_renew"])
