# -*- test-case-name: tests.test_jmap_email_set -*-
"""The bytes of blobs a method names (Email/set create, Email/import).

Message blobs ``G<email>`` and part blobs ``G<email>.<part>`` (ids.py) are read in ONE job
through ``UserMail.emails``; uploads ``U<token>`` through the upload store of the API
endpoint (jmap-core's blobs.py), reached as ``call.context.uploads.read(call, token)``.
A blob that is not the user's, or does not exist, is simply absent from the answer.
"""

from __future__ import annotations

from typing import Iterable

from mailgosend.jmap.ids import parse_blob_id
from mailgosend.jmap.methods import Call
from mailgosend.jmap.parts import part_blob

__all__ = ["read_blobs"]


async def read_blobs(call: Call, blob_ids: Iterable[str]) -> dict[str, bytes]:
    wanted = list(dict.fromkeys(blob_ids))
    refs = {blob_id: parse_blob_id(blob_id) for blob_id in wanted}
    numbers = {ref.email_id for ref in refs.values()
               if ref is not None and ref.email_id is not None}
    records = await call.mail.email_records(sorted(numbers), raw=True) if numbers else {}
    found: dict[str, bytes] = {}
    uploads = getattr(call.context, "uploads", None)
    for blob_id, ref in refs.items():
        if ref is None:
            continue
        if ref.upload is not None:
            if uploads is not None:
                data = await uploads.read(call, ref.upload)
                if data is not None:
                    found[blob_id] = data
            continue
        record = records.get(ref.email_id) if ref.email_id is not None else None
        if record is None or record.raw is None:
            continue
        if ref.part is None:
            found[blob_id] = record.raw
            continue
        blob = part_blob(record.info, record.raw, ref.part)
        if blob is not None:
            found[blob_id] = blob.data
    return found
