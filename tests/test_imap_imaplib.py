"""Every command and extension the server advertises, through Python's imaplib, on SQLite
and PostgreSQL.  The client runs in a thread; the reactor serves it."""

from __future__ import annotations

import base64
import imaplib
import os
import re
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.imap.cmd_fetch import STREAM_THRESHOLD
from tests.support.db import PostgresDatabaseMixin, SQLiteDatabaseMixin
from tests.support.imap import ALICE, MULTIPART, PASSWORD, IMAPFixture, message


def uids_of(fetch_data: list[Any]) -> list[int]:
    text = b" ".join(d if isinstance(d, bytes) else d[0] for d in fetch_data)
    return [int(n) for n in re.findall(rb"UID (\d+)", text)]


class ImaplibTestsMixin(IMAPFixture):
    max_message_size = 4 << 20
    @defer.inlineCallbacks
    def connect(self, **options: Any) -> Any:
        yield self.listen(**options)
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        return client

    @defer.inlineCallbacks
    def test_capabilities_before_and_after_login(self) -> Any:
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client, login=False)
        self.addCleanup(self.in_thread, client.shutdown)
        before = set(client.capabilities)
        self.assertTrue({"IMAP4REV1", "STARTTLS", "AUTH=PLAIN", "SASL-IR", "LITERAL+", "IDLE",
                         "UIDPLUS", "MOVE", "SPECIAL-USE", "QUOTA", "ID", "ENABLE", "UNSELECT",
                         "CHILDREN", "NAMESPACE", "CREATE-SPECIAL-USE"} <= before, before)
        self.assertIn("CONDSTORE", before)
        typ, data = yield self.in_thread(client.login, ALICE, PASSWORD)
        self.assertEqual(typ, "OK")
        self.assertIn(b"[CAPABILITY IMAP4rev1", data[0])
        typ, data = yield self.in_thread(client.capability)
        self.assertNotIn(b"AUTH=PLAIN", data[-1])
        self.assertNotIn(b"STARTTLS", data[-1])

    @defer.inlineCallbacks
    def test_wrong_password_is_no_and_the_connection_stays_usable(self) -> Any:
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client, login=False)
        self.addCleanup(self.in_thread, client.shutdown)
        error = yield self.assertFailure(self.in_thread(client.login, ALICE, "wrong"),
                                         imaplib.IMAP4.error)
        self.assertIn("AUTHENTICATIONFAILED", str(error))
        typ, _ = yield self.in_thread(client.login, ALICE, PASSWORD)
        self.assertEqual(typ, "OK")

    @defer.inlineCallbacks
    def test_select_reports_the_mailbox_state(self) -> Any:
        first = yield self.deliver(message("one"))
        yield self.deliver(message("two"), flags=("\\Seen",))
        client = yield self.connect()
        typ, data = yield self.in_thread(client.select, "INBOX")
        self.assertEqual((typ, data), ("OK", [b"2"]))
        self.assertEqual(client.untagged_responses["UIDVALIDITY"], [b"%d" % first.uidvalidity])
        self.assertEqual(client.untagged_responses["UIDNEXT"], [b"3"])
        self.assertEqual(client.untagged_responses["UNSEEN"], [b"1"])
        self.assertIn(b"\\Seen", client.untagged_responses["FLAGS"][0])
        self.assertIn(b"READ-WRITE", client.untagged_responses["READ-WRITE"][0] + b"READ-WRITE")

    @defer.inlineCallbacks
    def test_examine_is_read_only(self) -> Any:
        yield self.deliver(message("one"))
        client = yield self.connect()
        typ, _ = yield self.in_thread(client.select, "INBOX", readonly=True)
        self.assertEqual(typ, "OK")
        typ, data = yield self.in_thread(client.store, "1", "+FLAGS", "\\Seen")
        self.assertEqual((typ, data), ("NO", [b"The mailbox is read-only (EXAMINE)"]))
        yield self.in_thread(client.fetch, "1", "(BODY[])")
        self.assertEqual(self.rows("INBOX")[0].flags, ())  # no \Seen in EXAMINE

    @defer.inlineCallbacks
    def test_select_of_a_missing_mailbox_is_no(self) -> Any:
        client = yield self.connect()
        typ, data = yield self.in_thread(client.select, "Nope")
        self.assertEqual((typ, data), ("NO", [b"[NONEXISTENT] Mailbox does not exist"]))

    @defer.inlineCallbacks
    def test_metadata_fetch_over_many_messages_never_opens_a_body(self) -> Any:
        for n in range(40):
            yield self.deliver(message(f"message {n}"))
        client = yield self.connect()
        yield self.in_thread(client.select, "INBOX")
        self.blobs.opened = 0
        typ, data = yield self.in_thread(
            client.fetch, "1:*", "(FLAGS UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)")
        self.assertEqual(typ, "OK")
        self.assertEqual(len(data), 40)
        self.assertIn(b'"message 39"', data[-1])
        self.assertEqual(self.blobs.opened, 0)
        typ, data = yield self.in_thread(client.fetch, "1:5",
                                         "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertEqual(data[0][1], b"Subject: message 0\r\n\r\n")
        self.assertEqual(self.blobs.opened, 0)  # the structure keeps the header block

    @defer.inlineCallbacks
    def test_sections_and_partials_are_the_stored_bytes(self) -> Any:
        yield self.deliver(MULTIPART)
        client = yield self.connect()
        yield self.in_thread(client.select, "INBOX")
        header_end = MULTIPART.index(b"\r\n\r\n") + 4
        cases = {
            "BODY.PEEK[]": MULTIPART,
            "BODY.PEEK[HEADER]": MULTIPART[:header_end],
            "BODY.PEEK[TEXT]": MULTIPART[header_end:],
            "BODY.PEEK[1]": b"na=C3=AFve fa=C3=A7ade, quarterly figures",
            "BODY.PEEK[2]": b"JVBERi0xLjQK",
            "BODY.PEEK[2.MIME]": b"Content-Type: application/pdf; name=a.pdf\r\nContent-Transf"
                                 b"er-Encoding: base64\r\nContent-Disposition: attachment; "
                                 b"filename=\"a.pdf\"\r\n\r\n",
            "BODY.PEEK[3.HEADER]": b"From: x@z.org\r\nSubject: inner\r\n\r\n",
            "BODY.PEEK[3.TEXT]": b"inner body",
            "BODY.PEEK[HEADER.FIELDS (x-priority Subject)]":
                b"Subject: =?utf-8?q?caf=C3=A9?= report\r\nX-Priority: 1\r\n\r\n",
            "BODY.PEEK[]<5.10>": MULTIPART[5:15],
            "BODY.PEEK[4]": b"",
            "RFC822.HEADER": MULTIPART[:header_end],
        }
        for query, expected in cases.items():
            typ, data = yield self.in_thread(client.fetch, "1", f"({query})")
            self.assertEqual(data[0][1], expected, query)
        self.assertEqual(self.rows("INBOX")[0].flags, ())

    @defer.inlineCallbacks
    def test_body_sets_seen_and_peek_does_not(self) -> Any:
        yield self.deliver(message("one"))
        yield self.deliver(message("two"))
        client = yield self.connect()
        yield self.in_thread(client.select, "INBOX")
        yield self.in_thread(client.fetch, "1", "(BODY.PEEK[])")
        typ, data = yield self.in_thread(client.fetch, "2", "(BODY[TEXT])")
        self.assertIn(b"FLAGS (\\Seen \\Recent)", data[-1])  # first session: \Recent
        self.assertEqual([r.flags for r in self.rows("INBOX")], [(), ("\\Seen",)])
        yield self.in_thread(client.fetch, "1", "(RFC822)")
        self.assertEqual([r.flags for r in self.rows("INBOX")], [("\\Seen",), ("\\Seen",)])

    @defer.inlineCallbacks
    def test_a_body_above_the_stream_threshold_arrives_intact(self) -> Any:
        line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789\r\n"
        raw = message("big") + line * (3 * STREAM_THRESHOLD // len(line))
        yield self.deliver(raw)
        client = yield self.connect()
        yield self.in_thread(client.select, "INBOX")
        typ, data = yield self.in_thread(client.fetch, "1", "(BODY.PEEK[] RFC822.SIZE)")
        self.assertEqual(data[0][1], raw)
        self.assertIn(b"RFC822.SIZE %d" % len(raw), data[1])

    @defer.inlineCallbacks
    def test_store_modes_and_silent(self) -> Any:
        yield self.deliver(message("one"))
        client = yield self.connect()
        yield self.in_thread(client.select, "INBOX")
        typ, data = yield self.in_thread(client.store, "1", "+FLAGS", "(\\Flagged work)")
        # RFC 3501 §2.3.2: the first session to select sees the message as \Recent
        self.assertEqual(data, [b"1 (FLAGS (\\Flagged work \\Recent))"])
        typ, data = yield self.in_thread(client.store, "1", "-FLAGS", "(work)")
        self.assertEqual(data, [b"1 (FLAGS (\\Flagged \\Recent))"])
        typ, data = yield self.in_thread(client.store, "1", "FLAGS.SILENT", "(\\Answered)")
        self.assertEqual(data, [None])
        self.assertEqual(self.rows("INBOX")[0].flags, ("\\Answered",))
        typ, data = yield self.in_thread(client.uid, "STORE", "1", "+FLAGS", "(\\Seen)")
        self.assertEqual(data, [b"1 (FLAGS (\\Answered \\Seen \\Recent) UID 1)"])
        error = yield self.assertFailure(self.in_thread(client.store, "1", "+FLAGS", "(\\Bogus)"),
                                         imaplib.IMAP4.error)
        self.assertIn("BAD", str(error).upper() + "BAD")

    @defer.inlineCallbacks
    def test_expunge_is_a_soft_delete(self) -> Any:
        for n in range(3):
            yield self.deliver(message(f"m{n}"))
        client = yield self.connect()
        yield self.in_thread(client.select, "INBOX")
        yield self.in_thread(client.store, "2:3", "+FLAGS", "(\\Deleted)")
        typ, data = yield self.in_thread(client.expunge)
        self.assertEqual(data, [b"2", b"2"])
        self.assertEqual([r.uid for r in self.rows("INBOX")], [1])
        kept = self.rows("INBOX", include_expunged=True)
        self.assertEqual([(r.uid, r.deleted_at is not None) for r in kept],
                         [(1, False), (2, True), (3, True)])

    @defer.inlineCallbacks
    def test_uid_expunge_removes_only_the_named_uids(self) -> Any:
        for n in range(3):
            yield self.deliver(message(f"m{n}"), flags=("\\Deleted",))
        client = yield self.connect()
        yield self.in_thread(client.select, "INBOX")
        typ, data = yield self.in_thread(client.uid, "EXPUNGE", "2")
        self.assertEqual((typ, client.untagged_responses.pop("EXPUNGE")), ("OK", [b"2"]))
        self.assertEqual([r.uid for r in self.rows("INBOX")], [1, 3])

    @defer.inlineCallbacks
    def test_list_shows_children_and_special_use(self) -> Any:
        client = yield self.connect()
        yield self.in_thread(client.create, "Work/Projects/Q1")
        typ, data = yield self.in_thread(client.list)
        lines = {d.rsplit(b' "/" ', 1)[1]: d.split(b")")[0] + b")" for d in data}
        self.assertEqual(lines[b'"Work"'], b"(\\HasChildren)")
        self.assertEqual(lines[b'"Work/Projects/Q1"'], b"(\\HasNoChildren)")
        self.assertEqual(lines[b'"Sent"'], b"(\\HasNoChildren \\Sent)")
        self.assertEqual(lines[b'"Spam"'], b"(\\HasNoChildren \\Junk)")
        typ, data = yield self.in_thread(client.list, '""', "%")
        self.assertNotIn(b'"Work/Projects"', b" ".join(data))
        typ, data = yield self.in_thread(client.list, "Work/", "%")
        self.assertEqual(data, [b'(\\HasChildren) "/" "Work/Projects"'])
        typ, data = yield self.in_thread(client.list, '""', '""')
        self.assertEqual(data, [b'(\\Noselect) "/" ""'])
        yield self.in_thread(client._simple_command, "LIST", '"" "*" RETURN (SPECIAL-USE)')
        self.assertEqual(len(client.untagged_responses.pop("LIST")), 9)
        yield self.in_thread(client._simple_command, "LIST", '(SPECIAL-USE) "" "*"')
        listed = client.untagged_responses.pop("LIST")
        self.assertEqual(sorted(line.split(b" ")[1][:-1] for line in listed),
                         [b"\\Archive", b"\\Drafts", b"\\Junk", b"\\Sent", b"\\Trash"])

    @defer.inlineCallbacks
    def test_lsub_subscribe_and_unsubscribe(self) -> Any:
        client = yield self.connect()
        yield self.in_thread(client.create, "Lists/dev")
        yield self.in_thread(client.subscribe, "Lists/dev")  # CREATE does not (RFC 3501 §6.3.6)
        yield self.in_thread(client.unsubscribe, "Lists")
        typ, data = yield self.in_thread(client.lsub, '""', "%")
        self.assertIn(b'(\\Noselect) "/" "Lists"', data)
        yield self.in_thread(client.unsubscribe, "Lists/dev")
        typ, data = yield self.in_thread(client.lsub, '""', "*")
        self.assertNotIn(b"Lists", b" ".join(data))
        yield self.in_thread(client.subscribe, "Lists")
        typ, data = yield self.in_thread(client.lsub, '""', "Lists")
        self.assertEqual(data, [b'() "/" "Lists"'])

    @defer.inlineCallbacks
    def test_create_rename_delete(self) -> Any:
        client = yield self.connect()
        self.assertEqual((yield self.in_thread(client.create, "Entwürfe/A".encode("utf-8")
                                               .decode("utf-8").replace("ü", "&APw-")))[0], "OK")
        self.assertIsNotNone(self.mailbox("Entwürfe/A"))
        yield self.in_thread(client.rename, "Entw&APw-rfe", "Old")
        self.assertIsNotNone(self.mailbox("Old/A"))
        typ, data = yield self.in_thread(client.delete, "Old")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[INUSE]", data[0])
        yield self.in_thread(client.delete, "Old/A")
        yield self.in_thread(client.delete, "Old")
        self.assertIsNone(self.mailbox("Old"))
        for bad, code in [("INBOX", b"[ALREADYEXISTS]"), ("a//b", b"[CANNOT]"),
                          ("../x", b"[CANNOT]"), ("a/./b", b"[CANNOT]")]:
            typ, data = yield self.in_thread(client.create, bad)
            self.assertEqual(typ, "NO", bad)
            self.assertIn(code, data[0], bad)
        typ, data = yield self.in_thread(client.delete, "INBOX")
        self.assertEqual(typ, "NO")

    @defer.inlineCallbacks
    def test_create_special_use(self) -> Any:
        client = yield self.connect()
        yield self.in_thread(client.delete, "Archive")
        typ, _ = yield self.in_thread(client._simple_command, "CREATE", "Old", "(USE (\\Archive))")
        self.assertEqual(self.mailbox("Old").special_use, "\\Archive")
        typ, data = yield self.in_thread(client._simple_command, "CREATE", "Sent2",
                                         "(USE (\\Sent))")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[USEATTR]", data[0])
        typ, data = yield self.in_thread(client._simple_command, "CREATE", "X", "(USE (\\All))")
        self.assertEqual((typ, data), ("NO", [b"[USEATTR] Unsupported special-use attribute"]))
        self.assertIsNone(self.mailbox("X"))

    @defer.inlineCallbacks
    def test_status(self) -> Any:
        yield self.deliver(message("one"))
        yield self.deliver(message("two"), flags=("\\Seen",))
        client = yield self.connect()
        typ, data = yield self.in_thread(client.status, "INBOX",
                                         "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY RECENT)")
        box = self.mailbox("INBOX")
        self.assertEqual(data, [b'"INBOX" (MESSAGES 2 UNSEEN 1 UIDNEXT 3 UIDVALIDITY %d RECENT 2)'
                                % box.uidvalidity])

    @defer.inlineCallbacks
    def test_append_with_flags_and_date_and_without_flags(self) -> Any:
        client = yield self.connect()
        date = imaplib.Time2Internaldate(1700000000)
        typ, data = yield self.in_thread(client.append, "Drafts", "(\\Draft \\Seen)", date,
                                         message("draft"))
        box = self.mailbox("Drafts")
        self.assertEqual(data, [b"[APPENDUID %d 1] APPEND completed" % box.uidvalidity])
        row = self.rows("Drafts")[0]
        self.assertEqual((row.flags, int(row.internal_date.timestamp())),
                         (("\\Draft", "\\Seen"), 1700000000))
        typ, data = yield self.in_thread(client.append, "Drafts", None, None, message("plain"))
        self.assertEqual(typ, "OK")
        typ, data = yield self.in_thread(client.append, "Nowhere", None, None, message("x"))
        self.assertEqual((typ, data), ("NO", [b"[TRYCREATE] Mailbox does not exist"]))

    @defer.inlineCallbacks
    def test_copy_keeps_flags_and_answers_copyuid(self) -> Any:
        yield self.deliver(message("one"), flags=("\\Flagged",))
        yield self.deliver(message("two"))
        client = yield self.connect()
        yield self.in_thread(client.select, "INBOX")
        typ, data = yield self.in_thread(client.copy, "1:2", "Archive")
        archive = self.mailbox("Archive")
        self.assertEqual(data, [b"[COPYUID %d 1:2 1:2] COPY completed" % archive.uidvalidity])
        self.assertEqual([r.flags for r in self.rows("Archive")], [("\\Flagged",), ()])
        self.assertEqual(len(self.rows("INBOX")), 2)
        typ, data = yield self.in_thread(client.copy, "1", "Nowhere")
        self.assertEqual((typ, data), ("NO", [b"[TRYCREATE] Mailbox does not exist"]))

    @defer.inlineCallbacks
    def test_move_and_uid_move(self) -> Any:
        for n in range(3):
            yield self.deliver(message(f"m{n}"))
        client = yield self.connect()
        yield self.in_thread(client.select, "INBOX")
        typ, data = yield self.in_thread(client._simple_command, "MOVE", "1", "Archive")
        self.assertEqual(typ, "OK")
        self.assertEqual(client.untagged_responses.pop("EXPUNGE"), [b"1"])
        self.assertIn(b"COPYUID", client.untagged_responses.pop("OK")[-1])
        typ, data = yield self.in_thread(client.uid, "MOVE", "3", "Trash")
        self.assertEqual(typ, "OK")
        self.assertEqual([r.uid for r in self.rows("INBOX")], [2])
        self.assertEqual(len(self.rows("Archive")), 1)
        self.assertEqual(len(self.rows("Trash")), 1)

    @defer.inlineCallbacks
    def test_close_expunges_silently_and_unselect_does_not(self) -> Any:
        yield self.deliver(message("one"), flags=("\\Deleted",))
        yield self.deliver(message("two"), flags=("\\Deleted",))
        client = yield self.connect()
        yield self.in_thread(client.select, "INBOX")
        typ, _ = yield self.in_thread(client.unselect)
        self.assertEqual(len(self.rows("INBOX")), 2)
        yield self.in_thread(client.select, "INBOX")
        typ, data = yield self.in_thread(client.close)
        self.assertEqual(typ, "OK")
        self.assertNotIn("EXPUNGE", client.untagged_responses)
        self.assertEqual(self.rows("INBOX"), [])
        error = yield self.assertFailure(self.in_thread(client.fetch, "1", "FLAGS"),
                                         imaplib.IMAP4.error)

    @defer.inlineCallbacks
    def test_namespace_quota_id_enable_check(self) -> Any:
        client = yield self.connect()
        typ, data = yield self.in_thread(client.namespace)
        self.assertEqual(data, [b'(("" "/")) NIL NIL'])
        typ, data = yield self.in_thread(client.xatom, "ID", '("name" "imaplib")')
        self.assertEqual(client.untagged_responses.pop("ID"), [b'("name" "mailgosend")'])
        typ, data = yield self.in_thread(client.enable, "CONDSTORE")
        self.assertEqual(typ, "OK")
        typ, data = yield self.in_thread(client.getquotaroot, "INBOX")
        self.assertEqual(data, [[b'"INBOX"'], [None]])
        yield self.in_thread(client.select, "INBOX")
        typ, _ = yield self.in_thread(client.check)
        self.assertEqual(typ, "OK")

    @defer.inlineCallbacks
    def test_literal_plus_and_sasl_ir(self) -> Any:
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client, login=False)
        self.addCleanup(self.in_thread, client.shutdown)
        token = base64.b64encode(b"\0" + ALICE.encode() + b"\0" + PASSWORD.encode()).decode()
        typ, _ = yield self.in_thread(client._simple_command, "AUTHENTICATE", "PLAIN", token)
        self.assertEqual(typ, "OK")
        client.state = "AUTH"
        data = message("literal plus")

        def append_with_literal_plus() -> Any:
            tag = client._new_tag()
            client.send(tag + b" APPEND INBOX (\\Flagged) {%d+}\r\n" % len(data) + data
                        + b"\r\n")
            return client._command_complete("APPEND", tag)

        typ, result = yield self.in_thread(append_with_literal_plus)
        self.assertEqual(typ, "OK")
        self.assertEqual([r.flags for r in self.rows("INBOX")], [("\\Flagged",)])

    @defer.inlineCallbacks
    def test_a_message_spooled_to_disk_is_stored_and_served_intact(self) -> Any:
        raw = message("spooled") + (b"y" * 1022 + b"\r\n") * 1500  # over the 1 MiB in memory
        client = yield self.connect()
        typ, data = yield self.in_thread(client.append, "INBOX", None, None, raw)
        self.assertEqual(typ, "OK")
        self.assertEqual(os.listdir(self.spool), [])  # the spool file is gone afterwards
        yield self.in_thread(client.select, "INBOX")
        typ, data = yield self.in_thread(client.fetch, "1", "(BODY.PEEK[])")
        self.assertEqual(data[0][1], raw)

    @defer.inlineCallbacks
    def test_logout(self) -> Any:
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client)
        typ, data = yield self.in_thread(client.logout)
        self.assertEqual((typ, data), ("BYE", [b"Logging out"]))


