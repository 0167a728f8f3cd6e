"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3), strict in both directions.

Twisted's ``imap4-utf-7`` codec accepts malformed input (a bare "&" decodes to "+", "&AGE-"
to "a"), so two spellings could name one mailbox.  Here a name is accepted only in its one
canonical encoding: decoding checks that re-encoding gives back the exact bytes.
"""

from __future__ import annotations

import base64

__all__ = ["InvalidModifiedUTF7", "decode", "encode"]


class InvalidModifiedUTF7(ValueError):
    """Bytes that are not the canonical modified UTF-7 form of any name."""


def _is_direct(ch: str) -> bool:
    return 0x20 <= ord(ch) <= 0x7E and ch != "&"


def encode(name: str) -> bytes:
    """Printable ASCII as is ("&" as "&-"), everything else as modified BASE64 of UTF-16BE."""
    out: list[bytes] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be", "surrogatepass")
            out.append(b"&" + base64.b64encode(raw).rstrip(b"=").replace(b"/", b",") + b"-")
            pending.clear()

    for ch in name:
        if _is_direct(ch):
            flush()
            out.append(ch.encode("ascii"))
        elif ch == "&":
            flush()
            out.append(b"&-")
        else:
            pending.append(ch)
    flush()
    return b"".join(out)


def _decode_loose(data: bytes) -> str:
    out: list[str] = []
    i = 0
    while i < len(data):
        byte = data[i]
        if byte != 0x26:  # "&"
            if not 0x20 <= byte <= 0x7E:
                raise InvalidModifiedUTF7("mailbox names are 7-bit: use modified UTF-7")
            out.append(chr(byte))
            i += 1
            continue
        end = data.find(b"-", i + 1)
        if end < 0:
            raise InvalidModifiedUTF7("unterminated '&' sequence in mailbox name")
        chunk = data[i + 1:end]
        if not chunk:
            out.append("&")
        else:
            padded = chunk.replace(b",", b"/") + b"=" * (-len(chunk) % 4)
            try:
                raw = base64.b64decode(padded, validate=True)
                out.append(raw.decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError):
                raise InvalidModifiedUTF7("invalid modified BASE64 in mailbox name") from None
        i = end + 1
    return "".join(out)


def decode(data: bytes) -> str:
    """The name ``data`` encodes; InvalidModifiedUTF7 unless ``data`` is canonical."""
    name = _decode_loose(data)
    if encode(name) != data:
        raise InvalidModifiedUTF7("mailbox name is not in canonical modified UTF-7")
    return name
