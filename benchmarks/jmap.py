#!/usr/bin/env python3
"""JMAP on 10,000- and 100,000-message mailboxes, beside the same work over IMAP on Dovecot.

Figures only, no pass/fail.  For each --sizes N:

Ours (in this process, through the JMAP endpoint's Dispatcher: the request body parsed,
methods run with their result references, the response serialised; no HTTP and no
authentication): a fresh SQLite database in the work directory, one user, N messages filed
directly through the one local-delivery path (LocalDelivery.deliver_all, 500 per
transaction: analysis, sealing, threading and search tokens as for SMTP mail, without SMTP).
Messages are ../shared/bench/benchlib.make_message (4 KB text), a third of them replies to
the previous message (same thread), \\Seen on 70 %, a rare word in 1 %.

  query-first       Email/query inMailbox INBOX, receivedAt descending, collapseThreads,
                    position 0, limit 50, calculateTotal
  query-deep        the same at position 60 % of the total
  get-50            Email/get of the 50 ids of the first window, list properties (threadId,
                    mailboxIds, keywords, size, receivedAt, sentAt, from, to, subject,
                    preview, hasAttachment)
  window+props      Email/query + Email/get (#ids back-reference) in ONE request (the target:
                    p95 < 50 ms on 100,000)
  query-after-flag  query-first right after a flag change (the cached sorted result is
                    invalid: refilter and re-sort of the whole mailbox from the index)
  changes-after-10  Email/changes from a state 10 flag changes old
  search-rare       Email/query text=<rare word> (1 % of messages), the result cached
  search-rare-after-flag  the same right after a flag change (the cached result is
                    brought up to date)
  search-rare-uncached  the same with no cached result and no decrypted text kept: index
                    lookup, then every candidate (1 % of the mailbox) decrypted and confirmed
  cold              the first query after start (loads the index: every row's plain
                    columns; sorted by date, nothing is decrypted)

Dovecot (dovecot-imapd, its configuration made by ../shared/bench/setup_peer_stack.sh under
the work directory, started alone on a free port; only IMAP, no Postfix): the same N messages
written straight into the Maildir (flags in the file names), indexed by a first SELECT that is
not timed.  Over one imaplib session:

  sort-first        UID SORT RETURN (PARTIAL 1:50) (REVERSE ARRIVAL) UTF-8 ALL (RFC 5267
                    CONTEXT=SORT; IMAP has no collapse by thread)
  sort-deep         the same with PARTIAL at 60 %
  fetch-50          UID FETCH of those 50 (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE
                    BODYSTRUCTURE)
  window+props      sort-first + fetch-50
  thread            UID THREAD REFERENCES UTF-8 ALL (what collapsing needs over IMAP)
  changes-after-10  UID FETCH 1:* (FLAGS) (CHANGEDSINCE m) after 10 STOREs (RFC 7162)
  search-rare       UID SEARCH TEXT <rare word> (no FTS plugin)

Each timed step runs --repeats times after one warm-up (a step slower than 20 s in all
stops after 5), p50 and p95 in milliseconds.

  python3 benchmarks/jmap.py                        # 10,000 and 100,000, ours and Dovecot
  python3 benchmarks/jmap.py --sizes 10000 --systems ours --repeats 20

Needs (Debian 12, root, for Dovecot): apt-get install dovecot-imapd (setup_peer_stack.sh
also wants postfix and dovecot-lmtpd installed to write its configuration).
"""

from __future__ import annotations

import argparse
import imaplib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# ../shared/bench beside the checkout (a git worktree sits one level deeper); BENCHLIB_DIR
# names it elsewhere.
BENCH = os.path.join(ROOT, "..", "shared", "bench")
for candidate in (os.environ.get("BENCHLIB_DIR", ""), BENCH,
                  os.path.join(ROOT, "..", "..", "shared", "bench")):
    if os.path.exists(os.path.join(candidate, "benchlib.py")):
        BENCH = os.path.abspath(candidate)
        break
sys.path.insert(0, ROOT)
sys.path.insert(0, BENCH)

import benchlib  # noqa: E402

RARE = "quixotically"
USER = "imapbench@bench.test"
PASSWORD = "benchpass"
BATCH = 500
BUDGET = 20.0  # seconds per step: a slow step stops after 5 samples past this


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- the messages (the same bytes for both systems) ------------------------------------------

