# -*- test-case-name: tests.test_jmap_email_set -*-
"""The bytes of the blobs a method names (Email/set attachments, Email/import), through
the one blob resolution (blobs.py ``Blobs``): uploads, messages and message parts of the
caller only; a blob that is not the user's, or does not exist, is absent from the answer."""

from __future__ import annotations

from typing import Iterable

from mailgosend.jmap.blobs import Blobs
from mailgosend.jmap.methods import Call

__all__ = ["read_blobs"]


async def read_blobs(call: Call, blob_ids: Iterable[str]) -> dict[str, bytes]:
    services = getattr(call.context, "services", None)
    blobs = getattr(services, "blobs", None)
    if not isinstance(blobs, Blobs):
        blobs = Blobs(mail=call.mail.service, clock=call.mail.service.clock)
    found: dict[str, bytes] = {}
    for blob_id in dict.fromkeys(blob_ids):
        data = await blobs.read(call.mail, blob_id)
        if data is not None:
            found[blob_id] = data
    return found
