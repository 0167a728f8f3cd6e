"""Debian's isync (mbsync) against the whole server over IMAPS: a full two-way sync of a
500-message INBOX, then flag changes, new mail and deletions on both sides synced again, the
result compared message by message, and a third run that must change nothing; plus folders
made in the local Maildir that mbsync creates on the server (Create Both).

mbsync is a demanding client: it keeps UIDVALIDITY and per-UID state between runs, relies on
UIDPLUS (APPENDUID) to learn the UID of what it uploads, on UID FETCH/STORE with flag deltas,
on EXPUNGE, and on LIST/CREATE for the hierarchy.  It runs as a subprocess in a thread
(``tests.support.mbsync.run``) because the server lives in this test's reactor.

What "byte-exact" means here, given what isync 1.4 does to every message it propagates:
- line ends: its Maildir driver stores LF line ends (CRLF becomes LF on download, LF becomes
  CRLF on upload), so the Maildir file is compared with the server's copy after CRLF -> LF;
- X-TUID: it inserts one ``X-TUID: <12 characters>`` line at the end of the header of the copy
  it writes (on either side; it uses it to find its own copies after an interrupted run), so
  exactly one of the two copies must carry it, and the comparison removes it.
Nothing else may differ: the server still serves every delivered message byte for byte, the
Maildir copy is that message with LF line ends plus the X-TUID line, and an uploaded message on
the server is the local file with CRLF line ends plus the X-TUID line.

mbsync runs with ``-Dn`` (verbose plus the IMAP exchange, credentials masked): each run's log
is kept as ``mbsync-run-N.log`` in the test's temporary directory and named in failure
messages, and the third run is checked on the wire to have sent nothing but reads.
"""

from __future__ import annotations

import base64
import os
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from mailgosend.store import messages as ms
from mailgosend.store.mimeinfo import analyse
from tests.support import mbsync
from tests.support.mailserver import PASSWORD, MailServer

USER = "alice@example.com"
COUNT = 500
START = datetime(2026, 1, 5, 8, 0, 0, tzinfo=timezone.utc)
LOCAL_DATE = 1766599200  # 2025-12-24 18:00 UTC: the mtime of files written "locally"


def mid(i: int) -> str:
    return f"<sync-{i:03d}@mbsync.test>"


def make_message(i: int) -> bytes:
    """Message ``i`` of the INBOX: distinct subject, id and body; sizes from a few hundred bytes
    to ~200 KB; every 7th an 8-bit UTF-8 body, every 25th multipart with an attachment."""
    date = (START + timedelta(minutes=i)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    head = (f"From: Sender {i} <sender{i % 13}@remote.test>\r\nTo: Alice <{USER}>\r\n"
            f"Subject: sync {i:03d}\r\nDate: {date}\r\nMessage-ID: {mid(i)}\r\n"
            "MIME-Version: 1.0\r\n")
    lines = [f"line {n} of message {i}: " + "abcdefghij"[: n % 10] * (i % 7 + 1)
             for n in range(i % 37 + 1)]
    if i % 97 == 0:  # a few large ones
        lines += [f"{n:06d} " + "0123456789" * 7 for n in range(2600)]
    body = "\r\n".join(lines) + "\r\n"
    if i % 25 == 5:
        attachment = base64.encodebytes(bytes((i * n) % 256 for n in range(3000 + i)))
        text = (head + 'Content-Type: multipart/mixed; boundary="=-b' + str(i) + '"\r\n\r\n'
                "This is a multi-part message in MIME format.\r\n"
                f"--=-b{i}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}"
                f"--=-b{i}\r\nContent-Type: application/octet-stream; name=\"data{i}.bin\"\r\n"
                "Content-Transfer-Encoding: base64\r\n"
                f"Content-Disposition: attachment; filename=\"data{i}.bin\"\r\n\r\n"
                + attachment.decode().replace("\n", "\r\n") + f"--=-b{i}--\r\n")
        return text.encode("ascii")
    if i % 7 == 3:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\n"
                f"Grüße aus Köln, naïve café façade — 日本語のテキスト №{i}\r\n{body}"
                ).encode("utf-8")
    text = head + "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + body
    if i == COUNT - 1:
        text = text[:-2]  # the last line without its line end
    return text.encode("ascii")


def arrival(i: int) -> datetime:
    """INTERNALDATE of the i-th message of a delivery batch."""
    return START + timedelta(minutes=i, seconds=i % 60)


