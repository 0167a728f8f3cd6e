"""Reading mail safely (issue 13 item 2): the sanitiser alone over the hostile corpus, CSS
neutralised by a parser, plain text escaped with links, cid: images, charsets, malformed
MIME and a 10,000-part message; and the routes over HTTP: the body's own CSP and framing
headers, view source, another user's id (404), remote content per sender (CSRF-checked,
stored as a keyed hash)."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from typing import Any

from sqlalchemy import select
from twisted.internet import defer
from twisted.trial import unittest

from mailgosend.db.runner import run_sync
from mailgosend.db.schema import remote_content_senders
from mailgosend.jmap import parts as jparts
from mailgosend.store.mimeinfo import analyse
from mailgosend.web.webmail_body import (Findings, body_csp, render_body, sanitise_css,
                                         sanitise_html, text_to_html)
from tests.support.mailserver import PASSWORD
from tests.support.web import WebServerTestCase
from tests.test_webmail_browser import ALICE, BOB, html_message, vectors

TRACKER = "http://127.0.0.5:9"
FORBIDDEN_TAGS = {"script", "svg", "math", "iframe", "object", "embed", "form", "input",
                  "button", "base", "meta", "link", "frame", "frameset", "animate", "set",
                  "template", "noscript", "portal", "applet", "textarea", "video", "audio",
                  "source", "picture", "area", "map", "label"}


class Elements(HTMLParser):
    """What a browser would see as elements and attributes in sanitised HTML (text, even
    text that looks like markup, is harmless)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.in_style = tag == "style"
        if tag in FORBIDDEN_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on") or name in ("srcset", "formaction", "ping", "lowsrc",
                                                  "dynsrc", "poster", "usemap"):
                self.found.append(f"{tag} {name}")
            if re.match(r"\s*(javascript|vbscript|data:text|data:image/svg)", value, re.I):
                self.found.append(f"{tag} {name}={value}")
            if "127.0.0.5" in value:
                self.found.append(f"{tag} {name} remote")

    def handle_endtag(self, tag: str) -> None:
        self.in_style = False

    def handle_data(self, data: str) -> None:
        if self.in_style and ("127.0.0.5" in data or "url(" in data.lower()
                              or "@import" in data.lower()):
            self.found.append(f"style {data}")

    @classmethod
    def bad(cls, html: str) -> list[str]:
        parser = cls()
        parser.feed(html)
        parser.close()
        return parser.found


def rendered(raw: bytes, **kwargs: Any) -> str:
    return render_body(analyse(raw), raw, **kwargs).document.decode("utf-8")


class SanitiserTests(unittest.TestCase):
    def test_corpus_leaves_no_script_handler_or_remote_url(self) -> None:
        corpus = vectors(TRACKER, 9)
        self.assertGreaterEqual(len(corpus), 80)
        for name, body in corpus:
            out = sanitise_html(body)
            self.assertEqual(Elements.bad(out), [], (name, out))

    def test_css_that_loads_anything_is_removed_by_a_parser(self) -> None:
        found = Findings()
        css = sanitise_css(
            "@import url(http://t/a.css); @import 'http://t/b.css';"
            "@font-face{font-family:x;src:url(http://t/f.woff)}"
            "body{color:red;background:url(http://t/bg.png)}"
            "p{background:\\75 rl(http://t/esc.png);margin:0}"
            "q{background-image:image-set('http://t/i.png' 1x);-webkit-mask:url(m.svg)}"
            "@media print{a{cursor:url(http://t/c.cur),auto;color:blue}}"
            "s{behavior:url(x.htc);width:expression(alert(1))}"
            "div{content:'</style><script>alert(1)</script>'}", found=found)
        self.assertNotIn("http://t", css)
        self.assertNotIn("url(", css.lower())
        self.assertNotIn("</style", css.lower())
        self.assertNotIn("expression", css)
        self.assertIn("color:red", css)
        self.assertIn("margin:0", css)
        self.assertIn("@media print{a{color:blue}}", css)
        self.assertGreaterEqual(found.remote, 7)

    def test_remote_content_kept_only_when_allowed(self) -> None:
        html = (f'<img src="{TRACKER}/a.png"><p style="background:url({TRACKER}/b.png)">x</p>'
                f'<table background="{TRACKER}/c.png"><tr><td>y</td></tr></table>')
        blocked = sanitise_html(html)
        self.assertNotIn(TRACKER, blocked)
        allowed = sanitise_html(html, remote=True)
        for name in ("a.png", "b.png", "c.png"):
            self.assertIn(f"{TRACKER}/{name}", allowed)
        # Never a non-web URL, even when allowed.
        self.assertNotIn("javascript", sanitise_html(
            '<p style="background:url(javascript:alert(1))">x</p>', remote=True))

    def test_links_open_in_a_new_tab_without_referrer(self) -> None:
        out = sanitise_html('<a href="https://example.org/x">x</a>')
        self.assertIn('target="_blank"', out)
        self.assertIn('rel="noopener noreferrer"', out)

    def test_plain_text_is_escaped_with_clickable_links(self) -> None:
        out = text_to_html('<b>hi</b> see https://example.org/a?b=1&c=2. or mailto:x@y.org\n')
        self.assertIn("&lt;b&gt;hi&lt;/b&gt;", out)
        self.assertIn('<a href="https://example.org/a?b=1&amp;c=2" target="_blank" '
                      'rel="noopener noreferrer">', out)
        self.assertIn('href="mailto:x@y.org"', out)

    def test_body_csp_blocks_everything_but_data_images_and_inline_style(self) -> None:
        csp = body_csp(remote=False)
        self.assertTrue(csp.startswith("sandbox "))
        self.assertNotIn("allow-scripts", csp)
        self.assertNotIn("allow-same-origin", csp)
        self.assertIn("default-src 'none'", csp)
        self.assertIn("img-src data:;", csp)
        self.assertIn("img-src data: http: https:", body_csp(remote=True))


PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAE"
                       "hQGAhKmMIQAAAABJRU5ErkJggg==")


class RenderTests(unittest.TestCase):
    def test_cid_image_becomes_a_data_url_of_the_message_part(self) -> None:
        raw = ("From: a@x.org\r\nSubject: cid\r\nMIME-Version: 1.0\r\n"
               'Content-Type: multipart/related; boundary="r"\r\n\r\n--r\r\n'
               "Content-Type: text/html; charset=utf-8\r\n\r\n"
               '<p>Logo: <img src="cid:logo@x"></p>\r\n--r\r\n'
               "Content-Type: image/png\r\nContent-ID: <logo@x>\r\n"
               "Content-Transfer-Encoding: base64\r\n\r\n"
               + base64.b64encode(PNG).decode() + "\r\n--r--\r\n").encode()
        out = rendered(raw)
        self.assertIn('src="data:image/png;base64,' + base64.b64encode(PNG).decode(), out)

    def test_charsets_are_decoded(self) -> None:
        for charset, text in (("iso-8859-1", "Grüße"), ("koi8-r", "Привет"),
                              ("shift_jis", "こんにちは"), ("windows-1252", "“quoted”")):
            raw = (f"From: a@x.org\r\nSubject: c\r\nMIME-Version: 1.0\r\n"
                   f"Content-Type: text/plain; charset={charset}\r\n"
                   "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + text.encode(charset)
            self.assertIn(text, rendered(raw, prefer_text=True), charset)

    def test_broken_charsets_and_malformed_mime_render(self) -> None:
        samples = [
            b"From: a@x.org\r\nContent-Type: text/html; charset=x-no-such\r\n\r\n<p>\xff\xfe ok</p>",
            b"From: a@x.org\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbad \xc3\x28 utf8",
            b"From: a@x.org\r\nContent-Type: multipart/mixed; boundary=\"z\"\r\n\r\n--z\r\n"
            b"Content-Type: text/plain\r\n\r\nno closing boundary",
            b"From: a@x.org\r\nContent-Type: multipart/mixed\r\n\r\nno boundary parameter",
            b"From: a@x.org\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64"
            b"\r\n\r\n!!!not base64###",
            b"From: a@x.org\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: x-weird"
            b"\r\n\r\n<p>x</p>",
            b"garbage without headers at all",
            b"",
        ]
        for raw in samples:
            out = rendered(raw)
            self.assertTrue(out.startswith("<!doctype html>"), raw)

    def test_ten_thousand_parts(self) -> None:
        # More parts than the store analyses (MAX_PARTS): the message is one opaque part,
        # shown as an attachment; rendering it is quick and does not fail.
        parts = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
                        for i in range(10_000))
        raw = ("From: a@x.org\r\nSubject: many\r\nMIME-Version: 1.0\r\n"
               'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + "--b--\r\n"
               ).encode()
        info = analyse(raw)
        self.assertTrue(render_body(info, raw).document.startswith(b"<!doctype html>"))
        self.assertEqual(jparts.classify(info.root)[2], [info.root])
        small = raw.replace(b"part 4999", b"part 4999\r\n--b--").split(b"--b--")[0] + b"--b--"
        out = rendered(small)
        self.assertIn("part 0", out)
        self.assertIn("part 4998", out)


