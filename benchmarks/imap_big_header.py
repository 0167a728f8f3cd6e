#!/usr/bin/env python3
"""Header handling on the IMAP/store side with one huge folded header field (issue 9 §4).

Figures only, no pass/fail.  Builds in memory a message whose header holds one field of
--megabytes MB folded into short lines (anyone can send such a header to port 25), and the
same bytes as many short fields, then times each step the server runs on a header:

  analyse         delivery: structure, envelope, header block kept (store/mimeinfo.py)
  header fields   the header block split into fields (mail/headers.py parse_header_block),
                  which SEARCH HEADER/TEXT and FETCH BODY[HEADER.FIELDS] use
  fetch field     BODY[HEADER.FIELDS (X-BIG)] (filter_header_block)
  search header   what SEARCH HEADER/TEXT compares with: every field, unfolded and decoded
  envelope        ENVELOPE with the big field as To: (imap/structure.py)

Before the fix "header fields", "fetch field" and "search header" were quadratic (19-29 s
for 5 MB); the same bytes as short fields took well under a second.

  PYTHONPATH=. python3 benchmarks/imap_big_header.py [--megabytes 5]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

from mailgosend.imap.message import filter_header_block
from mailgosend.mail.headers import parse_header_block
from mailgosend.imap.search import _decode_header
from mailgosend.imap.structure import envelope
from mailgosend.store.mimeinfo import Envelope, analyse

LINE = b"\tword%07d and some more folded text, x%07d@example.org\r\n"


def messages(megabytes: float) -> dict[str, bytes]:
    count = int(megabytes * 1_000_000 / len(LINE % (0, 0)))
    folded = b"X-Big: start\r\n" + b"".join(LINE % (i, i) for i in range(count))
    short = b"".join(b"X-Small%07d: word%07d and some more text, x@example.org\r\n" % (i, i)
                     for i in range(count))
    head = b"From: a@example.org\r\nSubject: big\r\n"
    tail = b"To: x@example.org\r\n\r\nbody needle\r\n"
    return {"one folded field": head + folded + tail, "many short fields": head + short + tail}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=5.0)
    options = parser.parse_args()
    for label, raw in messages(options.megabytes).items():
        header = raw[:raw.index(b"\r\n\r\n") + 4]
        value = header.partition(b"X-Big:")[2].decode() if b"X-Big:" in header else ""
        steps = {
            "analyse": lambda: analyse(raw),
            "header fields": lambda: parse_header_block(header),
            "fetch field": lambda: filter_header_block(header, ["x-big"], False),
            "search header": lambda: [_decode_header(field.partition(b":")[2])
                                      for _, field in parse_header_block(header)],
            "envelope": lambda: envelope(Envelope(to=value)),
        }
        print(f"{label}: {len(raw) / 1e6:.1f} MB")
        for name, step in steps.items():
            print(f"  {name:14} {timed(step):7.3f} s", flush=True)


if __name__ == "__main__":
    main()
