"""Replays of what iOS/macOS (accountsd, Contacts), Thunderbird and DAVx5 send during
discovery and sync (tests/data/dav/*.txt): each request gets the status and the answer
parts those clients need (principal, home sets, collections, ctag/sync-token, ...)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from tests.support.dav import DavServerTestCase, transcript

USER = "alice@example.com"


def requests_of(name: str) -> list[tuple[str, str, list[str], dict[str, str], bytes]]:
    """(method, path, expected parts with the status first, headers, body) of a transcript."""
    text = transcript(name).decode().replace("{user_enc}", USER.replace("@", "%40"))
    text = text.replace("{user}", USER)
    found = []
    for block in text.split("\n----\n"):
        head, _, body = block.strip("\n").partition("\n\n")
        lines = head.split("\n")
        method, path = lines[0].split(" ", 1)
        wanted = [part.strip() for part in lines[1].removeprefix("# expect: ").split(" | ")]
        headers = dict(line.split(": ", 1) for line in lines[2:])
        found.append((method, path, wanted, headers, body.encode()))
    return found


class TranscriptTests(DavServerTestCase):
    @defer.inlineCallbacks
    def replay(self, name: str, base: str) -> Any:
        for method, path, wanted, headers, body in requests_of(name):
            status, parts = int(wanted[0]), wanted[1:]
            answer = yield self.dav(method, path, body, base=base,
                                    **{k.replace("-", "_"): v for k, v in headers.items()})
            self.assertEqual(answer.status_code, status, f"{method} {path}: {answer.text}")
            for part in parts:
                self.assertIn(part, answer.text, f"{method} {path}")

    def test_ios_calendar_discovery_and_colour(self) -> Any:
        return self.replay("ios-caldav.txt", self.web_base)

    def test_macos_contacts_discovery_and_sync(self) -> Any:
        return self.replay("macos-contacts.txt", self.web_base)

    def test_thunderbird_discovery_and_queries(self) -> Any:
        return self.replay("thunderbird.txt", self.web_base)

    def test_davx5_on_the_dav_port(self) -> Any:
        return self.replay("davx5.txt", self.dav_base)

    @defer.inlineCallbacks
    def test_percent_encoded_login_name(self) -> Any:
        """iOS 18 sends the address in Basic auth as alice%40example.com too."""
        answer = yield self.dav("PROPFIND", "/", b"", user="alice%40example.com", Depth="0")
        self.assertEqual(answer.status_code, 207)
        self.assertIn("/caldav/alice@example.com/", answer.text)