class WebmailRoutesTests(WebServerTestCase):
    users = (ALICE, BOB)

    @defer.inlineCallbacks
    def deliver(self, email: str, raw: bytes) -> Any:
        mail = self.server.root.components["mail"]
        user = yield mail.open_account(email)
        inbox = yield user.get_mailbox("INBOX")
        delivered = yield user.append(inbox.id, raw, [], None)
        return f"M{delivered.email_id}"

    @defer.inlineCallbacks
    def signed_in(self, email: str = ALICE) -> Any:
        client = self.client()
        reply = yield client.sign_in(email, PASSWORD)
        self.assertEqual(reply.status_code, 303)
        return client

    @defer.inlineCallbacks
    def test_body_has_its_own_csp_and_may_be_framed_only_by_us(self) -> Any:
        email_id = yield self.deliver(ALICE, html_message(
            "Hi", '<p onclick="x()">Hello</p><img src="http://127.0.0.5:9/t.png">'))
        client = yield self.signed_in()
        reply = yield client.get(f"/mail/body/{email_id}")
        self.assertEqual(reply.status_code, 200)
        csp = reply.headers["Content-Security-Policy"]
        self.assertEqual(csp, body_csp(remote=False))
        self.assertEqual(reply.headers["X-Frame-Options"], "SAMEORIGIN")
        self.assertEqual(reply.headers["X-Content-Type-Options"], "nosniff")
        self.assertIn("Hello", reply.text)
        self.assertNotIn("onclick", reply.text)
        self.assertNotIn("127.0.0.5", reply.text)
        info = yield client.get(f"/mail/info/{email_id}")
        self.assertEqual(info.json(), {"remote": 1, "sender": "news@sender.example",
                                       "senderAllowed": False})
        remote = yield client.get(f"/mail/body/{email_id}?remote=1")
        self.assertIn("127.0.0.5", remote.text)
        self.assertEqual(remote.headers["Content-Security-Policy"], body_csp(remote=True))
        page = yield client.get("/mail")
        self.assertEqual(page.status_code, 200)
        self.assertIn("frame-src 'self'", page.headers["Content-Security-Policy"])
        self.assertNotIn("unsafe-inline", page.headers["Content-Security-Policy"])

    @defer.inlineCallbacks
    def test_source_is_plain_text_in_a_sandbox(self) -> Any:
        email_id = yield self.deliver(ALICE, html_message("Src", "<script>x</script>"))
        client = yield self.signed_in()
        reply = yield client.get(f"/mail/source/{email_id}")
        self.assertEqual(reply.status_code, 200)
        self.assertEqual(reply.headers["Content-Type"], "text/plain; charset=utf-8")
        self.assertTrue(reply.headers["Content-Security-Policy"].startswith("sandbox"))
        self.assertIn("Subject: Src", reply.text)
        self.assertIn("<script>x</script>", reply.text)

    @defer.inlineCallbacks
    def test_another_users_message_is_not_found(self) -> Any:
        bobs = yield self.deliver(BOB, html_message("Bob's secret", "<p>secret</p>"))
        client = yield self.signed_in(ALICE)
        for path in (f"/mail/body/{bobs}", f"/mail/info/{bobs}", f"/mail/source/{bobs}",
                     "/mail/body/M999999", "/mail/body/nonsense", f"/mail/body/{bobs}?text=1"):
            reply = yield client.get(path)
            self.assertEqual(reply.status_code, 404, path)
            self.assertNotIn("secret", reply.text)
        anonymous = self.client()
        reply = yield anonymous.get(f"/mail/body/{bobs}")
        self.assertEqual(reply.status_code, 404)
        reply = yield anonymous.get("/mail")
        self.assertEqual((reply.status_code, reply.headers["Location"]), (303, "/login"))

    @defer.inlineCallbacks
    def test_always_show_remote_content_from_a_sender(self) -> Any:
        email_id = yield self.deliver(ALICE, html_message(
            "News", '<img src="http://127.0.0.5:9/t.png">'))
        client = yield self.signed_in()
        page = yield client.get("/mail")
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        refused = yield client.post("/mail/remote-senders", {"sender": "news@sender.example"})
        self.assertEqual(refused.status_code, 403)
        foreign = yield client.post("/mail/remote-senders",
                                    {"sender": "news@sender.example", "csrf_token": token},
                                    origin="https://evil.example")
        self.assertEqual(foreign.status_code, 403)
        bad = yield client.post("/mail/remote-senders", {"sender": "nobody", "csrf_token": token})
        self.assertEqual(bad.status_code, 400)
        self.assertIn("sender", bad.json()["error"])
        ok = yield client.post("/mail/remote-senders",
                               {"sender": "News@Sender.example", "csrf_token": token})
        self.assertEqual(ok.status_code, 200)
        body = yield client.get(f"/mail/body/{email_id}")
        self.assertIn("127.0.0.5", body.text)
        self.assertEqual(body.headers["Content-Security-Policy"], body_csp(remote=True))
        rows = run_sync(self.server.engine, lambda conn: conn.execute(
            select(remote_content_senders)).fetchall(), write=False)
        self.assertEqual(len(rows), 1)
        self.assertNotIn(b"sender.example", bytes(rows[0].sender_hash))
        self.assertEqual(len(rows[0].sender_hash), 32)
        # Bob's allowance list is his own.
        bob = yield self.signed_in(BOB)
        bobs = yield self.deliver(BOB, html_message("News", '<img src="http://127.0.0.5:9/t">'))
        reply = yield bob.get(f"/mail/body/{bobs}")
        self.assertNotIn("127.0.0.5", reply.text)