_SUBJECT = re.compile(rb"^Subject: (.*)$", re.M)
_MSGID = re.compile(rb"^Message-ID: (<[^>]*>)", re.M)


def message(idx: int) -> tuple[bytes, bool]:
    """(raw, seen) of message ``idx``: a third are replies to the one before."""
    extra = f"A {RARE} remark." if idx % 100 == 7 else None
    raw = benchlib.make_message("4k", idx, seed=7, to=USER, extra_body_line=extra)
    if idx % 3 == 1:
        parent = benchlib.make_message("4k", idx - 1, seed=7, to=USER)
        subject = _SUBJECT.search(parent).group(1)  # type: ignore[union-attr]
        msgid = _MSGID.search(parent).group(1)  # type: ignore[union-attr]
        raw = _SUBJECT.sub(lambda _: b"Subject: Re: " + subject, raw, count=1)
        raw = raw.replace(b"MIME-Version: 1.0\r\n", b"In-Reply-To: " + msgid +
                          b"\r\nReferences: " + msgid + b"\r\nMIME-Version: 1.0\r\n", 1)
    return raw, idx % 10 < 7


def received(idx: int) -> datetime:
    return datetime.fromtimestamp(1_700_000_000 + idx * 37, timezone.utc)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"p50": statistics.median(ordered) * 1000, "p95": p95 * 1000, "n": len(ordered)}


# --- ours -------------------------------------------------------------------------------------


class Context:
    session_state = "bench"


