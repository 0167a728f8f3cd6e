"""COMPRESS=DEFLATE (RFC 4978) with real clients.

imaplib gets a DEFLATE layer the way a client adds one (raw deflate both ways, a sync flush
after each command it sends); every read has a socket timeout, so a response left inside the
server's compressor fails the test instead of hanging it.  Compared with the same commands
without compression: a FETCH of many envelopes, a 3 MB message streamed in chunks, IDLE
notifications, STORE, APPEND, LOGOUT's BYE.  mbsync (isync 1.4 turns COMPRESS on whenever it
is advertised) then syncs a mailbox and uploads messages over a compressed IMAPS session.
"""

from __future__ import annotations

import imaplib
import os
import zlib
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.support import mbsync
from tests.support.db import SQLiteDatabaseMixin
from tests.support.imap import PASSWORD, IMAPFixture, message
from tests.test_imap_mbsync import MbsyncTestBase, USER, make_message, mid


# imaplib refuses commands it does not know; allowed in every state so the test can also
# see the server refuse it before login.
imaplib.Commands.setdefault("COMPRESS", ("NONAUTH", "AUTH", "SELECTED"))


class DeflateIMAP(imaplib.IMAP4):
    """imaplib with the client side of RFC 4978: ``compress()`` sends COMPRESS DEFLATE and,
    after its OK, deflates what it sends and inflates what it reads."""

    deflating = False

    def compress(self) -> tuple[str, list[Any]]:
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ == "OK":
            self.deflating = True
            self._deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
            self._inflater = zlib.decompressobj(-15)
            self._inbuf = b""
            self.compressed_read = 0
        return typ, data

    def send(self, data: bytes) -> None:
        if self.deflating:
            data = self._deflater.compress(data) + self._deflater.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)  # the socket's timeout bounds a wait for stuck bytes
        if not chunk:
            raise self.abort("server closed the connection")
        self.compressed_read += len(chunk)
        self._inbuf += self._inflater.decompress(chunk)

    def read(self, size: int) -> bytes:
        if not self.deflating:
            return super().read(size)
        while len(self._inbuf) < size:
            self._fill()
        data, self._inbuf = self._inbuf[:size], self._inbuf[size:]
        return data

    def readline(self) -> bytes:
        if not self.deflating:
            return super().readline()
        while b"\n" not in self._inbuf:
            self._fill()
        end = self._inbuf.index(b"\n") + 1
        line, self._inbuf = self._inbuf[:end], self._inbuf[end:]
        return line


class CompressTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    max_message_size = 8 << 20

    def client(self, compress: bool = True) -> DeflateIMAP:
        client = DeflateIMAP("127.0.0.1", self.port, timeout=20)
        client.login("alice@example.com", PASSWORD)
        if compress:
            typ, data = client.compress()
            assert typ == "OK", (typ, data)
        return client

    @defer.inlineCallbacks
    def test_advertised_after_login_and_refused_twice(self) -> Any:
        yield self.listen()

        def scenario() -> Any:
            client = DeflateIMAP("127.0.0.1", self.port, timeout=20)
            before = client.capabilities
            with self.assertRaises(imaplib.IMAP4.error) as pre_login:
                client._simple_command("COMPRESS", "DEFLATE")
            client.login("alice@example.com", PASSWORD)
            after = client.capability()
            with self.assertRaises(imaplib.IMAP4.error) as unknown:
                client._simple_command("COMPRESS", "LZ4")
            first = client.compress()
            second = client._simple_command("COMPRESS", "DEFLATE")
            noop = client.noop()
            client.logout()
            return before, str(pre_login.exception), after, str(unknown.exception), first, second, noop

        before, pre_login, after, unknown, first, second, noop = yield self.in_thread(scenario)
        self.assertNotIn("COMPRESS=DEFLATE", before)
        self.assertIn("BAD", pre_login)  # RFC 4978: authenticated state only
        self.assertIn("Log in first", pre_login)
        self.assertIn(b"COMPRESS=DEFLATE", after[1][0].split())
        self.assertIn("Unknown compression mechanism", unknown)
        self.assertEqual(first, ("OK", [b"DEFLATE active"]))
        self.assertEqual(second[0], "NO")
        self.assertIn(b"[COMPRESSIONACTIVE]", second[1][0])
        self.assertEqual(noop[0], "OK")

    @defer.inlineCallbacks
    def test_fetches_stores_and_appends_match_the_uncompressed_session(self) -> Any:
        for i in range(300):
            yield self.deliver(message(f"compressed {i}", f"body {i}\r\n" * (i % 40 + 1)),
                               publish=False)
        big = message("big", "".join(f"{n:07d} the same old line, again and again\r\n"
                                     for n in range(80_000)))
        self.assertGreater(len(big), 3 << 20)  # streamed in chunks (cmd_fetch STREAM_THRESHOLD)
        yield self.deliver(big, publish=False)
        yield self.listen()

        def session(compress: bool) -> Any:
            client = self.client(compress)
            results = [client.select("INBOX"),
                       client.fetch("1:*", "(UID FLAGS ENVELOPE BODYSTRUCTURE)"),
                       client.fetch("301", "(BODY.PEEK[])"),
                       client.fetch("7", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])"),
                       client.store("1:5", "+FLAGS", "(\\Flagged)"),
                       client.store("1:5", "-FLAGS", "(\\Flagged)"),
                       client.status("INBOX", "(MESSAGES UNSEEN)")]
            typ, data = client.append("Drafts", None, None, message("draft", "d" * 5000))
            results.append((typ, [data[0].split(b"APPENDUID")[0]]))
            client.uid("EXPUNGE", "1:*")  # nothing \Deleted: no change
            read = client.compressed_read if compress else None
            return results, client.logout(), read

        def claim_recent() -> None:
            # RFC 3501 §2.3.2: only the first session sees \Recent; take it before comparing
            client = self.client(False)
            client.select("INBOX")
            client.logout()

        yield self.in_thread(claim_recent)
        plain, plain_bye, _ = yield self.in_thread(session, False)
        packed, packed_bye, read = yield self.in_thread(session, True)
        self.assertEqual(packed, plain)
        self.assertEqual(packed_bye[0], "BYE")
        self.assertEqual(plain_bye[0], "BYE")
        self.assertEqual(packed[2][1][0][1], big)
        self.assertLess(read, len(big) // 5)  # it really was compressed

    @defer.inlineCallbacks
    def test_idle_notifications_arrive_without_waiting(self) -> Any:
        yield self.listen()
        client = yield self.in_thread(self.client)
        self.addCleanup(self.in_thread, client.shutdown)

        def start_idle() -> bytes:
            client.select("INBOX")
            tag = client._new_tag()
            client.send(tag + b" IDLE\r\n")
            self.idle_tag = tag
            return client.readline()

        continuation = yield self.in_thread(start_idle)
        self.assertTrue(continuation.startswith(b"+ "))
        def until_exists() -> list[bytes]:
            lines = [client.readline()]  # fails on the socket timeout if a line is stuck
            while not lines[-1].endswith(b"EXISTS\r\n"):
                lines.append(client.readline())
            return lines

        yield self.deliver(message("while idling"))
        lines = yield self.in_thread(until_exists)
        self.assertEqual(lines[-1], b"* 1 EXISTS\r\n")
        yield self.deliver(message("second while idling"))
        lines = yield self.in_thread(until_exists)
        self.assertEqual(lines[-1], b"* 2 EXISTS\r\n")

        def done() -> list[bytes]:
            client.send(b"DONE\r\n")
            lines = [client.readline()]
            while not lines[-1].startswith(self.idle_tag):
                lines.append(client.readline())
            return lines

        lines = yield self.in_thread(done)
        self.assertTrue(lines[-1].startswith(self.idle_tag + b" OK"), lines)
        noop = yield self.in_thread(client.noop)
        self.assertEqual(noop[0], "OK")

    @defer.inlineCallbacks
    def test_corrupt_input_ends_the_session(self) -> Any:
        yield self.listen()
        client = yield self.in_thread(self.client)
        self.addCleanup(self.in_thread, client.shutdown)

        def corrupt() -> bytes:
            client.sock.sendall(b"\xff\xff\xff\xff garbage that is not deflate")
            return client.readline()

        line = yield self.in_thread(corrupt)
        self.assertTrue(line.startswith(b"* BYE"), line)


class MbsyncCompressTests(MbsyncTestBase):
    """isync 1.4 sends COMPRESS DEFLATE whenever the server offers it."""

    @defer.inlineCallbacks
    def test_sync_down_and_up_over_deflate(self) -> Any:
        count = 120  # sizes up to ~200 KB (make_message), an attachment, 8-bit bodies
        yield self.deliver_all([(make_message(i), ()) for i in range(count)])
        output = yield self.sync()
        self.assertIn("COMPRESS DEFLATE", mbsync.commands(output), self.output())
        server, _ = yield self.server_box("INBOX")
        local = self.local_box("INBOX")
        expected = {mid(i): "" for i in range(count)}
        inbox = os.path.join(self.maildir, "INBOX")
        for n in range(3):
            raw = (f"From: Local <local@remote.test>\r\nTo: {USER}\r\nSubject: up {n}\r\n"
                   f"Message-ID: <up-{n}@mbsync.test>\r\n\r\n" + "upload line\r\n" * 5000
                   ).encode("ascii")
            with open(os.path.join(inbox, "new", f"1767600000.M{n}P1.test:2,"), "wb") as f:
                f.write(mbsync.lf(raw))
            expected[f"<up-{n}@mbsync.test>"] = ""
        self.assert_same_messages("INBOX", server, local,
                                  {k: v for k, v in expected.items() if k in server})
        output = yield self.sync()
        self.assertIn("COMPRESS DEFLATE", mbsync.commands(output), self.output())
        server, _ = yield self.server_box("INBOX")
        local = self.local_box("INBOX")
        self.assert_same_messages("INBOX", server, local, expected)
