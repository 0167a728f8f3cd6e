# -*- test-case-name: tests.test_imap_thread -*-
"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3) over plain values.

Input: one ``ThreadItem`` per message the search criteria matched (its number, sent time,
base-subject key, reply flag, Message-ID and references, from sortkeys.py); output: a
``Forest`` and its ``thread-list`` text (§4).  Sibling order is §2.2: sent date, then sequence
number; ``ThreadItem.when`` carries both.

Implementation notes:

1. Containers (messages and the dummies REFERENCES makes for missing ones) are integers
   indexing parallel lists, and only containers with children have a children list: a
   mailbox of 10,000 mostly unanswered messages allocates no object per message (allocating
   them cost more in garbage collection than the algorithm itself).
2. Container 0 is the root; a top-level thread's parent is 0, a container not linked yet has
   parent -1.
3. Everything is iterative (explicit stacks), so a reply chain of 100,000 messages costs no
   recursion.

Not here: the message data (sort.py loads it) and the wire (cmd_sort.py).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Callable, NamedTuple, Optional, Sequence

__all__ = ["Forest", "ThreadItem", "format_threads", "ordered_subject", "references"]

ROOT = 0
_NONE: list[int] = []  # read-only stand-in for "no children"


class ThreadItem(NamedTuple):
    """One message; a tuple, cheap to make by the ten thousand."""

    number: int  # sequence number or UID, as the answer names messages
    when: tuple[float, int]  # (sent time, sequence number): RFC 5256 §2.2 order
    subject: str  # base subject in collation form (sortkeys.base_subject + unicode_casemap)
    reply: bool  # the subject had a reply/forward marker
    message_id: Optional[str]
    references: tuple[str, ...]  # References, or the In-Reply-To id standing in


class Forest:
    """Containers by index (see the module notes): ``items`` (None for a dummy),
    ``parent`` and ``children``; the threads are ``children[ROOT]`` in order."""

    __slots__ = ("items", "parent", "children")

    def __init__(self) -> None:
        self.items: list[Optional[ThreadItem]] = [None]
        self.parent: list[int] = [-1]
        self.children: dict[int, list[int]] = {ROOT: []}

    def add(self, item: Optional[ThreadItem]) -> int:
        self.items.append(item)
        self.parent.append(-1)
        return len(self.items) - 1

    def kids(self, c: int) -> list[int]:
        return self.children.get(c, _NONE)

    def link(self, parent: int, child: int) -> None:
        self.unlink(child)
        self.parent[child] = parent
        self.children.setdefault(parent, []).append(child)

    def unlink(self, child: int) -> None:
        old = self.parent[child]
        if old >= 0:
            siblings = self.children[old]
            siblings.remove(child)
            if not siblings and old != ROOT:
                del self.children[old]
        self.parent[child] = -1

    def when_key(self) -> Callable[[int], tuple[float, int]]:
        """Sort key of a container: its date, a dummy's first child's (§3 steps 4 and 6)."""
        items, children = self.items, self.children

        def when(c: int) -> tuple[float, int]:
            item = items[c]
            while item is None:
                kids = children.get(c)
                if not kids:
                    return (0.0, 0)
                c = kids[0]
                item = items[c]
            return item.when

        return when

    def subject_item(self, c: int) -> Optional[ThreadItem]:
        item = self.items[c]
        if item is None:
            kids = self.children.get(c)
            item = self.items[kids[0]] if kids else None
        return item

    def walk(self, top: int) -> list[int]:
        """``top`` and every container below it, parents before children."""
        out, stack, children = [], [top], self.children
        while stack:
            c = stack.pop()
            out.append(c)
            kids = children.get(c)
            if kids:
                stack.extend(kids)
        return out

    def is_ancestor(self, candidate: int, node: int) -> bool:
        """Whether ``candidate`` is ``node`` or above it (a link would loop).  A candidate
        without children is nobody's ancestor: messages threaded in order cost no walk."""
        if candidate not in self.children:
            return candidate == node
        parent = self.parent
        while node >= 0:
            if node == candidate:
                return True
            node = parent[node]
        return False


def ordered_subject(items: Sequence[ThreadItem]) -> Forest:
    """§3 ORDEREDSUBJECT: sort by base subject then sent date; each subject's first message
    is the root, the others its children; threads in order of their roots' sent dates."""
    forest = Forest()
    threads: dict[str, int] = {}
    ordered = sorted(items, key=itemgetter(1))  # by date, then (stable) by subject
    ordered.sort(key=itemgetter(2))
    children, parent = forest.children, forest.parent
    for item in ordered:
        c = forest.add(item)
        root = threads.get(item.subject)
        if root is None:
            threads[item.subject] = c
            parent[c] = ROOT
        else:
            parent[c] = root
            children.setdefault(root, []).append(c)
    children[ROOT] = sorted(threads.values(), key=forest.when_key())
    return forest