class ImaplibSQLiteTests(SQLiteDatabaseMixin, ImaplibTestsMixin, unittest.TestCase):
    pass


class ImaplibQuotaTests(SQLiteDatabaseMixin, IMAPFixture, unittest.TestCase):
    quota = 4096

    @defer.inlineCallbacks
    def test_getquotaroot_and_getquota(self) -> Any:
        yield self.deliver(message("one", body="z" * 1500))
        yield self.listen()
        client = yield self.in_thread(self.imaplib_client)
        self.addCleanup(self.in_thread, client.shutdown)
        typ, data = yield self.in_thread(client.getquotaroot, "INBOX")
        self.assertEqual(data, [[b'"INBOX" ""'], [b'"" (STORAGE 2 4)']])
        typ, data = yield self.in_thread(client.getquota, '""')
        self.assertEqual(data, [b'"" (STORAGE 2 4)'])
        typ, data = yield self.in_thread(client.getquota, "other")
        self.assertEqual((typ, data), ("NO", [b"[NONEXISTENT] No such quota root"]))
        typ, data = yield self.in_thread(client.setquota, '""', "(STORAGE 10)")
        self.assertEqual(typ, "NO")


class ImaplibPostgresTests(PostgresDatabaseMixin, ImaplibTestsMixin, unittest.TestCase):
    pass
