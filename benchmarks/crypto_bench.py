"""Throughput of encryption at rest (mailgosend.crypto): figures only, no assertions.

Measures seal/open of 4 KB and 100 KB values (version 1 envelopes), seal/open of a 50 MB
segmented blob (64 KiB segments), and a 64 KiB range read from the middle of a 50 MB blob on
disk, which is what an IMAP partial fetch of a large message costs.

Run from the repository root: python3 benchmarks/crypto_bench.py [--repeat N]
"""

from __future__ import annotations

import argparse
import io
import os
import pathlib
import secrets
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from mailgosend.crypto import KeyRing, SegmentedReader, SegmentedWriter  # noqa: E402

MB = 1_000_000
OWNER = secrets.token_hex(16)
PURPOSE = "message"
CONTEXT = b"messages:1"


def best_of(repeat: int, action: Callable[[], object]) -> float:
    """Best wall time over `repeat` runs: the least disturbed by other load on the machine."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_envelopes(ring: KeyRing, size: int, repeat: int) -> None:
    plaintext = os.urandom(size)
    count = max(1, 20 * MB // size)
    envelope = ring.seal(plaintext, purpose=PURPOSE, owner=OWNER, context=CONTEXT)

    def seal_many() -> None:
        for _ in range(count):
            ring.seal(plaintext, purpose=PURPOSE, owner=OWNER, context=CONTEXT)

    def open_many() -> None:
        for _ in range(count):
            ring.open(envelope, purpose=PURPOSE, owner=OWNER, context=CONTEXT)

    for name, action in (("seal", seal_many), ("open", open_many)):
        elapsed = best_of(repeat, action)
        print(
            f"{name:4} {size // 1000:>6} KB   {count * size / MB / elapsed:8.1f} MB/s"
            f"   {elapsed / count * 1e6:8.1f} µs/op"
        )


def bench_segmented(ring: KeyRing, size: int, repeat: int) -> bytes:
    plaintext = os.urandom(size)
    blob = b""

    def seal_stream() -> None:
        nonlocal blob
        sink = io.BytesIO()
        writer = SegmentedWriter(ring, sink, purpose=PURPOSE, owner=OWNER, context=CONTEXT)
        view = memoryview(plaintext)
        for start in range(0, size, 1 << 20):  # arrives in 1 MiB pieces, as from a socket
            writer.write(view[start : start + (1 << 20)])
        writer.close()
        blob = sink.getvalue()

    def open_stream() -> None:
        ring.open_segmented(blob, purpose=PURPOSE, owner=OWNER, context=CONTEXT)

    for name, action in (("seal", seal_stream), ("open", open_stream)):
        elapsed = best_of(repeat, action)
        print(f"{name:4} {size // MB:>4} MB segmented   {size / MB / elapsed:8.1f} MB/s")
    return blob


def bench_range(ring: KeyRing, blob: bytes, repeat: int) -> None:
    with tempfile.NamedTemporaryFile(prefix="crypto_bench-") as handle:
        handle.write(blob)
        handle.flush()
        with open(handle.name, "rb") as source:

            def read_middle() -> None:
                reader = SegmentedReader(
                    ring, source, purpose=PURPOSE, owner=OWNER, context=CONTEXT
                )
                reader.read_range(reader.size // 2, 64 * 1024)

            elapsed = best_of(repeat * 20, read_middle)
    print(
        f"range 64 KiB from the middle of {len(blob) // MB} MB (file, open reader + read): "
        f"{elapsed * 1e3:.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best is shown)")
    args = parser.parse_args()
    ring = KeyRing(secrets.token_bytes(32))
    print(f"python {sys.version.split()[0]}, best of {args.repeat}")
    for size in (4_000, 100_000):
        bench_envelopes(ring, size, args.repeat)
    blob = bench_segmented(ring, 50 * MB, args.repeat)
    bench_range(ring, blob, args.repeat)


if __name__ == "__main__":
    main()
