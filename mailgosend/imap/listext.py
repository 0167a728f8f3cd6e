# -*- test-case-name: tests.test_imap_listext -*-
"""LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819) and SPECIAL-USE (RFC 6154 §3).

``parse_list`` reads either LIST form; ``extended_list`` is the pure selection: mailboxes and
subscribed names in, LIST entries out, tested with tables.  What it follows:

* selection options (RFC 5258 §3.1): SUBSCRIBED lists subscribed *names*, including names
  whose mailbox is gone, which carry ``\\NonExistent`` (§3.4; a subscription is a name,
  RFC 3501 §6.3.6) and implies the SUBSCRIBED return option; SPECIAL-USE (RFC 6154 §3) keeps
  mailboxes with a special use; REMOTE changes nothing (there are no remote mailboxes);
  RECURSIVEMATCH, never alone (BAD), also lists a name that matches a pattern because a
  descendant the pattern does not reach meets the criteria, with
  ``("CHILDINFO" ("SUBSCRIBED"))`` (§3.5; RFC 5258 §5 example 8: "Fruit" for "%");
* return options (§3.2): SUBSCRIBED adds ``\\Subscribed``; CHILDREN's ``\\HasChildren`` /
  ``\\HasNoChildren`` and SPECIAL-USE's attributes are always given (RFC 5258 §4 and RFC 6154
  §2 allow it); STATUS (RFC 5819) is answered by the caller, after each selectable entry;
* several patterns in one command (§3, ``mbox-or-pat``), each name listed once;
* a name matched only through a hierarchy level that has no mailbox is ``\\NonExistent``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from mailgosend.imap import mutf7
from mailgosend.imap.account import pattern_regex
from mailgosend.imap.errors import bad
from mailgosend.imap.tokens import Args, Atom, as_bytes, decode_name
from mailgosend.store.mailboxes import DELIMITER, INBOX, Mailbox

__all__ = ["ListEntry", "ListRequest", "decode_pattern", "extended_list", "parse_list"]

SELECT_OPTIONS = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
RETURN_OPTIONS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})
_CRITERIA = ("SUBSCRIBED", "SPECIAL-USE")  # selection options that filter


@dataclass(frozen=True)
class ListRequest:
    selection: frozenset[str]
    reference: str
    patterns: tuple[str, ...]
    returns: frozenset[str]
    status_items: tuple[str, ...]  # RETURN (STATUS (...)), RFC 5819
    extended: bool  # selection or return options present (RFC 5258 syntax)


@dataclass(frozen=True)
class ListEntry:
    name: str
    attributes: tuple[str, ...]
    childinfo: tuple[str, ...] = ()
    mailbox: Optional[Mailbox] = None  # None: \NonExistent

    @property
    def selectable(self) -> bool:
        return self.mailbox is not None


def decode_pattern(raw: bytes, utf8: bool = False) -> str:
    """A LIST reference or pattern argument (modified UTF-7, or UTF-8 after ENABLE
    UTF8=ACCEPT); BAD if it does not decode."""
    try:
        return decode_name(raw, utf8)
    except mutf7.InvalidModifiedUTF7 as exc:
        raise bad(str(exc)) from None


def _option_names(token: object, allowed: frozenset[str], what: str) -> list[str]:
    if not isinstance(token, list) or not all(isinstance(t, Atom) for t in token):
        raise bad(f"Invalid {what} options")
    names = [t.upper() for t in token]
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise bad(f"Unsupported {what} option {unknown[0]}")
    return names


def parse_list(args: Args, status_items: Sequence[str]) -> ListRequest:
    """LIST [(selection)] reference pattern-or-(patterns) [RETURN (options)]; BAD on bad
    syntax, unknown options, RECURSIVEMATCH without a filtering option (RFC 5258 §3.1) and
    unknown STATUS items."""
    selection: set[str] = set()
    extended = False
    if isinstance(args.peek(), list):
        selection = set(_option_names(args.next(), SELECT_OPTIONS, "LIST selection"))
        extended = True
    reference = decode_pattern(args.astring("reference"), args.utf8)
    if isinstance(args.peek(), list):
        patterns = [decode_pattern(as_bytes(t, "pattern"), args.utf8)
                    for t in args.parenthesized()]
        if not patterns:
            raise bad("Expected at least one mailbox pattern")
        extended = True
    else:
        patterns = [decode_pattern(args.astring("mailbox pattern"), args.utf8)]
    returns: set[str] = set()
    items: list[str] = []
    if not args.at_end():
        keyword = args.atom("RETURN")
        if keyword.upper() != "RETURN":
            raise bad("Expected RETURN")
        extended = True
        options = args.parenthesized("return options")
        position = 0
        while position < len(options):
            name = _option_names([options[position]], RETURN_OPTIONS, "LIST return")[0]
            returns.add(name)
            position += 1
            if name == "STATUS":  # RFC 5819: STATUS (status-att ...)
                wanted = options[position] if position < len(options) else None
                if not isinstance(wanted, list):
                    raise bad("Expected STATUS (items)")
                items = [str(t).upper() for t in wanted]
                position += 1
                if not items or not all(isinstance(t, Atom) for t in wanted) \
                        or set(items) - set(status_items):
                    raise bad(f"STATUS items must be among {' '.join(status_items)}")
    args.end()
    if "RECURSIVEMATCH" in selection and not selection & set(_CRITERIA):
        raise bad("RECURSIVEMATCH needs another selection option")
    if "SUBSCRIBED" in selection:
        returns.add("SUBSCRIBED")  # RFC 5258 §3.1
    return ListRequest(frozenset(selection), reference, tuple(patterns), frozenset(returns),
                       tuple(items), extended)


def _ancestors(name: str) -> list[str]:
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:i]) for i in range(1, len(levels))]


def _sort_key(name: str) -> tuple[bool, list[str]]:
    return (name != INBOX, name.split(DELIMITER))


def extended_list(boxes: Sequence[Mailbox], subscribed: set[str], request: ListRequest
                  ) -> list[ListEntry]:
    """The entries of an extended LIST, in name order (INBOX first); see the module
    docstring.  ``subscribed`` holds the subscribed names, which need no mailbox."""
    existing = {box.name: box for box in boxes}
    with_children = {a for name in existing for a in _ancestors(name)}
    regexes = [pattern_regex(request.reference + p) for p in request.patterns]
    criteria = [c for c in _CRITERIA if c in request.selection]

    def matches(name: str) -> bool:
        return any(regex.match(name) for regex in regexes)

    def meets(name: str) -> bool:
        if "SUBSCRIBED" in criteria and name not in subscribed:
            return False
        if "SPECIAL-USE" in criteria:
            box = existing.get(name)
            return box is not None and box.special_use is not None
        return True

    universe = set(existing) | (subscribed if "SUBSCRIBED" in criteria else set())
    chosen = {name for name in universe if meets(name)}
    listed = {name for name in chosen if matches(name)}
    childinfo: dict[str, tuple[str, ...]] = {}
    for name in chosen - listed:  # reached by no pattern: a parent level may be
        for ancestor in _ancestors(name):
            if not matches(ancestor):
                continue
            if not criteria:  # RFC 3501 §6.3.8: "%" cut the name at this level
                listed.add(ancestor)
            elif "RECURSIVEMATCH" in request.selection:
                listed.add(ancestor)
                childinfo[ancestor] = tuple(criteria)
    entries = []
    for name in sorted(listed, key=_sort_key):
        box = existing.get(name)
        attributes: list[str] = []
        if box is None:
            attributes.append("\\NonExistent")  # implies \Noselect (RFC 5258 §3.4)
            if name in with_children:
                attributes.append("\\HasChildren")
        else:
            attributes.append("\\HasChildren" if name in with_children else "\\HasNoChildren")
            if box.special_use:
                attributes.append(box.special_use)
        if "SUBSCRIBED" in request.returns and name in subscribed:
            attributes.append("\\Subscribed")
        entries.append(ListEntry(name, tuple(attributes), childinfo.get(name, ()), box))
    return entries