def references(items: Sequence[ThreadItem]) -> Forest:
    """§3 REFERENCES (the algorithm of Jamie Zawinski): steps 1 to 6."""
    forest = Forest()
    table: dict[str, int] = {}
    dummies = False
    contents, parent = forest.items, forest.parent
    # Step 1: containers by Message-ID; duplicates and messages without one get their own.
    for item in sorted(items, key=lambda i: i.when[1]):  # sequence order
        mid = item.message_id
        c = table.get(mid, -1) if mid is not None else -1
        if c < 0 or contents[c] is not None:
            c = forest.add(item)
            if mid is not None and mid not in table:
                table[mid] = c
        else:
            contents[c] = item  # a dummy made by an earlier message's references
        # 1B: link the references in order, the first the parent of the second and so on,
        # never changing a link already made and never making a loop.
        previous = -1
        for ref in item.references:
            r = table.get(ref, -1)
            if r < 0:
                r = table[ref] = forest.add(None)
                dummies = True
            if previous >= 0 and parent[r] < 0 and not forest.is_ancestor(r, previous):
                forest.link(previous, r)
            previous = r
        # 1C: the last reference is this message's parent (a truncated References may have
        # made another one: that link is broken), unless that makes a loop.
        if previous >= 0 and previous != c and not forest.is_ancestor(c, previous):
            forest.link(previous, c)
        elif previous < 0 and parent[c] >= 0:
            forest.unlink(c)
    # Step 2: every container without a parent goes under the root.
    top = [c for c in range(1, len(parent)) if parent[c] < 0]
    for c in top:
        parent[c] = ROOT
    forest.children[ROOT] = top
    if dummies:
        _prune(forest)
    when = forest.when_key()
    # Step 4: sort the top level by sent date (a dummy: its children first, then by them).
    for c in forest.children[ROOT]:
        if contents[c] is None:
            forest.children[c].sort(key=when)
    forest.children[ROOT].sort(key=when)
    _merge_subjects(forest)
    # Step 6: every set of siblings by sent date, the youngest generation first (a dummy
    # sorts as its first child, so its children are sorted before it is); threads of one
    # message (most mail) need no walk.
    children = forest.children
    for t in children[ROOT]:
        if t in children:
            for c in reversed(forest.walk(t)):
                kids = children.get(c)
                if kids and len(kids) > 1:
                    kids.sort(key=when)
    children[ROOT].sort(key=when)
    return forest


def _prune(forest: Forest) -> None:
    """Step 3: dummies without children go; a dummy's children take its place, except that
    several children of a top-level dummy stay under it (they would become roots)."""
    contents, parent, children = forest.items, forest.parent, forest.children
    # Children first, so a dummy sees its final children when it is decided; the top level
    # is rebuilt in one pass at the end (it may hold most of the mailbox).
    for c in reversed(forest.walk(ROOT)):
        p = parent[c]
        if contents[c] is not None or c == ROOT or p == ROOT:
            continue
        kids = children.pop(c, _NONE)
        siblings = children[p]
        index = siblings.index(c)
        for k in kids:
            parent[k] = p
        siblings[index:index + 1] = kids
        parent[c] = -1
    top: list[int] = []
    for c in children[ROOT]:
        kids = children.get(c, _NONE)
        if contents[c] is not None or len(kids) > 1:
            top.append(c)
        elif kids:
            parent[kids[0]] = ROOT
            top.append(kids[0])
            del children[c]
    children[ROOT] = top


def _merge_subjects(forest: Forest) -> None:
    """Step 5: top-level threads with the same base subject are gathered."""
    contents, parent, children = forest.items, forest.parent, forest.children
    table: dict[str, int] = {}
    for c in children[ROOT]:  # 5B
        item = contents[c] if contents[c] is not None else forest.subject_item(c)
        if item is None or not item.subject:
            continue
        old = table.get(item.subject)
        old_item = forest.subject_item(old) if old is not None else None
        if old is None or old_item is None or (contents[c] is None and
                                               contents[old] is not None) or (
                old_item.reply and not item.reply and not (
                    contents[old] is None and contents[c] is not None)):
            table[item.subject] = c
    gone: set[int] = set()  # top-level containers merged into another
    replaced: dict[int, int] = {}  # top-level container -> the dummy now in its place
    for c in list(children[ROOT]):  # 5C
        item = contents[c] if contents[c] is not None else forest.subject_item(c)
        if item is None or not item.subject:
            continue
        held = table[item.subject]
        if held == c or parent[c] != ROOT:  # kept, or already under a dummy
            continue
        gone.add(c)
        held_item = contents[held]
        if held_item is None and contents[c] is None:
            kids = children.pop(c, _NONE)
            for k in kids:
                parent[k] = held
            children[held].extend(kids)
        elif held_item is None or (item.reply and not held_item.reply):
            parent[c] = held
            children.setdefault(held, []).append(c)
        else:
            dummy = forest.add(None)
            parent[dummy] = ROOT
            replaced[held] = dummy
            parent[held] = parent[c] = dummy
            children[dummy] = [held, c]
            table[item.subject] = dummy
    children[ROOT] = [replaced.get(c, c) for c in children[ROOT] if c not in gone]


def format_threads(forest: Forest) -> bytes:
    """The ``thread-list`` text of RFC 5256 §4: a chain of single children is written flat
    ("(1 2 3)"), two or more children each as a nested list ("(1 (2)(3 4))"); dummies
    write only their children."""
    contents, children = forest.items, forest.children
    out: list[bytes] = []
    stack = list(reversed(children[ROOT]))  # containers to write; -1 closes a list
    while stack:
        c = stack.pop()
        if c < 0:
            out.append(b")")
            continue
        item = contents[c]
        kids = children.get(c)
        if not kids and item is not None:  # most threads: one message
            out.append(b"(%d)" % item.number)
            continue
        members = []
        while True:
            if item is not None:
                members.append(b"%d" % item.number)
            if kids is None or len(kids) != 1:
                break
            c = kids[0]
            item, kids = contents[c], children.get(c)
        out.append(b"(" + b" ".join(members))
        stack.append(-1)
        if kids:
            if members:
                out.append(b" ")
            stack.extend(reversed(kids))
    return b"".join(out)
