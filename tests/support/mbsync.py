"""Debian's isync (``mbsync``) against the in-process server, and the two views to compare.

``write_config`` writes an mbsyncrc for one IMAPS account and a Maildir store; ``run`` starts
``mbsync -Dn -c rc -a`` (call it in a thread: the server runs in the test's reactor) with a time
bound; ``maildir_snapshot`` and ``imap_snapshot`` read every message of one mailbox on either
side as ``{Message-ID: Copy(flags, body, where)}`` so a test can compare them message by message.

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
from datetime import datetime
from typing import Any

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
    uid: int = 0      # the IMAP UID (server side only)
    date: int = 0     # arrival time, epoch seconds: INTERNALDATE (IMAP) or mtime (Maildir)


class MbsyncFailed(AssertionError):
    pass


def write_config(path: str, *, port: int, user: str, password: str, ca_file: str,
                 maildir: str, patterns: str = "INBOX *") -> str:
    """An mbsyncrc: one IMAPS account, a Maildir store under ``maildir`` (INBOX at
    ``maildir/INBOX``, sub-folders verbatim), one channel syncing everything both ways, arrival
    dates included (INTERNALDATE <-> the Maildir file's mtime)."""
    # isync 1.4 spells it SSLType (1.5 renamed it TLSType and still accepts the old name).
    # Host is "localhost", not 127.0.0.1: isync 1.4 matches the server certificate against DNS
    # names only (subjectAltName dNSName, then CN), never an IP address entry; the test
    # certificate names "localhost", and verification against the test CA stays on.  (Where
    # localhost resolves to ::1 first, mbsync falls back to 127.0.0.1 when ::1 refuses.)
    text = f"""\
FSync no

IMAPAccount server
Host localhost
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
CopyArrivalDate yes
SyncState *
"""
    with open(path, "w") as handle:
        handle.write(text)
    return path


def run(rc: str, cwd: str, *extra: str) -> str:
    """Thread side: one mbsync run over every channel; its output, or MbsyncFailed.

    ``-Dn`` is ``-V`` plus the IMAP exchange (commands and responses, without message bodies
    and with the credentials masked as ``<authdata>``): failure messages show what went over
    the wire, and ``commands`` lets a test check what mbsync asked of the server."""
    args = [MBSYNC, "-Dn", "-c", rc, *extra, "-a"]
    try:
        done = subprocess.run(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=RUN_LIMIT, stdin=subprocess.DEVNULL,
                              env={**os.environ, "HOME": cwd})
    except FileNotFoundError:
        raise MbsyncFailed("mbsync is not installed: apt-get install -y isync") from None
    except subprocess.TimeoutExpired as e:
        raise MbsyncFailed(f"{' '.join(args)} still running after {RUN_LIMIT}s:\n"
                           f"{e.stdout!r}") from None
    output = done.stdout
    if done.returncode != 0:
        raise MbsyncFailed(f"{' '.join(args)} exited {done.returncode}:\n{output}")
    return output


_COMMAND = re.compile(r"^(?:\(\d+ in progress\) )?>>> \d+ (.*)$", re.MULTILINE)


def commands(output: str) -> list[str]:
    """The IMAP commands (without tags) an ``mbsync -Dn`` run sent, in order."""
    return _COMMAND.findall(output)


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
                           os.path.relpath(path, folder), date=int(os.stat(path).st_mtime))
    return copies


def imap_connect(port: int, user: str, password: str, tls: ssl.SSLContext) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=tls, timeout=60)
    client.login(user, password)
    return client


_FETCH_UID = re.compile(rb"UID (\d+)")
_FETCH_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_FETCH_DATE = re.compile(rb'INTERNALDATE "([^"]+)"')


def imap_snapshot(client: imaplib.IMAP4, mailbox: str) -> tuple[dict[str, Copy], dict[str, Any]]:
    """Thread side: every message of ``mailbox`` (FLAGS and BODY.PEEK[]) and the SELECT
    status (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, EXISTS) of that mailbox."""
    typ, data = client.select(_quote(mailbox), readonly=True)
    if typ != "OK":
        raise AssertionError(f"SELECT {mailbox}: {typ} {data}")
    status: dict[str, Any] = {}
    for key in ("EXISTS", "UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ"):
        value = client.untagged_responses.get(key)
        if value:
            status[key] = value[-1]
    copies: dict[str, Copy] = {}
    if int(data[0] or 0) == 0:
        return copies, status
    typ, rows = client.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
    if typ != "OK":
        raise AssertionError(f"UID FETCH in {mailbox}: {typ} {rows}")
    for row in rows:
        if not isinstance(row, tuple):
            continue  # the b")" that closes each FETCH response
        head, raw = row
        uid = _FETCH_UID.search(head)
        flags = _FETCH_FLAGS.search(head)
        date = _FETCH_DATE.search(head)
        if uid is None or flags is None or date is None:
            raise AssertionError(f"FETCH response without UID, FLAGS or INTERNALDATE: {head!r}")
        letters = []
        for flag in flags.group(1).decode().split():
            if flag.lower() in FLAGS:
                letters.append(FLAGS[flag.lower()])
            elif flag.lower() != "\\recent":
                letters.append(flag)  # a keyword mbsync does not map: shows up as a mismatch
        key = message_id(raw)
        if key in copies:
            raise AssertionError(f"{key} twice in {mailbox}: {copies[key].where}, UID {uid}")
        number = int(uid.group(1))
        arrival = datetime.strptime(date.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z")
        copies[key] = Copy("".join(sorted(letters)), raw, f"UID {number}", number,
                           int(arrival.timestamp()))
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


def lf(raw: bytes) -> bytes:
    """What isync's Maildir driver stores for a message it downloads: CRLF line ends as LF."""
    return raw.replace(b"\r\n", b"\n")


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_TUID = re.compile(rb"^X-TUID: [A-Za-z0-9+/]{12}\r?\n", re.MULTILINE)


def strip_tuid(raw: bytes) -> tuple[bytes, int]:
    """The message without the ``X-TUID:`` header line(s) isync adds to every message it
    propagates (to either side: it finds its own uploads/downloads by it after an interrupted
    run), and how many there were."""
    end = _HEADER_END.search(raw)
    cut = end.end() if end else len(raw)
    head, count = _TUID.subn(b"", raw[:cut])
    return head + raw[cut:], count


def tree(folder: str) -> dict[str, bytes]:
    """Every file under ``folder`` (messages, .uidvalidity, .mbsyncstate) by relative path,
    with its content: two equal trees mean nothing changed on the Maildir side."""
    out: dict[str, bytes] = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, folder)] = handle.read()
    return out


_COMPLAINT = re.compile(r"^(?:\S+ (?:NO|BAD)\b.*|.*(?:[Ee]rror|[Ww]arning).*)$", re.MULTILINE)


def complaints(output: str, limit: int = 40) -> str:
    """The lines of an mbsync run that report a problem (server NO/BAD, mbsync errors and
    warnings), for failure messages."""
    found = _COMPLAINT.findall(output)
    if len(found) > limit:
        found = found[:limit] + [f"... {len(found) - limit} more"]
    return "\n".join(found) or "(nothing reported)"
