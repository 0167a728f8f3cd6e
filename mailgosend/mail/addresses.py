# -*- test-case-name: tests.test_imap_structure -*-
"""RFC 5322 §3.4 address lists, parsed by a small scanner shared by every front end (IMAP
ENVELOPE, SORT keys, JMAP and search filters): display names, quoted strings, comments (also
inside an angle address, where they are CFWS and dropped), angle addresses with obsolete
routes, and groups, given as a start marker (None, None, name, None) and an end marker (all
None).  An address without "@" gets the host ".MISSING-HOST-NAME." as UW imapd and Dovecot
send in ENVELOPE.

Pure functions: no front end, no I/O.
"""

from __future__ import annotations

import re
from typing import Optional

__all__ = ["MISSING_HOST", "Address", "parse_address_list"]

MISSING_HOST = ".MISSING-HOST-NAME."
# Runs of ordinary characters, taken whole: a 5 MB address field stays a fast linear scan.
_WORD_RUN = re.compile(r'[^"()<>:;,\\ \t\r\n]+')
_ANGLE_RUN = re.compile(r'[^"()> \t\r\n]+')

# (name, adl, mailbox, host); a group start is (None, None, name, None), its end all None.
Address = tuple[Optional[str], Optional[str], Optional[str], Optional[str]]


class _Mailbox:
    def __init__(self) -> None:
        self.words: list[str] = []
        self.angle: Optional[str] = None
        self.comment: Optional[str] = None

    def empty(self) -> bool:
        return not self.words and self.angle is None

    def result(self) -> Optional[Address]:
        if self.angle is not None:
            name = " ".join(self.words) or self.comment
            spec = self.angle
        else:
            spec, name = "".join(self.words), self.comment
        adl = None
        if spec.startswith("@") and ":" in spec:  # obsolete route, RFC 5322 §4.4
            adl, spec = spec.split(":", 1)
        if not spec:
            return None
        local, at, host = spec.rpartition("@")
        if not at:
            local, host = spec, MISSING_HOST
        return (name or None, adl, local, host)


def parse_address_list(value: str) -> list[Address]:
    """Addresses and group markers of one raw header value, in order."""
    out: list[Address] = []
    current = _Mailbox()
    word: list[str] = []
    in_group = False
    i = 0

    def end_word() -> None:
        if word:
            current.words.append("".join(word))
            word.clear()

    def flush() -> None:
        nonlocal current
        end_word()
        found = current.result()
        if found is not None:
            out.append(found)
        current = _Mailbox()

    while i < len(value):
        ch = value[i]
        if ch == '"':
            text, i = _delimited(value, i + 1, '"')
            end_word()
            current.words.append(text)
            continue
        if ch == "(":
            text, i = _comment(value, i + 1)
            end_word()
            current.comment = current.comment or text.strip() or None
            continue
        if ch == "<":
            end_word()
            current.angle, i = _angle(value, i + 1)
            continue
        if ch == ":" and not in_group and current.angle is None:
            end_word()
            out.append((None, None, " ".join(current.words), None))
            current, in_group = _Mailbox(), True
        elif ch == ";" and in_group:
            flush()
            out.append((None, None, None, None))
            in_group = False
        elif ch == ",":
            flush()
        elif ch in " \t\r\n":
            end_word()
        else:
            run = _WORD_RUN.match(value, i)
            if run is not None:
                word.append(run.group())
                i = run.end()
                continue
            word.append(ch)
        i += 1
    flush()
    if in_group:
        out.append((None, None, None, None))
    return out


def _angle(value: str, i: int) -> tuple[str, int]:
    """The addr-spec inside "<...>" without its CFWS (RFC 5322 §3.2.2, §3.4.1): comments and
    folding whitespace around the local part, "@" and domain are dropped; quoted strings are
    kept as written, so a ">" or "(" inside them does not end the address."""
    out: list[str] = []
    while i < len(value) and value[i] != ">":
        ch = value[i]
        if ch == "(":
            _, i = _comment(value, i + 1)
            continue
        if ch == '"':
            text, i = _delimited(value, i + 1, '"')
            out.append('"' + text + '"')
            continue
        run = _ANGLE_RUN.match(value, i)
        if run is not None:
            out.append(run.group())
            i = run.end()
            continue
        i += 1  # folding whitespace
    return "".join(out), i + 1


def _delimited(value: str, i: int, close: str) -> tuple[str, int]:
    out: list[str] = []
    while i < len(value) and value[i] != close:
        if value[i] == "\\" and i + 1 < len(value):
            i += 1
        out.append(value[i])
        i += 1
    return "".join(out), i + 1


def _comment(value: str, i: int) -> tuple[str, int]:
    depth, out = 1, []
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return "".join(out), i + 1
        out.append(ch)
        i += 1
    return "".join(out), i
