# -*- test-case-name: tests.test_imap_thread -*-
"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3) over plain values.

Input: one ``ThreadItem`` per message the search criteria matched (its number, sent time,
base-subject key, reply flag, Message-ID and references, from sortkeys.py); output: a forest
of ``Node`` and its ``thread-list`` text (§4).  Everything is iterative (an explicit stack or
queue), so a reply chain of 100,000 messages costs no recursion.  Sibling order is §2.2: sent
date, then sequence number; ``ThreadItem.when`` carries both.

Not here: the message data (sort.py loads it) and the wire (cmd_sort.py).
"""

from __future__ import annotations

from operator import itemgetter
from typing import NamedTuple, Optional, Sequence

__all__ = ["Node", "ThreadItem", "format_threads", "ordered_subject", "references"]


class ThreadItem(NamedTuple):
    """One message; a tuple, cheap to make by the ten thousand."""

    number: int  # sequence number or UID, as the answer names messages
    when: tuple[float, int]  # (sent time, sequence number): RFC 5256 §2.2 order
    subject: str  # base subject in collation form (sortkeys.base_subject + unicode_casemap)
    reply: bool  # the subject had a reply/forward marker
    message_id: Optional[str]
    references: tuple[str, ...]  # References, or the In-Reply-To id standing in


class Node:
    """A message (``item``) or a dummy (``item`` None) and its children in order."""

    __slots__ = ("item", "children", "parent")

    def __init__(self, item: Optional[ThreadItem] = None, parent: Optional[Node] = None
                 ) -> None:
        self.item = item
        self.children: list[Node] = []
        self.parent = parent

    def when(self) -> tuple[float, int]:
        """§3 steps 4 and 6: a dummy sorts as its first child."""
        if self.item is not None:
            return self.item.when
        node: Node = self
        while node.item is None and node.children:
            node = node.children[0]
        return node.item.when if node.item is not None else (0.0, 0)

    def subject_item(self) -> Optional[ThreadItem]:
        return self.item if self.item is not None else (
            self.children[0].item if self.children else None)


def ordered_subject(items: Sequence[ThreadItem]) -> list[Node]:
    """§3 ORDEREDSUBJECT: sort by base subject then sent date; each subject's first message
    is the root, the others its children; threads in order of their roots' sent dates."""
    threads: dict[str, Node] = {}
    ordered = sorted(items, key=itemgetter(1))  # by date, then (stable) by subject
    ordered.sort(key=itemgetter(2))
    for item in ordered:
        root = threads.get(item.subject)
        if root is None:
            threads[item.subject] = Node(item)
        else:
            root.children.append(Node(item, parent=root))
    return sorted(threads.values(), key=Node.when)


def _is_ancestor(candidate: Node, node: Node) -> bool:
    """Whether ``candidate`` is ``node`` or one of its ancestors (a link would loop).  A
    candidate without children is nobody's ancestor: messages threaded in order cost no walk
    up a long chain."""
    if not candidate.children:
        return candidate is node
    current: Optional[Node] = node
    while current is not None:
        if current is candidate:
            return True
        current = current.parent
    return False


def _link(parent: Node, child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def references(items: Sequence[ThreadItem]) -> list[Node]:
    """§3 REFERENCES (the algorithm of Jamie Zawinski): steps 1 to 6."""
    table: dict[str, Node] = {}
    nodes: list[Node] = []
    # Step 1: containers by Message-ID; duplicates and messages without one get their own.
    for item in sorted(items, key=lambda i: i.when[1]):  # sequence order
        node = table.get(item.message_id) if item.message_id is not None else None
        if node is None or node.item is not None:
            node = Node(item)
            if item.message_id is not None and item.message_id not in table:
                table[item.message_id] = node
        else:
            node.item = item  # a dummy created by an earlier message's references
        nodes.append(node)
        # 1B: link the references in order, first the parent of the second and so on,
        # never changing a link already made and never making a loop.
        previous: Optional[Node] = None
        for ref in item.references:
            ref_node = table.get(ref)
            if ref_node is None:
                ref_node = table[ref] = Node()
            if previous is not None and ref_node.parent is None \
                    and not _is_ancestor(ref_node, previous):
                _link(previous, ref_node)
            previous = ref_node
        # 1C: the last reference is this message's parent (a truncated References may have
        # made another one: that link is broken), unless that makes a loop.
        if previous is not None and previous is not node and not _is_ancestor(node, previous):
            _link(previous, node)
        elif previous is None and node.parent is not None:
            node.parent.children.remove(node)
            node.parent = None
    # Step 2: every container without a parent goes under the root.
    everything = list(table.values()) + [n for n in nodes if n.item is not None
                                         and table.get(n.item.message_id or "") is not n]
    root = Node()
    for node in everything:
        if node.parent is None:
            root.children.append(node)
            node.parent = root
    _prune(root)
    # Step 4: sort the top level by sent date (a dummy: its children first, then by them).
    for node in root.children:
        if node.item is None:
            node.children.sort(key=Node.when)
    root.children.sort(key=Node.when)
    _merge_subjects(root)
    # Step 6: every set of siblings by sent date, the youngest generation first (a dummy
    # sorts as its first child, so its children are sorted before it is).
    for node in reversed(_walk(root)):
        if len(node.children) > 1:
            node.children.sort(key=Node.when)
    for node in root.children:
        node.parent = None
    return root.children


def _walk(root: Node) -> list[Node]:
    """Every node below and including ``root``, parents before children."""
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.children)
    return out


