# -*- test-case-name: tests.test_imap_rev2 -*-
"""IMAP4rev2 (RFC 9051) beside IMAP4rev1: the rules a session follows after ENABLE IMAP4rev2.

Both versions are advertised; a client that wants rev2 semantics sends ``ENABLE IMAP4rev2``
(RFC 9051 Appendix A), and sessions that do not keep the rev1 behaviour unchanged.  What
changes for a session once rev2 is enabled (the commands apply these rules):

* SEARCH and UID SEARCH answer one ESEARCH response, ``RETURN (ALL)`` when no result option
  is given (§6.4.4, Appendix E item 4), never ``* SEARCH``;
* no \\Recent (Appendix E item 12): no RECENT response, no \\Recent in FLAGS, the session
  claims no message as recent (a rev1 session still sees them \\Recent), and the removed
  grammar (§9) makes the RECENT status item and the NEW, OLD and RECENT search keys BAD;
* SELECT/EXAMINE send no UNSEEN response code (item 11) and send a LIST response for the
  mailbox with accurate attributes (§6.3.2, item 10); OK [CLOSED] when switching mailboxes
  is sent to every session already (§7.1);
* mailbox names are UTF-8 on the wire, in and out (§5.1, Appendix A: no UTF-8 before the
  ENABLE); a new name (CREATE, RENAME) must be Net-Unicode (RFC 5198: NFC, no control
  characters), else NO (§6.3.4); names are never Unicode-normalised, and when "INBOX" was
  given in another case SELECT/EXAMINE, CREATE and RENAME add OLDNAME to their LIST response
  (§6.3.9.7, as the §8 sample does);
* DELETE of a mailbox with children answers NO [HASCHILDREN] (§6.3.5, §7.1);
* STATUS DELETED (§6.3.11);
* response text may hold UTF-8 (§9 ``text``, Appendix E item 24; server.send_tagged).

Not needed, so not done: literal8 for BODY[] (§9 has it only for BINARY[], which sends it);
refusing the deprecated RFC822.* FETCH items and LSUB/CHECK (still answered: harmless, and
rev1 clients share the code).

Everything else RFC 9051 folds in was there before: NAMESPACE, UNSELECT, UIDPLUS, ESEARCH,
SEARCHRES, ENABLE, IDLE, SASL-IR, LIST-EXTENDED with LIST-STATUS, MOVE, LITERAL+ (a superset
of the LITERAL- that §4.3 requires), RFC 5530 response codes, BINARY's FETCH side,
SPECIAL-USE attributes, STATUS SIZE, COPYUID for MOVE, TRYCREATE, unsolicited FETCH with UID.

Pure functions over plain values, tested with tables in tests.test_imap_rev2.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from mailgosend.imap.errors import bad, no
from mailgosend.imap.wireformat import mailbox
from mailgosend.store.mailboxes import DELIMITER

__all__ = ["REMOVED_SEARCH_KEYS", "check_net_unicode", "oldname_item", "reject_removed_keys",
           "status_items"]

REMOVED_SEARCH_KEYS = ("new", "old", "recent")  # RFC 9051 §9 search-key has none of them


def status_items(rev1_items: tuple[str, ...], rev2: bool) -> tuple[str, ...]:
    """The STATUS data items a session may ask for: RFC 9051 §9 ``status-att`` has DELETED
    and no RECENT; rev1 sessions keep their list."""
    if not rev2:
        return rev1_items
    return tuple(item for item in rev1_items if item != "RECENT") + ("DELETED",)


def reject_removed_keys(tree: Any) -> None:
    """BAD when a parsed SEARCH tree (search.parse_search) uses NEW, OLD or RECENT, which
    RFC 9051 removed with \\Recent.  Iterative, as deep trees are allowed."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, tuple):
            if len(node) == 1 and node[0] in REMOVED_SEARCH_KEYS:
                raise bad(f"IMAP4rev2 has no {node[0].upper()} search key (RFC 9051)")
            stack.extend(node)
        elif isinstance(node, list):
            stack.extend(node)


def oldname_item(supplied: str, name: str, utf8: bool = True) -> bytes:
    """The LIST extended data item ``("OLDNAME" ("supplied"))`` when the name a client gave
    differs from the mailbox's canonical one (RFC 9051 §6.3.9.7, the §8 sample's ``select
    inbox``): "INBOX" in another case, a CREATE name with the trailing delimiter dropped is
    not a difference (§6.3.4); empty otherwise."""
    if supplied == name or supplied.rstrip(DELIMITER) == name:
        return b""
    return b' ("OLDNAME" (' + mailbox(supplied, utf8) + b"))"


def check_net_unicode(name: str) -> None:
    """RFC 9051 §5.1/§6.3.4: a UTF-8 mailbox name must be Net-Unicode (RFC 5198 §2: NFC,
    no control characters); refused rather than normalised, so a name is always the one the
    client gave."""
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise no("Mailbox names cannot contain control characters", "CANNOT")
    if unicodedata.normalize("NFC", name) != name:
        raise no("Mailbox name is not in Unicode normalization form C (RFC 5198)", "CANNOT")