async def ours(n: int, workdir: str, repeats: int) -> dict[str, Any]:
    from twisted.internet import reactor

    from mailgosend import passwords
    from mailgosend.crypto import KeyRing
    from mailgosend.db.engine import create_db_engine
    from mailgosend.db.migrate import upgrade_to_head
    from mailgosend.db.runner import DatabaseRunner, run_sync
    from mailgosend.jmap.api import Dispatcher
    from mailgosend.jmap.catalog import load
    from mailgosend.jmap.methods import CORE, MAIL, Limits
    from mailgosend.mail.service import MailService
    from mailgosend.store import accounts
    from mailgosend.store.blobs import DatabaseBlobs
    from mailgosend.workers import WorkerPool

    directory = os.path.join(workdir, f"ours-{n}")
    fresh = not os.path.exists(os.path.join(directory, "mail.sqlite"))
    os.makedirs(directory, exist_ok=True)
    engine = create_db_engine("sqlite", sqlite_path=os.path.join(directory, "mail.sqlite"))
    upgrade_to_head(engine)
    runner = DatabaseRunner(engine, reactor)  # type: ignore[arg-type]
    runner.startService()
    workers = WorkerPool(reactor, 2)
    workers.startService()
    keyring = KeyRing(bytes(range(32)))
    service = MailService(runner=runner, keyring=keyring,
                          blob_store=DatabaseBlobs(os.path.join(directory, "spool")),
                          workers=workers, clock=reactor)
    now = datetime.now(timezone.utc)
    if fresh:
        run_sync(engine, accounts.add_domain, "bench.test", now, write=True)
        run_sync(engine, accounts.add_user, USER, passwords.hash_password(PASSWORD, 4), now,
                 write=True)
    mail = await service.open_account(USER)
    inbox = await mail.get_mailbox("INBOX")
    counts = await mail.counts_by_mailbox()
    have = counts[inbox.id].messages if inbox.id in counts else 0
    started = time.perf_counter()
    for start in range(have, n, BATCH):
        batch = []
        for idx in range(start, min(n, start + BATCH)):
            raw, seen = message(idx)
            batch.append((raw, ("\\Seen",) if seen else (), received(idx)))
        await mail.append_all(inbox.id, batch)
        if (start // BATCH) % 20 == 0:
            log(f"ours: {start + len(batch)} of {n} filed")
    fill = time.perf_counter() - started
    if have < n:
        log(f"ours: filled {n - have} messages in {fill:.0f} s "
            f"({(n - have) / max(fill, 1e-9):.0f}/s)")
    service.query_indexes.drop(mail.user.id)

    catalog = load()
    dispatcher = Dispatcher(catalog.methods, {CORE: {}, MAIL: {}}, Limits())
    account = f"A{mail.user.id}"

    async def request(calls: list[Any]) -> dict[str, Any]:
        body = json.dumps({"using": [CORE, MAIL], "methodCalls": calls}).encode()
        answer = await dispatcher.run(body, account_id=account, mail=mail, context=Context())
        json.dumps(answer)  # serialised, as the endpoint does
        for name, args, _ in answer["methodResponses"]:
            if name == "error":
                raise RuntimeError(f"JMAP error: {args}")
        return answer

    box = f"B{inbox.id}"
    base = {"accountId": account, "filter": {"inMailbox": box},
            "sort": [{"property": "receivedAt", "isAscending": False}],
            "collapseThreads": True, "limit": 50, "calculateTotal": True}
    props = ["threadId", "mailboxIds", "keywords", "size", "receivedAt", "sentAt", "from",
             "to", "subject", "preview", "hasAttachment"]

    results: dict[str, Any] = {"fill_seconds": round(fill, 1)}
    t0 = time.perf_counter()
    first = await request([["Email/query", base, "q"]])
    results["cold_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    total = first["methodResponses"][0][1]["total"]
    ids = first["methodResponses"][0][1]["ids"]
    results["total_threads"] = total

    async def timed(label: str, make: Callable[[], Awaitable[Any]],
                    before: Optional[Callable[[], Awaitable[Any]]] = None) -> None:
        samples: list[float] = []
        spent = 0.0
        for i in range(repeats + 1):
            if i > 5 and spent > BUDGET:
                break
            if before is not None:
                await before()
            t = time.perf_counter()
            await make()
            if i:
                samples.append(time.perf_counter() - t)
                spent += samples[-1]
        results[label] = percentiles(samples)
        log(f"ours {n}: {label} p50 {results[label]['p50']:.1f} ms "
            f"p95 {results[label]['p95']:.1f} ms")

    deep = {**base, "position": int(total * 0.6)}
    await timed("query-first", lambda: request([["Email/query", base, "q"]]))
    await timed("query-deep", lambda: request([["Email/query", deep, "q"]]))
    get = {"accountId": account, "ids": ids, "properties": props}
    await timed("get-50", lambda: request([["Email/get", get, "g"]]))
    both = [["Email/query", base, "q"],
            ["Email/get", {"accountId": account, "properties": props,
                           "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"}},
             "g"]]
    await timed("window+props", lambda: request(both))
    toggled = [False]

    async def flip() -> None:
        toggled[0] = not toggled[0]
        await mail.set_flags(inbox.id, [1], ["\\Flagged"], "add" if toggled[0] else "remove")

    await timed("query-after-flag", lambda: request([["Email/query", base, "q"]]), flip)
    state: dict[str, str] = {}

    async def ten_changes() -> None:
        answer = await request([["Email/get", {"accountId": account, "ids": []}, "s"]])
        state["s"] = answer["methodResponses"][0][1]["state"]
        for uid in range(2, 12):
            toggled[0] = not toggled[0]
            await mail.set_flags(inbox.id, [uid], ["\\Flagged"],
                                 "add" if toggled[0] else "remove")

    await timed("changes-after-10", lambda: request([["Email/changes", {
        "accountId": account, "sinceState": state["s"]}, "c"]]), ten_changes)
    rare = {"accountId": account, "filter": {"text": RARE}, "calculateTotal": True}
    await timed("search-rare", lambda: request([["Email/query", rare, "r"]]))
    await timed("search-rare-after-flag", lambda: request([["Email/query", rare, "r"]]), flip)
    index = service.query_indexes.get(mail.user.id)

    async def forget() -> None:
        index.results.clear()
        index.documents.clear()

    await timed("search-rare-uncached", lambda: request([["Email/query", rare, "r"]]), forget)
    rss = _rss_mb(os.getpid())
    results["rss_mb"] = rss
    await runner.stopService()
    workers.stopService()
    engine.dispose()
    return results


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


# --- Dovecot ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dovecot:
    """Dovecot alone, configured by the shared setup script under our work directory."""

    def __init__(self, workdir: str) -> None:
        self.pb = os.path.join(workdir, "peerbench")
        self.port = free_port()
        self.process: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        if not os.path.exists("/usr/sbin/dovecot"):
            raise SystemExit("Dovecot is not installed: apt-get install dovecot-imapd "
                             "(or run with --systems ours)")
        env = dict(os.environ, PB=self.pb, BENCH_PASSWORD=PASSWORD)
        done = subprocess.run(["bash", os.path.join(BENCH, "setup_peer_stack.sh")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if done.returncode:
            raise SystemExit("setup_peer_stack.sh failed:\n" + done.stdout.decode())
        conf = os.path.join(self.pb, "dovecot", "dovecot.conf")
        with open(conf) as handle:
            text = handle.read()
        text = text.replace("protocols = imap lmtp", "protocols = imap")
        text = re.sub(r"port = 1143", f"port = {self.port}", text)
        with open(conf, "w") as handle:
            handle.write(text)
        self.process = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", conf],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("Dovecot did not start; see " + os.path.join(self.pb, "dovecot"))

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)
            self.process = None

    def maildir(self, folder: str) -> str:
        return os.path.join(self.pb, "mail", "bench.test", "imapbench", "Maildir", folder)

    def fill(self, n: int, folder: str) -> None:
        """Write the messages straight into a Maildir folder (what delivery would do)."""
        import pwd
        vmail = pwd.getpwnam("vmail")
        root = self.maildir(folder)
        if os.path.exists(os.path.join(root, "filled")):
            return
        shutil.rmtree(root, ignore_errors=True)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, sub))
        if folder != "":
            open(os.path.join(root, "maildirfolder"), "w").close()
        started = time.perf_counter()
        for idx in range(n):
            raw, seen = message(idx)
            stamp = int(received(idx).timestamp())
            name = os.path.join(root, "cur", f"{stamp}.M{idx}P1.bench,S={len(raw)}:2,"
                                             + ("S" if seen else ""))
            with open(name, "wb") as handle:
                handle.write(raw)
            os.utime(name, (stamp, stamp))
        open(os.path.join(root, "filled"), "w").close()
        for directory, dirs, files in os.walk(os.path.dirname(os.path.dirname(root))):
            for entry in dirs + files:
                os.chown(os.path.join(directory, entry), vmail.pw_uid, vmail.pw_gid)
        log(f"dovecot: wrote {n} messages in {time.perf_counter() - started:.0f} s")


