"""Debian's isync (``mbsync``) against the in-process server, and the two views to compare.

``write_config`` writes an mbsyncrc for one IMAPS account and a Maildir store; ``run`` starts
``mbsync -V -c rc -a`` (call it in a thread: the server runs in the test's reactor) with a time
bound; ``maildir_snapshot`` and ``imap_snapshot`` read every message of one mailbox on either
side as ``{Message-ID: Copy(flags, body)}`` so a test can compare them message by message.

Maildir flags are the info suffix letters (``:2,FS``); IMAP flags are mapped to the same
letters so the two sides compare directly.
"""

from __future__ import annotations

import email.parser
import email.policy
import imaplib
import os
import re
import ssl
import subprocess
from dataclasses import dataclass
from typing import Optional

MBSYNC = "mbsync"
RUN_LIMIT = 300.0  # seconds: a bound against a hang, not a performance assertion

# Maildir info letters (maildir(5), mbsync(1)) <-> IMAP system flags.
LETTERS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}
FLAGS = {flag.lower(): letter for letter, flag in LETTERS.items()}


@dataclass(frozen=True)
class Copy:
    flags: str        # sorted Maildir letters, e.g. "FS"
    body: bytes       # the message as stored on that side
    where: str        # file name (Maildir) or "UID n" (IMAP), for failure messages


class MbsyncFailed(AssertionError):
    pass


def version() -> str:
    out = subprocess.run([MBSYNC, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def write_config(path: str, *, port: int, user: str, password: str, ca_file: str,
                 maildir: str, patterns: str = "INBOX *") -> str:
    """An mbsyncrc: one IMAPS account, a Maildir store under ``maildir`` (INBOX at
    ``maildir/INBOX``, sub-folders verbatim), one channel syncing everything both ways."""
    # isync 1.4 spells it SSLType (1.5 renamed it TLSType and still accepts the old name).
    text = f"""\
FSync no

IMAPAccount server
Host 127.0.0.1
Port {port}
User "{user}"
Pass "{password}"
SSLType IMAPS
CertificateFile "{ca_file}"

IMAPStore remote
Account server

MaildirStore local
Path "{maildir}/"
Inbox "{maildir}/INBOX"
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns {patterns}
Sync All
Create Both
Expunge Both
SyncState *
"""
    with open(path, "w") as handle:
        handle.write(text)
    return path


def run(rc: str, cwd: str, *extra: str) -> str:
    """Thread side: one ``mbsync -V`` run over every channel; its output, or MbsyncFailed."""
    args = [MBSYNC, "-V", "-c", rc, *extra, "-a"]
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=RUN_LIMIT,
                              stdin=subprocess.DEVNULL, env={**os.environ, "HOME": cwd})
    except subprocess.TimeoutExpired as e:
        raise MbsyncFailed(f"{' '.join(args)} still running after {RUN_LIMIT}s:\n"
                           f"{e.stdout!r}\n{e.stderr!r}") from None
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise MbsyncFailed(f"{' '.join(args)} exited {done.returncode}:\n{output}")
    return output


_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def message_id(raw: bytes) -> str:
    value = _PARSER.parsebytes(raw).get("Message-ID")
    if value is None:
        raise AssertionError(f"message without Message-ID: {raw[:200]!r}")
    return str(value).strip()


def maildir_letters(name: str) -> str:
    """The flag letters of a Maildir file name (``...:2,FS``); "" when it has none."""
    if ":2," not in name:
        return ""
    return "".join(sorted(name.rsplit(":2,", 1)[1]))


def maildir_files(folder: str) -> list[str]:
    """Paths of every message file in a Maildir folder (new/ and cur/)."""
    paths = []
    for sub in ("new", "cur"):
        directory = os.path.join(folder, sub)
        if os.path.isdir(directory):
            paths += [os.path.join(directory, n) for n in sorted(os.listdir(directory))
                      if not n.startswith(".")]
    return paths


def maildir_snapshot(folder: str) -> dict[str, Copy]:
    copies: dict[str, Copy] = {}
    for path in maildir_files(folder):
        with open(path, "rb") as handle:
            raw = handle.read()
        key = message_id(raw)
        if key in copies:
            raise AssertionError(f"{key} twice in {folder}: {copies[key].where}, {path}")
        copies[key] = Copy(maildir_letters(os.path.basename(path)), raw,
                           os.path.relpath(path, folder))
    return copies


def imap_connect(port: int, user: str, password: str, tls: ssl.SSLContext) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=_no_hostname(tls), timeout=60)
    client.login(user, password)
    return client


