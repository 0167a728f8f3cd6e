# -*- test-case-name: tests.test_jmap_core -*-
"""The JMAP Session resource (RFC 8620 §2) at /.well-known/jmap: what the server can do,
the one account a user has, and where the API, blobs and push live.

URLs are absolute, built from the request's own origin (scheme and Host as the web layer
sees them behind TRUSTED_PROXIES), so a client that found us under one name keeps using it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from mailgosend.jmap.methods import CORE, MAIL, SUBMISSION, VACATION, Limits

__all__ = ["CAPABILITIES", "API_PATH", "UPLOAD_PATH", "DOWNLOAD_PATH", "EVENTSOURCE_PATH",
           "core_capability", "session_resource", "session_state"]

API_PATH = "/jmap/api"
UPLOAD_PATH = "/jmap/upload/"
DOWNLOAD_PATH = "/jmap/download/"
EVENTSOURCE_PATH = "/jmap/eventsource/"
# The URL templates of RFC 8620 §2 (RFC 6570 level 1 variables).
DOWNLOAD_TEMPLATE = DOWNLOAD_PATH + "{accountId}/{blobId}/{name}?type={type}"
UPLOAD_TEMPLATE = UPLOAD_PATH + "{accountId}/"
EVENTSOURCE_TEMPLATE = (EVENTSOURCE_PATH +
                        "?types={types}&closeafter={closeafter}&ping={ping}")

# Every capability the server announces; a request "using" another is refused
# (unknownCapability).  Data modules add account-level values (catalog.py).
CAPABILITIES = (CORE, MAIL, SUBMISSION, VACATION)

# RFC 8621 §1.3.1: our defaults for the mail account capability; an Email is one row of
# one mailbox (a move keeps its id, a copy is a new Email), so it is in exactly one mailbox.
MAIL_ACCOUNT_DEFAULTS: dict[str, Any] = {
    "maxMailboxesPerEmail": 1,
    "maxMailboxDepth": None,
    "maxSizeMailboxName": 490,
    "maxSizeAttachmentsPerEmail": 50_000_000,
    "emailQuerySortOptions": ["receivedAt", "sentAt", "size", "from", "to", "subject",
                              "hasKeyword", "allInThreadHaveKeyword",
                              "someInThreadHaveKeyword"],
    "mayCreateTopLevelMailbox": True,
}
SUBMISSION_ACCOUNT_DEFAULTS: dict[str, Any] = {"maxDelayedSend": 0,
                                               "submissionExtensions": {}}


def core_capability(limits: Limits) -> dict[str, Any]:
    """RFC 8620 §2: the core capability's limits, from the one ``Limits``."""
    return {
        "maxSizeUpload": limits.max_size_upload,
        "maxConcurrentUpload": limits.max_concurrent_upload,
        "maxSizeRequest": limits.max_size_request,
        "maxConcurrentRequests": limits.max_concurrent_requests,
        "maxCallsInRequest": limits.max_calls_in_request,
        "maxObjectsInGet": limits.max_objects_in_get,
        "maxObjectsInSet": limits.max_objects_in_set,
        "collationAlgorithms": list(limits.collation_algorithms),
    }


def account_capabilities(limits: Limits, extra: Mapping[str, Mapping[str, Any]]
                         ) -> dict[str, dict[str, Any]]:
    mail = dict(MAIL_ACCOUNT_DEFAULTS, maxSizeAttachmentsPerEmail=limits.max_size_upload)
    found = {MAIL: mail, SUBMISSION: dict(SUBMISSION_ACCOUNT_DEFAULTS), VACATION: {}}
    for urn, values in extra.items():
        found.setdefault(urn, {}).update(values)
    return found


def session_state(document: Mapping[str, Any]) -> str:
    """RFC 8620 §2 ``state``: changes exactly when the session object does."""
    body = {k: v for k, v in document.items() if k != "state"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def session_resource(*, base: str, username: str, account_id: str, limits: Limits,
                     extra: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The Session object for one user; ``base`` is the origin ("https://host:port")."""
    document: dict[str, Any] = {
        "capabilities": {CORE: core_capability(limits), MAIL: {}, SUBMISSION: {},
                         VACATION: {}},
        "accounts": {account_id: {
            "name": username, "isPersonal": True, "isReadOnly": False,
            "accountCapabilities": account_capabilities(limits, extra)}},
        "primaryAccounts": {MAIL: account_id, SUBMISSION: account_id,
                            VACATION: account_id},
        "username": username,
        "apiUrl": base + API_PATH,
        "downloadUrl": base + DOWNLOAD_TEMPLATE,
        "uploadUrl": base + UPLOAD_TEMPLATE,
        "eventSourceUrl": base + EVENTSOURCE_TEMPLATE,
    }
    document["state"] = session_state(document)
    return document