def dovecot_run(dovecot: Dovecot, n: int, repeats: int) -> dict[str, Any]:
    folder = f".n{n}"
    dovecot.fill(n, folder)
    imap = imaplib.IMAP4("127.0.0.1", dovecot.port)
    imap.login(USER, PASSWORD)
    imap.enable("CONDSTORE")  # RFC 7162: MODSEQ for CHANGEDSINCE
    t0 = time.perf_counter()
    typ, _ = imap.select(f"n{n}")
    if typ != "OK":  # folder names under the Maildir++ layout
        imap.create(f"n{n}")
        typ, _ = imap.select(f"n{n}")
    imap.uid("SEARCH", "ALL")
    results: dict[str, Any] = {"cold_ms": round((time.perf_counter() - t0) * 1000, 1)}

    def command(*words: str) -> list[Any]:
        typ, data = imap.uid(*words)
        if typ != "OK":
            raise RuntimeError(f"{words}: {typ} {data}")
        return data

    def timed(label: str, run: Callable[[], Any],
              before: Optional[Callable[[], Any]] = None) -> Any:
        samples: list[float] = []
        value, spent = None, 0.0
        for i in range(repeats + 1):
            if i > 5 and spent > BUDGET:
                break
            if before is not None:
                before()
            t = time.perf_counter()
            value = run()
            if i:
                samples.append(time.perf_counter() - t)
                spent += samples[-1]
        results[label] = percentiles(samples)
        log(f"dovecot {n}: {label} p50 {results[label]['p50']:.1f} ms "
            f"p95 {results[label]['p95']:.1f} ms")
        return value

    def window(first: int) -> list[str]:
        command("SORT", f"RETURN (PARTIAL {first}:{first + 49})", "(REVERSE ARRIVAL)",
                "UTF-8", "ALL")
        data = imap.untagged_responses.pop("ESEARCH", [])  # RFC 5267 ESORT answer
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode()
        found = re.search(r"PARTIAL \(\S+ ([\d:,]+|NIL)\)", text)
        if not found or found.group(1) == "NIL":
            return []
        uids: list[str] = []
        for piece in found.group(1).split(","):
            lo, _, hi = piece.partition(":")
            step = 1 if not hi or int(hi) >= int(lo) else -1
            uids += [str(u) for u in range(int(lo), int(hi or lo) + step, step)]
        return uids

    uids = timed("sort-first", lambda: window(1))
    timed("sort-deep", lambda: window(int(n * 0.6)))
    fetch = "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"
    timed("fetch-50", lambda: command("FETCH", ",".join(uids), fetch))
    timed("window+props", lambda: command("FETCH", ",".join(window(1)), fetch))
    timed("thread", lambda: command("THREAD", "REFERENCES", "UTF-8", "ALL"))
    modseq: dict[str, int] = {}
    flip = [False]

    def ten_stores() -> None:
        data = imap.status(f"n{n}", "(HIGHESTMODSEQ)")[1][0].decode()
        modseq["m"] = int(re.search(r"HIGHESTMODSEQ (\d+)", data).group(1))  # type: ignore
        for uid in range(2, 12):
            flip[0] = not flip[0]
            command("STORE", str(uid), "+FLAGS" if flip[0] else "-FLAGS", "(\\Flagged)")

    timed("changes-after-10", lambda: command("FETCH", "1:*", "(FLAGS)",
                                              f"(CHANGEDSINCE {modseq['m']})"), ten_stores)
    timed("search-rare", lambda: command("SEARCH", "TEXT", RARE))
    imap.logout()
    return results