def initial_flags(i: int) -> tuple[str, ...]:
    flags = []
    if i % 10 == 1:
        flags.append("\\Seen")
    if i % 45 == 2:
        flags += ["\\Flagged", "\\Answered"]
    return tuple(flags)


def letters(flags: tuple[str, ...]) -> str:
    return "".join(sorted(mbsync.FLAGS[f.lower()] for f in flags))


def extra_message(name: str, text: str) -> bytes:
    return (f"From: Extra <extra@remote.test>\r\nTo: {USER}\r\nSubject: {name}\r\n"
            f"Date: Tue, 06 Jan 2026 10:00:00 +0000\r\nMessage-ID: <{name}@mbsync.test>\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
            f"\r\n{text}\r\n").encode("utf-8")


class MbsyncTestBase(unittest.TestCase):
    timeout = 900  # a bound against a hang, not a performance assertion

    def setUp(self) -> Any:
        return self.start()

    @defer.inlineCallbacks
    def start(self) -> Any:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.server = MailServer(os.path.join(self.directory, "server"))
        yield self.server.start()
        self.addCleanup(self.server.stop)
        self.server.add_domain("example.com")
        self.user = self.server.add_user(USER)
        self.maildir = os.path.join(self.directory, "mail")
        os.makedirs(self.maildir)
        self.rc = mbsync.write_config(
            os.path.join(self.directory, "mbsyncrc"), port=self.server.ports["IMAPS"],
            user=USER, password=PASSWORD, ca_file=self.server.ca.cert_path,
            maildir=self.maildir)
        self.runs: list[str] = []

    # --- the two sides -----------------------------------------------------------------------

    @defer.inlineCallbacks
    def deliver_all(self, raws: list[tuple[bytes, tuple[str, ...]]]) -> Any:
        """Store messages as the SMTP pipeline does (sealed under the user's key, analysed),
        all in one transaction: 500 SMTP sessions would only slow the test down."""
        parts = self.server.root.components
        store, keyring = parts["blob_store"], parts["keyring"]

        def seal() -> list[tuple[Any, bytes, tuple[str, ...]]]:
            out = []
            for raw, flags in raws:
                sealed = store.seal(keyring, self.user.uuid, raw)
                out.append((sealed, ms.seal_info(keyring, self.user.uuid, sealed.blob_id,
                                                 analyse(raw)), flags))
            return out

        sealed = yield deferToThread(seal)
        now = datetime.now(timezone.utc)

        def write(conn: Any) -> None:
            for n, (blob, meta, flags) in enumerate(sealed):
                ms.deliver(conn, self.user, "inbox", blob, meta, flags, arrival(n), now,
                           blob_store=store)

        yield self.server.root.runner.write(write)

    def imap(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(client)`` with a logged-in imaplib client over IMAPS, in a thread."""
        def call() -> Any:
            client = mbsync.imap_connect(self.server.ports["IMAPS"], USER, PASSWORD,
                                         self.server.client_tls())
            try:
                return work(client)
            finally:
                try:
                    client.logout()
                except Exception:
                    pass
        return deferToThread(call)

    def server_box(self, mailbox: str) -> Any:
        return self.imap(lambda client: mbsync.imap_snapshot(client, mailbox))

    def local_box(self, mailbox: str) -> dict[str, mbsync.Copy]:
        return mbsync.maildir_snapshot(os.path.join(self.maildir, mailbox))

    @defer.inlineCallbacks
    def sync(self) -> Any:
        output = yield deferToThread(mbsync.run, self.rc, self.directory)
        self.runs.append(output)
        with open(os.path.join(self.directory, f"mbsync-run-{len(self.runs)}.log"), "w") as log:
            log.write(output)
        return output

    def output(self) -> str:
        """For failure messages: where each run's full -Dn log is, and what it complained of."""
        return "\n".join(f"--- mbsync run {n + 1}: {self.directory}/mbsync-run-{n + 1}.log ---\n"
                         + mbsync.complaints(text) for n, text in enumerate(self.runs))

    # --- comparisons -------------------------------------------------------------------------

    def assert_same_messages(self, mailbox: str, server: dict[str, mbsync.Copy],
                             local: dict[str, mbsync.Copy],
                             expected: dict[str, str]) -> None:
        """Both sides hold exactly the ``expected`` Message-IDs with the expected flag letters
        and the same arrival date (INTERNALDATE = the file's mtime), and every message's bytes are equal up to CRLF (server) / LF (Maildir) line ends and
        the one X-TUID header mbsync puts into the copy it propagated (so exactly one of the
        two copies has it)."""
        problems = []
        for side, copies in (("server", server), ("maildir", local)):
            missing = sorted(set(expected) - set(copies))
            unexpected = sorted(set(copies) - set(expected))
            if missing:
                problems.append(f"{side} lacks {len(missing)}: {missing[:20]}")
            if unexpected:
                problems.append(f"{side} has {len(unexpected)} unexpected: {unexpected[:20]}")
        for key in sorted(set(expected) & set(server) & set(local)):
            far, near = server[key], local[key]
            if far.date != near.date:
                problems.append(f"{key}: arrival date differs, server INTERNALDATE {far.date}"
                                f" ({far.where}), maildir mtime {near.date} ({near.where})")
            if far.flags != expected[key] or near.flags != expected[key]:
                problems.append(f"{key}: flags expected {expected[key]!r}, server {far.flags!r}"
                                f" ({far.where}), maildir {near.flags!r} ({near.where})")
            far_body, far_tuids = mbsync.strip_tuid(far.body)
            near_body, near_tuids = mbsync.strip_tuid(near.body)
            if mbsync.lf(far_body) != near_body or far_tuids + near_tuids != 1:
                problems.append(f"{key}: content differs, server {far.where} {len(far.body)}b"
                                f" {far.body[:120]!r}..., maildir {near.where} "
                                f"{len(near.body)}b {near.body[:120]!r}...")
        if problems:
            self.fail(f"{mailbox}: {len(problems)} differences:\n" + "\n".join(problems[:60])
                      + "\n" + self.output())


class FullSyncTests(MbsyncTestBase):
    @defer.inlineCallbacks
    def test_500_messages_two_way_flags_deletions_then_idempotent(self) -> Any:
        originals = {mid(i): make_message(i) for i in range(COUNT)}
        yield self.deliver_all([(make_message(i), initial_flags(i)) for i in range(COUNT)])
        expected = {mid(i): letters(initial_flags(i)) for i in range(COUNT)}

        # 1. The first sync: everything comes down, byte for byte (up to line ends).
        yield self.sync()
        server, status1 = yield self.server_box("INBOX")
        local = self.local_box("INBOX")
        self.assertEqual(len(mbsync.maildir_files(os.path.join(self.maildir, "INBOX"))), COUNT,
                         self.output())
        self.assert_same_messages("INBOX", server, local, expected)
        for i in range(COUNT):  # the server still serves what was delivered, when delivered
            self.assertEqual(server[mid(i)].body, originals[mid(i)], mid(i))
            self.assertEqual(server[mid(i)].date, int(arrival(i).timestamp()), mid(i))
        # The Maildir copy is the delivered message, LF line ends and X-TUID aside.
        for key, copy in local.items():
            self.assertEqual(mbsync.strip_tuid(copy.body), (mbsync.lf(originals[key]), 1), key)
        # Every default mailbox of the server was created in the Maildir (Create Both).
        for name in ("Archive", "Drafts", "Sent", "Spam", "Trash"):
            self.assertTrue(os.path.isdir(os.path.join(self.maildir, name, "cur")), name)

        # 2. Changes on both sides.
        n = {i: mid(i) for i in range(COUNT)}
        server_changes = [
            ("+FLAGS", "(\\Seen)", range(100, 120)),
            ("+FLAGS", "(\\Flagged)", range(120, 130)),
            ("+FLAGS", "(\\Answered)", range(130, 135)),
            ("-FLAGS", "(\\Seen)", (11, 21, 31)),           # initially \Seen
            ("+FLAGS", "(\\Deleted)", range(200, 205)),     # expunged below
            ("+FLAGS", "(\\Flagged)", (450,)),              # and \Seen locally
            ("-FLAGS", "(\\Flagged \\Answered)", (47,)),    # initially both
        ]
        appended = extra_message("server-append", "appended on the server, Grüße")
        delivered = extra_message("server-deliver", "delivered on the server")

        def change_server(client: Any) -> None:
            uids = {key: str(copy.uid) for key, copy in server.items()}
            client.select("INBOX")
            for op, flags, indexes in server_changes:
                typ, data = client.uid("STORE", ",".join(uids[n[i]] for i in indexes), op,
                                       flags)
                assert typ == "OK", (op, flags, typ, data)
            typ, data = client.expunge()
            assert typ == "OK", data
            # 205 and 206 stay \Deleted without EXPUNGE: mbsync propagates and expunges them
            typ, data = client.uid("STORE", ",".join(uids[n[i]] for i in (205, 206)),
                                   "+FLAGS", "(\\Deleted)")
            assert typ == "OK", data
            typ, data = client.append("INBOX", "(\\Flagged)", None, appended)
            assert typ == "OK", data

        yield self.imap(change_server)
        yield self.deliver_all([(delivered, ())])
        for op, flags, indexes in server_changes:
            change = set(letters(tuple(flags.strip("()").split())))
            for i in indexes:
                now = set(expected[n[i]])
                expected[n[i]] = "".join(sorted(now | change if op[0] == "+" else now - change))
        for i in range(200, 207):  # \Deleted: expunged by the client or by mbsync
            del expected[n[i]]
        expected["<server-append@mbsync.test>"] = "F"
        expected["<server-deliver@mbsync.test>"] = ""

        inbox = os.path.join(self.maildir, "INBOX")
        by_id = {key: os.path.join(inbox, copy.where) for key, copy in local.items()}

        def relabel(indexes: Any, add: str = "", remove: str = "") -> None:
            for i in indexes:
                path = by_id[n[i]]
                now = (set(mbsync.maildir_letters(os.path.basename(path))) | set(add)) - set(remove)
                by_id[n[i]] = mbsync.set_letters(path, "".join(now))
                # merged with what the server side changed on the same message
                expected[n[i]] = "".join(sorted((set(expected[n[i]]) | set(add)) - set(remove)))

        relabel(range(300, 320), add="S")
        relabel(range(320, 330), add="F")
        relabel((330,), add="D")
        relabel((331,), add="RS")
        relabel((41, 51), remove="S")               # initially \Seen
        relabel((92,), remove="FR")                 # initially \Flagged \Answered
        relabel((450,), add="S")                    # \Flagged on the server
        relabel((405, 406), add="T")                # trashed locally: gone after Expunge Both
        for i in (405, 406):
            del expected[n[i]]
        for i in range(400, 405):                   # deleted locally
            os.unlink(by_id.pop(n[i]))
            del expected[n[i]]
        new_local = {
            "<local-new@mbsync.test>": ("new", "", extra_message("local-new", "written here")),
            "<local-seen@mbsync.test>": ("cur", "S", extra_message("local-seen", "read, ✓")),
        }
        for number, (key, (sub, flags, raw)) in enumerate(sorted(new_local.items())):
            name = f"1767600000.M{number}P1.test:2,{flags}"
            with open(os.path.join(inbox, sub, name), "wb") as handle:
                handle.write(mbsync.lf(raw))  # a local MUA writes LF line ends
            os.utime(os.path.join(inbox, sub, name), (LOCAL_DATE + number, LOCAL_DATE + number))
            expected[key] = flags
        self.assertEqual(expected[n[450]], "FS")

        # 3. The second sync, then both sides compared message by message.
        yield self.sync()
        server, status2 = yield self.server_box("INBOX")
        local = self.local_box("INBOX")
        self.assert_same_messages("INBOX", server, local, expected)
        self.assertEqual(status2["UIDVALIDITY"], status1["UIDVALIDITY"])
        for key, copy in server.items():
            if key in originals:
                self.assertEqual(copy.body, originals[key], key)
        self.assertEqual(server["<server-append@mbsync.test>"].body, appended)
        self.assertEqual(server["<server-deliver@mbsync.test>"].body, delivered)
        for number, (key, (sub, flags, raw)) in enumerate(sorted(new_local.items())):
            # uploaded with CRLF, an X-TUID, and the file's mtime as INTERNALDATE
            self.assertEqual(mbsync.strip_tuid(server[key].body), (raw, 1),
                             f"{key} on the server\n{self.output()}")
            self.assertEqual(server[key].date, LOCAL_DATE + number, key)
            self.assertEqual(local[key].body, mbsync.lf(raw))  # the local file is left alone
        # What IMAP serves is what the store holds.
        self.assertEqual(sorted(self.server.stored(USER, "inbox")),
                         sorted(copy.body for copy in server.values()))

        # mbsync learnt the UIDs of its two uploads from APPENDUID (RFC 4315), without
        # falling back to searching for its X-TUID header.
        sent = mbsync.commands(self.runs[1])
        self.assertEqual(len([c for c in sent if c.startswith("APPEND ")]), 2, self.output())
        self.assertEqual(self.runs[1].count("[APPENDUID "), 2, self.output())
        self.assertFalse([c for c in sent if "SEARCH" in c], self.output())

        # A third run has nothing to do: no change on either side, and on the wire nothing
        # but reading the state (no STORE, APPEND, body FETCH, CREATE, EXPUNGE).
        before_tree = mbsync.tree(self.maildir)
        before_server = yield self.imap(self._server_state)
        output = yield self.sync()
        self.assertEqual(mbsync.tree(self.maildir), before_tree, self.output())
        self.assertEqual((yield self.imap(self._server_state)), before_server, self.output())
        allowed = ("AUTHENTICATE ", "COMPRESS DEFLATE", "NAMESPACE", "LIST ", "SELECT ", "CLOSE",
                   "LOGOUT")
        busy = [c for c in mbsync.commands(output)
                if not c.startswith(allowed) and not c.endswith("(UID FLAGS)")]
        self.assertEqual(busy, [], self.output())
        server3, status3 = yield self.server_box("INBOX")
        self.assert_same_messages("INBOX", server3, self.local_box("INBOX"), expected)
        self.assertEqual(status3["UIDVALIDITY"], status1["UIDVALIDITY"])

    @staticmethod
    def _server_state(client: Any) -> dict[str, Any]:
        """Every mailbox with its status (UIDNEXT, HIGHESTMODSEQ...) and messages' flags."""
        typ, listing = client.list()
        assert typ == "OK", listing
        names = sorted(line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in listing)
        state = {}
        for name in names:
            copies, status = mbsync.imap_snapshot(client, name)
            state[name] = (status, {k: (c.flags, c.where, c.body) for k, c in copies.items()})
        return state


class LocalFolderTests(MbsyncTestBase):
    @defer.inlineCallbacks
    def test_folders_created_in_the_maildir_appear_on_the_server(self) -> Any:
        yield self.sync()  # the initial state: server's default mailboxes made locally
        expected: dict[str, dict[str, str]] = {"Projects": {}, "Projects/Q3": {}}
        contents = {}
        for folder, count in (("Projects", 3), ("Projects/Q3", 2)):
            path = os.path.join(self.maildir, *folder.split("/"))
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(path, sub))
            for k in range(count):
                name = f"{folder.replace('/', '-')}-{k}"
                raw = extra_message(name, f"message {k} of {folder}, façade\r\nsecond line")
                info = ("", "S", "FS")[k % 3]
                sub = "new" if not info else "cur"
                with open(os.path.join(path, sub, f"1767700000.M{k}P2.test:2,{info}"),
                          "wb") as handle:
                    handle.write(mbsync.lf(raw))
                expected[folder][f"<{name}@mbsync.test>"] = info
                contents[f"<{name}@mbsync.test>"] = raw

        yield self.sync()

        def listing(client: Any) -> list[bytes]:
            typ, data = client.list()
            assert typ == "OK", data
            return data

        names = yield self.imap(listing)
        self.assertIn(b'"/" "Projects"', b"\n".join(names))
        self.assertIn(b'"/" "Projects/Q3"', b"\n".join(names))
        for folder, flags in expected.items():
            server, status = yield self.server_box(folder)
            local = self.local_box(folder.replace("/", os.sep))
            self.assert_same_messages(folder, server, local, flags)
            for key, copy in server.items():
                self.assertEqual(mbsync.strip_tuid(copy.body), (contents[key], 1), key)
                self.assertEqual(local[key].body, mbsync.lf(contents[key]), key)

        # Changes on the server side of the new folder come back down.
        def change(client: Any) -> None:
            server, status = mbsync.imap_snapshot(client, "Projects")
            client.select("Projects")
            uid = str(server["<Projects-0@mbsync.test>"].uid)
            typ, data = client.uid("STORE", uid, "+FLAGS", "(\\Answered \\Seen)")
            assert typ == "OK", data
            uid = str(server["<Projects-2@mbsync.test>"].uid)
            typ, data = client.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
            assert typ == "OK", data
            typ, data = client.expunge()
            assert typ == "OK", data

        yield self.imap(change)
        expected["Projects"]["<Projects-0@mbsync.test>"] = "RS"
        del expected["Projects"]["<Projects-2@mbsync.test>"]
        yield self.sync()
        for folder, flags in expected.items():
            server, status = yield self.server_box(folder)
            self.assert_same_messages(folder, server, self.local_box(folder), flags)