def _no_hostname(tls: ssl.SSLContext) -> ssl.SSLContext:
    # imaplib passes the host (127.0.0.1) as server_hostname; the certificate names it as an IP
    # address, which ssl matches, so verification stays on as configured.
    return tls


_FETCH_UID = re.compile(rb"UID (\d+)")
_FETCH_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


def imap_snapshot(client: imaplib.IMAP4, mailbox: str) -> tuple[dict[str, Copy], dict[str, bytes]]:
    """Thread side: every message of ``mailbox`` (FLAGS and BODY.PEEK[]) and the SELECT
    status (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, EXISTS) of that mailbox."""
    typ, data = client.select(_quote(mailbox), readonly=True)
    if typ != "OK":
        raise AssertionError(f"SELECT {mailbox}: {typ} {data}")
    status = {}
    for key in ("EXISTS", "UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ"):
        value = client.untagged_responses.get(key)
        if value:
            status[key] = value[-1]
    copies: dict[str, Copy] = {}
    if int(data[0]) == 0:
        return copies, status
    typ, rows = client.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
    if typ != "OK":
        raise AssertionError(f"UID FETCH in {mailbox}: {typ} {rows}")
    for row in rows:
        if not isinstance(row, tuple):
            continue  # the b")" that closes each FETCH response
        head, raw = row
        uid = _FETCH_UID.search(head)
        flags = _FETCH_FLAGS.search(head)
        if uid is None or flags is None:
            raise AssertionError(f"FETCH response without UID or FLAGS: {head!r}")
        letters = []
        for flag in flags.group(1).decode().split():
            if flag.lower() in FLAGS:
                letters.append(FLAGS[flag.lower()])
            elif flag.lower() != "\\recent":
                letters.append(flag)  # a keyword mbsync does not map: shows up as a mismatch
        key = message_id(raw)
        if key in copies:
            raise AssertionError(f"{key} twice in {mailbox}: {copies[key].where}, UID {uid}")
        copies[key] = Copy("".join(sorted(letters)), raw, f"UID {int(uid.group(1))}")
    return copies, status


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def set_letters(path: str, letters: str) -> str:
    """Rename a Maildir file to carry exactly ``letters`` (into cur/, as a MUA does)."""
    folder = os.path.dirname(os.path.dirname(path))
    base = os.path.basename(path).rsplit(":2,", 1)[0]
    target = os.path.join(folder, "cur", f"{base}:2,{''.join(sorted(letters))}")
    os.rename(path, target)
    return target


def crlf(raw: bytes) -> bytes:
    """LF line ends to CRLF, leaving existing CRLF alone."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", raw)


def lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def tree(folder: str, skip: tuple[str, ...] = (".mbsyncstate",)) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its content (for 'nothing changed')."""
    out: dict[str, bytes] = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.startswith(skip):
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, folder)] = handle.read()
    return out


def digest(copies: dict[str, Copy], limit: int = 40) -> str:
    lines = [f"{k} {c.flags or '-'} {c.where} {len(c.body)}b" for k, c in sorted(copies.items())]
    if len(lines) > limit:
        lines = lines[:limit] + [f"... {len(lines) - limit} more"]
    return "\n".join(lines)


def tail(text: str, lines: int = 60) -> str:
    parts = text.splitlines()
    return "\n".join(parts[-lines:]) if parts else "(no output)"


def optional(value: Optional[str]) -> str:
    return value or ""