# --- the report -------------------------------------------------------------------------------


ROWS = [("first window, by date, collapsed", "query-first", "sort-first"),
        ("window deep in the list (60 %)", "query-deep", "sort-deep"),
        ("50 list properties", "get-50", "fetch-50"),
        ("window + properties (one request)", "window+props", "window+props"),
        ("first window right after a flag change", "query-after-flag", None),
        ("threads (IMAP: THREAD REFERENCES ALL)", None, "thread"),
        ("changes after 10 flag changes", "changes-after-10", "changes-after-10"),
        ("rare word in the text", "search-rare", "search-rare"),
        ("rare word right after a flag change", "search-rare-after-flag", None),
        ("rare word, nothing cached (decrypt + confirm 1 %)", "search-rare-uncached", None)]


def report(all_results: dict[str, Any]) -> str:
    out = []
    for n, systems in sorted(all_results.items(), key=lambda kv: int(kv[0])):
        ours_r, dove = systems.get("ours", {}), systems.get("dovecot", {})
        out.append(f"\n### {int(n):,} messages\n")
        out.append("| step | ours p50 / p95 (ms) | Dovecot IMAP p50 / p95 (ms) |")
        out.append("|---|---|---|")

        def cell(result: dict[str, Any], key: Optional[str]) -> str:
            if key is None or key not in result:
                return "-"
            return f"{result[key]['p50']:.1f} / {result[key]['p95']:.1f}"
        for label, ok, dk in ROWS:
            out.append(f"| {label} | {cell(ours_r, ok)} | {cell(dove, dk)} |")
        if ours_r:
            out.append(f"\nOurs: first query after start {ours_r['cold_ms']} ms (index load); "
                       f"{ours_r['total_threads']:,} threads; fill {ours_r['fill_seconds']} s; "
                       f"process RSS {ours_r['rss_mb']} MB.")
        if dove:
            out.append(f"Dovecot: first SELECT + SEARCH ALL {dove['cold_ms']} ms.")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--systems", default="ours,dovecot")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--workdir", default=None,
                        help="keep mailboxes here between runs (default: a temporary one)")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="jmapbench-")
    os.makedirs(workdir, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    systems = args.systems.split(",")
    results: dict[str, Any] = {}
    dovecot = Dovecot(workdir) if "dovecot" in systems else None

    async def everything() -> None:
        for n in sizes:
            results[str(n)] = {}
            if "ours" in systems:
                results[str(n)]["ours"] = await ours(n, workdir, args.repeats)
            if dovecot is not None:  # blocking imaplib: nothing else runs meanwhile
                results[str(n)]["dovecot"] = dovecot_run(dovecot, n, args.repeats)

    from twisted.internet import defer, task
    try:
        if dovecot is not None:
            dovecot.start()
        task.react(lambda reactor: defer.Deferred.fromCoroutine(everything()))
    except SystemExit as stop:
        if stop.code:
            raise
    finally:
        if dovecot is not None:
            dovecot.stop()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        print(json.dumps(results, indent=1))
        print(report(results))


if __name__ == "__main__":
    main()