def _prune(root: Node) -> None:
    """Step 3: dummies without children go; a dummy's children take its place, except that
    several children of a top-level dummy stay under it (they would become roots)."""
    # Children first, so a dummy sees its final children when it is decided; the top level
    # is rebuilt in one pass at the end (it may hold most of the mailbox).
    for node in reversed(_walk(root)):
        parent = node.parent
        if node.item is not None or parent is None or parent is root:
            continue
        index = parent.children.index(node)
        for child in node.children:
            child.parent = parent
        parent.children[index:index + 1] = node.children
        node.children, node.parent = [], None
    top: list[Node] = []
    for node in root.children:
        if node.item is not None or len(node.children) > 1:
            top.append(node)
        elif node.children:
            child = node.children[0]
            child.parent = root
            top.append(child)
    root.children = top


def _merge_subjects(root: Node) -> None:
    """Step 5: top-level threads with the same base subject are gathered."""
    table: dict[str, Node] = {}
    for node in root.children:  # 5B
        item = node.subject_item()
        if item is None or not item.subject:
            continue
        old = table.get(item.subject)
        old_item = old.subject_item() if old is not None else None
        if old is None or old_item is None or (node.item is None and old.item is not None) or (
                old_item.reply and not item.reply and not (
                    old.item is None and node.item is not None)):
            table[item.subject] = node
    gone: set[int] = set()  # ids of top-level nodes merged into another
    replaced: dict[int, Node] = {}  # id of a top-level node -> the dummy now in its place
    for node in list(root.children):  # 5C
        item = node.subject_item()
        if item is None or not item.subject:
            continue
        held = table[item.subject]
        if held is node or node.parent is not root:  # kept, or already under a dummy
            continue
        gone.add(id(node))
        if held.item is None and node.item is None:
            for child in node.children:
                child.parent = held
            held.children += node.children
            node.children = []
        elif held.item is None or (item.reply and not held.item.reply):
            node.parent = held
            held.children.append(node)
        else:
            dummy = Node(parent=root)
            replaced[id(held)] = dummy
            for child in (held, node):
                child.parent = dummy
                dummy.children.append(child)
            table[item.subject] = dummy
    root.children = [replaced.get(id(n), n) for n in root.children if id(n) not in gone]


def format_threads(threads: Sequence[Node]) -> bytes:
    """The ``thread-list`` text of RFC 5256 §4: a chain of single children is written flat
    ("(1 2 3)"), two or more children each as a nested list ("(1 (2)(3 4))"); dummies
    write only their children."""
    out: list[bytes] = []
    # Work items: a node to open, or a literal closing parenthesis.
    stack: list[Optional[Node]] = []
    for thread in reversed(threads):
        stack.append(thread)
    while stack:
        node = stack.pop()
        if node is None:
            out.append(b")")
            continue
        if not node.children and node.item is not None:  # most threads: one message
            out.append(b"(%d)" % node.item.number)
            continue
        members = []
        while True:
            if node.item is not None:
                members.append(b"%d" % node.item.number)
            if len(node.children) != 1:
                break
            node = node.children[0]
        out.append(b"(" + b" ".join(members))
        stack.append(None)
        if node.children:
            if members:
                out.append(b" ")
            for child in reversed(node.children):
                stack.append(child)
    return b"".join(out)
