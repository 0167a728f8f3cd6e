"""CalDAV/CardDAV on a large calendar and address book, mailgosend vs Radicale: figures only.

Starts our server from this checkout under twistd (local profile, plain HTTP, SQLite in a
temporary directory, DAV_PORT) and Radicale (PyPI, filesystem storage, no auth, in its own
virtual environment made on first use under --radicale-venv), fills both with the same
--events events (spread over 2027, one in ten weekly-recurring) and --contacts vCards by
PUT, then times, one request at a time from one keep-alive client, --rounds times each:
- PROPFIND Depth: 1 of the calendar (getetag, getcontenttype);
- sync-collection REPORT from no token, on the calendar and on the address book;
- calendar-query for one month (March 2027) with calendar-data;
and prints the median in milliseconds, the fill rate, and each server's memory (VmRSS after,
VmHWM peak).

Run from the repository root: python3 benchmarks/dav.py [--events 10000] [--contacts 5000]
[--rounds 5] [--no-radicale] [--keep DIR]

``--keep DIR`` keeps both servers' filled data under DIR (mailgosend/, radicale/) and
reuses it on the next run with the same sizes (filling 15,000 objects by PUT takes minutes;
the fill rate is then not measured).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterator

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
USER = "bench@bench.test"
PASSWORD = "correct-horse-staple-9"
PROPFIND = ('<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/><getcontenttype/>'
            '</prop></propfind>')
SYNC = ('<?xml version="1.0"?><sync-collection xmlns="DAV:"><sync-token/><sync-level>1'
        '</sync-level><prop><getetag/></prop></sync-collection>')
MONTH = ('<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" '
         'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/>'
         '</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
         '<C:time-range start="20270301T000000Z" end="20270401T000000Z"/></C:comp-filter>'
         '</C:comp-filter></C:filter></C:calendar-query>')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def event(n: int) -> str:
    day = 1 + (n * 7) % 365
    start = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(1798761600 + day * 86400
                                                         + (n % 10) * 3600))
    rule = "RRULE:FREQ=WEEKLY;COUNT=20\r\n" if n % 10 == 0 else ""
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:event-{n}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:{start}\r\n"
            f"DURATION:PT1H\r\nSUMMARY:Meeting number {n}\r\n"
            f"DESCRIPTION:Agenda item {n} with some text to make it realistic\r\n{rule}"
            "END:VEVENT\r\nEND:VCALENDAR\r\n")


def card(n: int) -> str:
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-{n}\r\nFN:Person Number {n}\r\n"
            f"N:Number;Person;;;\r\nEMAIL:person{n}@example.org\r\nTEL:+1 555 {n:06d}\r\n"
            "END:VCARD\r\n")


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in MB of a process and its children's largest."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) // 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def wait_for(url: str) -> None:
    for _ in range(300):
        try:
            requests.request("OPTIONS", url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def timed(rounds: int, call: Callable[[], Any]) -> float:
    spent = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        spent.append(time.perf_counter() - started)
    return statistics.median(spent) * 1000


def filled_marker(where: str, args: Any) -> str:
    return os.path.join(where, f"filled-{args.events}-{args.contacts}")


def measure(name: str, client: requests.Session, calendar: str, book: str, args: Any,
            pid: int, where: str) -> dict[str, Any]:
    if os.path.exists(filled_marker(where, args)):
        return measure_filled(name, client, calendar, book, args, pid, float("nan"))
    started = time.perf_counter()
    for n in range(args.events):
        answer = client.put(calendar + f"event-{n}.ics", data=event(n).encode(),
                            headers={"Content-Type": "text/calendar"})
        assert answer.status_code in (201, 204), (name, answer.status_code, answer.text)
    for n in range(args.contacts):
        answer = client.put(book + f"card-{n}.vcf", data=card(n).encode(),
                            headers={"Content-Type": "text/vcard"})
        assert answer.status_code in (201, 204), (name, answer.status_code, answer.text)
    fill = (args.events + args.contacts) / (time.perf_counter() - started)
    with open(filled_marker(where, args), "w", encoding="ascii"):
        pass
    return measure_filled(name, client, calendar, book, args, pid, fill)


def measure_filled(name: str, client: requests.Session, calendar: str, book: str,
                   args: Any, pid: int, fill: float) -> dict[str, Any]:
    def report(url: str, body: str, depth: str = "1", method: str = "REPORT") -> Any:
        def call() -> None:
            answer = client.request(method, url, data=body.encode(),
                                    headers={"Depth": depth,
                                             "Content-Type": "application/xml"})
            assert answer.status_code == 207, (name, method, answer.status_code)
        return call

    figures = {
        "fill (objects/s)": fill,
        "PROPFIND depth 1, calendar (ms)": timed(args.rounds, report(calendar, PROPFIND,
                                                                     method="PROPFIND")),
        "sync-collection, calendar (ms)": timed(args.rounds, report(calendar, SYNC)),
        "sync-collection, contacts (ms)": timed(args.rounds, report(book, SYNC)),
        "calendar-query, one month (ms)": timed(args.rounds, report(calendar, MONTH)),
    }
    rss, hwm = memory(pid)
    figures["memory after (MB RSS)"] = rss
    figures["memory peak (MB HWM)"] = hwm
    return figures


def run_ours(tmp: str, args: Any) -> dict[str, Any]:
    bindir = pathlib.Path(sys.executable).parent
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MAILGO_PROFILE": "local",
           "MAILGO_DAV_PORT": str(port), "MAILGO_TLS_MODE": "off", "MAILGO_DNSBL_ZONES": "",
           **{f"MAILGO_{n}_PORT": "0" for n in ("SMTP", "SUBMIT", "SMTPS", "IMAP", "IMAPS",
                                                "POP3", "POP3S", "ADMIN", "WEB", "HTTP")}}
    conf = os.path.join(tmp, "app_config.conf")
    cli = str(bindir / "mailgosend")
    if not os.path.exists(conf):
        subprocess.run([cli, "--config", conf, "config", "init", "--profile", "local"],
                       env=env, check=True, capture_output=True)
        subprocess.run([cli, "--config", conf, "domain", "add", "bench.test"], env=env,
                       check=True, capture_output=True)
        subprocess.run([cli, "--config", conf, "user", "add", USER, "--password-stdin"],
                       input=PASSWORD + "\n", text=True, env=env, check=True,
                       capture_output=True)
    server = subprocess.Popen([str(bindir / "twistd"), "-n", "--pidfile=", "mailgosend",
                               "--config", conf], cwd=tmp, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/")
        client = requests.Session()
        client.auth = (USER, PASSWORD)
        return measure("mailgosend", client, f"{base}/dav/calendars/{USER}/calendar/",
                       f"{base}/dav/contacts/{USER}/contacts/", args, server.pid, tmp)
    finally:
        server.terminate()
        server.wait(timeout=30)


def fill_radicale(client: requests.Session, calendar: str, book: str, args: Any,
                  where: str) -> None:
    """The same objects, by Radicale's whole-collection PUT (its import: one item per UID,
    named <UID>.ics / <UID>.vcf as our PUTs name them).  One PUT per object slows down as
    the collection grows (Radicale checks each upload against the whole collection):
    past a few thousand events, about one a second on this machine."""
    body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n" + "".join(
        "BEGIN:VEVENT" + event(n).split("BEGIN:VEVENT", 1)[1].split("END:VEVENT", 1)[0]
        + "END:VEVENT\r\n" for n in range(args.events)) + "END:VCALENDAR\r\n"
    answer = client.put(calendar, data=body.encode(), headers={"Content-Type": "text/calendar"},
                        timeout=3600)
    assert answer.status_code == 201, (answer.status_code, answer.text[:200])
    cards = "".join(card(n) for n in range(args.contacts))
    answer = client.put(book, data=cards.encode(), headers={"Content-Type": "text/vcard"},
                        timeout=3600)
    assert answer.status_code == 201, (answer.status_code, answer.text[:200])
    with open(filled_marker(where, args), "w", encoding="ascii"):
        pass


def radicale_python(venv: str) -> str:
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "radicale"], check=True)
    return python


def run_radicale(tmp: str, args: Any) -> dict[str, Any]:
    python = radicale_python(args.radicale_venv)
    port = free_port()
    config = os.path.join(tmp, "radicale.conf")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(f"[server]\nhosts = 127.0.0.1:{port}\n[auth]\ntype = none\n"
                     f"[storage]\nfilesystem_folder = {tmp}/radicale\n"
                     "[logging]\nlevel = warning\n")
    server = subprocess.Popen([python, "-m", "radicale", "--config", config],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/")
        client = requests.Session()
        client.auth = ("bench", PASSWORD)
        calendar, book = f"{base}/bench/calendar/", f"{base}/bench/contacts/"
        if not os.path.exists(filled_marker(tmp, args)):
            fill_radicale(client, calendar, book, args, tmp)
        return measure("radicale", client, calendar, book, args, server.pid, tmp)
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextlib.contextmanager
def workdir(keep: Any, name: str) -> Iterator[str]:
    """A temporary directory, or DIR/name kept across runs."""
    if keep is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield tmp
        return
    where = os.path.abspath(os.path.join(keep, name))
    os.makedirs(where, exist_ok=True)
    yield where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-radicale", action="store_true")
    parser.add_argument("--radicale-venv", default=os.path.join(tempfile.gettempdir(),
                                                                "mailgosend-bench-radicale"))
    parser.add_argument("--keep", metavar="DIR", help="keep and reuse the filled data here")
    args = parser.parse_args()
    results = {}
    with workdir(args.keep, "mailgosend") as tmp:
        results["mailgosend"] = run_ours(tmp, args)
    print(f"mailgosend: {results['mailgosend']}", flush=True)   # kept if Radicale is stopped
    if not args.no_radicale:
        with workdir(args.keep, "radicale") as tmp:
            results["radicale"] = run_radicale(tmp, args)
    print(f"{args.events} events, {args.contacts} contacts, median of {args.rounds}")
    names = list(results)
    ratio = "radicale" in results
    print(f"{'':34}" + "".join(f"{n:>14}" for n in names) + (f"{'ours/theirs':>14}"
                                                              if ratio else ""))
    for figure in results["mailgosend"]:
        row = f"{figure:34}" + "".join(f"{results[n][figure]:>14.1f}" for n in names)
        if ratio and results["radicale"][figure]:
            row += f"{results['mailgosend'][figure] / results['radicale'][figure]:>14.2f}"
        print(row)


if __name__ == "__main__":
    main()
