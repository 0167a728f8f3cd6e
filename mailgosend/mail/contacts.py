# -*- test-case-name: tests.test_webmail_contacts -*-
"""The webmail's contacts over the CardDAV storage (issue #15 item 7).

Every contact is a vCard object of one of the user's address books, read and written through
``UserDav`` (mail/dav.py): the same objects a CardDAV client syncs, sealed with the user's key,
counted in the quota, and each write bumps the book's change counter, so a DAV client sees a
change made in the browser at its next sync-collection (and the page sees a DAV client's
changes at its next read).

``ContactsService`` keeps, per user, the parsed cards of each book (names and addresses,
never photos) with the book's change counter they reflect.  Each read asks the database for
the books' counters (one query); a book whose counter moved is brought up to date with
``changes_since`` (RFC 6578's own mechanism: only the changed cards are opened and parsed),
so the list, the search and compose autocomplete stay exact without parsing 5,000 cards on
every keystroke.  The cache is per process and bounded (least recently used user dropped).

A contact's id for the browser is opaque: base64url of "<book>/<object name>".
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, TypeVar

from mailgosend.mail import contactcards as cards
from mailgosend.mail.contactcards import Contact, ContactError
from mailgosend.mail.dav import DEFAULT_NAMES, DavService, ObjectFacts, UserDav
from mailgosend.store import dav as store

__all__ = ["ContactsService", "UserContacts", "Entry", "ContactNotFound", "ContactError",
           "MAX_IMPORT_CARDS", "fold"]

_T = TypeVar("_T")
KIND = "addressbook"
DEFAULT_BOOK = DEFAULT_NAMES[KIND]
MAX_IMPORT_CARDS = 10_000
IMPORT_BATCH = 500     # cards per transaction
PARSE_CHUNK = 250      # cards per worker job
CACHED_USERS = 200
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,120}$")


class ContactNotFound(LookupError):
    """No such contact of this user (another user's id included: 404, no hint)."""


def fold(text: str) -> str:
    """Case- and accent-insensitive form for matching what a user types."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def make_id(book: str, name: str) -> str:
    return base64.urlsafe_b64encode(f"{book}/{name}".encode()).decode().rstrip("=")


def split_id(contact_id: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(contact_id + "=" * (-len(contact_id) % 4))
        book, slash, name = raw.decode("utf-8").partition("/")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ContactNotFound(contact_id) from None
    if not slash or not book or not name:
        raise ContactNotFound(contact_id)
    return book, name


@dataclass(frozen=True)
class Entry:
    """One card as the list shows it."""

    id: str
    book: str
    name: str      # the object's name in its book (the DAV resource name)
    etag: str
    contact: Contact
    search: str    # folded name, emails and organisation

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "book": self.book, "etag": self.etag,
                **self.contact.as_json()}


def _entry(book: str, name: str, etag: str, contact: Contact) -> Entry:
    words = [contact.name, contact.org] + [e["value"] for e in contact.emails]
    return Entry(make_id(book, name), book, name, etag, contact, fold(" ".join(words)))


def _contact_of(data: bytes) -> Optional[Contact]:
    try:
        return cards.contact_of(cards.parse(data))
    except ContactError:
        return None   # a card a DAV client stored that vobject cannot read: not listed


@dataclass
class _Book:
    modseq: int
    entries: dict[str, Entry]   # by object name


def _entries_of(book: str, items: Sequence[Any]) -> list[Entry]:
    """Parse opened cards (a worker thread: vobject takes about a millisecond a card)."""
    out = []
    for item in items:
        contact = _contact_of(item.data) if item.data is not None else None
        if contact is not None:
            out.append(_entry(book, item.name, item.etag, contact))
    return out


class ContactsService:
    """One per process, beside the DavService it reads through; ``workers`` (WorkerPool)
    parses cards off the reactor thread."""

    def __init__(self, dav: DavService, workers: Any = None) -> None:
        self.dav = dav
        self.workers = workers
        self._books: OrderedDict[int, dict[int, _Book]] = OrderedDict()   # user id -> books

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` in a worker thread (inline without workers)."""
        if self.workers is None:
            return fn(*args)
        return await self.workers.run(fn, *args)  # type: ignore[no-any-return]

    async def parse(self, book: str, items: Sequence[Any]) -> list[Entry]:
        if self.workers is None:
            return _entries_of(book, items)
        out: list[Entry] = []
        for first in range(0, len(items), PARSE_CHUNK):
            out.extend(await self.workers.run(_entries_of, book,
                                              items[first:first + PARSE_CHUNK]))
        return out

    async def open_account(self, email: str) -> "UserContacts":
        user_dav = await self.dav.open_account(email)
        return UserContacts(self, user_dav)

    def _cached(self, user_id: int) -> dict[int, _Book]:
        books = self._books.pop(user_id, None) or {}
        self._books[user_id] = books
        while len(self._books) > CACHED_USERS:
            self._books.popitem(last=False)
        return books


class UserContacts:
    def __init__(self, service: ContactsService, dav: UserDav) -> None:
        self.service = service
        self.dav = dav

    # --- reading ---------------------------------------------------------------------------
    async def books(self) -> list[store.Collection]:
        """The user's address books, the default one first."""
        found = await self.dav.collections(KIND)
        return sorted(found, key=lambda c: (c.name != DEFAULT_BOOK, c.name))

    def display_name(self, collection: store.Collection) -> str:
        xml = self.dav.props(collection).get("{DAV:}displayname", "")
        text = re.sub(r"<[^>]*>", "", xml).strip()
        return text or collection.name

    async def _book(self, collection: store.Collection) -> _Book:
        cached = self.service._cached(self.dav.user.id)
        book = cached.get(collection.id)
        if book is not None and book.modseq == collection.modseq:
            return book
        if book is not None:
            try:
                modseq, changed, removed = await self.dav.changes_since(collection,
                                                                        book.modseq)
            except store.SyncTokenTooOld:
                book = None
            else:
                entries = dict(book.entries)
                for name in removed:
                    entries.pop(name, None)
                fresh = await self.dav.items(collection, [i.name for i in changed])
                for item in fresh:
                    entries.pop(item.name, None)
                for entry in await self.service.parse(collection.name, fresh):
                    entries[entry.name] = entry
                book = _Book(modseq, entries)
        if book is None:
            items = await self.dav.items(collection)
            parsed = await self.service.parse(collection.name, items)
            book = _Book(collection.modseq, {entry.name: entry for entry in parsed})
        cached[collection.id] = book
        return book

    async def entries(self) -> list[Entry]:
        """Every readable contact of every book: default book first, then by name."""
        out: list[Entry] = []
        for collection in await self.books():
            book = await self._book(collection)
            out.extend(sorted(book.entries.values(),
                              key=lambda e: (fold(e.contact.name), e.name)))
        return out

    async def matches(self, query: str, limit: int) -> list[Entry]:
        """Contacts whose name, organisation or an address contains ``query`` (folded),
        those where a word starts with it first."""
        wanted = fold(query.strip())
        if not wanted:
            return []
        found = [e for e in await self.entries() if wanted in e.search]
        found.sort(key=lambda e: (not any(w.startswith(wanted)
                                          for w in re.split(r"[\s@.<>,]+", e.search)),))
        return found[:limit]

    async def _locate(self, contact_id: str) -> tuple[store.Collection, Any]:
        """(book, Item with data) of one of the user's contacts; ContactNotFound else."""
        book_name, name = split_id(contact_id)
        try:
            collection = await self.dav.collection(KIND, book_name)
        except store.CollectionNotFound:
            raise ContactNotFound(contact_id) from None
        items = await self.dav.items(collection, [name])
        if not items or items[0].data is None:
            raise ContactNotFound(contact_id)
        return collection, items[0]

    async def get(self, contact_id: str) -> Entry:
        collection, item = await self._locate(contact_id)
        contact = _contact_of(item.data)
        if contact is None:
            raise ContactError("vcard", "this contact's vCard cannot be read here")
        return _entry(collection.name, item.name, item.etag, contact)

    async def vcard(self, contact_id: Optional[str] = None) -> bytes:
        """One contact's vCard as stored, or every readable one (a .vcf of many)."""
        if contact_id is not None:
            _collection, item = await self._locate(contact_id)
            return bytes(item.data)
        out = []
        for collection in await self.books():
            for item in await self.dav.items(collection):
                if item.data is not None:
                    out.append(item.data.rstrip(b"\r\n") + b"\r\n")
        return b"".join(out)

    async def photo(self, contact_id: str) -> tuple[bytes, str]:
        _collection, item = await self._locate(contact_id)
        found = cards.photo_of(cards.parse(item.data))
        if found is None:
            raise ContactNotFound(contact_id)
        return found

    # --- writing ---------------------------------------------------------------------------
    async def _store(self, collection: store.Collection, name: str, card: Any, *,
                     if_match: Optional[str] = None, if_none_match: Optional[str] = None
                     ) -> Entry:
        data = cards.serialize(card)
        contact = cards.contact_of(card)
        if not contact.uid or len(contact.uid) > 255:
            raise ContactError("uid", "a UID of at most 255 characters is needed")
        etag, _created = await self.dav.put(collection, name, data,
                                            ObjectFacts(uid=contact.uid, component="VCARD"),
                                            if_match=if_match, if_none_match=if_none_match)
        return _entry(collection.name, name, etag, contact)

    async def _target(self, book: Optional[str]) -> store.Collection:
        books = await self.books()
        if not book:
            return books[0]
        for collection in books:
            if collection.name == book:
                return collection
        raise ContactError("book", "no such address book")

    async def create(self, fields: Any, book: Optional[str] = None) -> Entry:
        clean = cards.validate_fields(fields)
        collection = await self._target(book)
        card = cards.apply(cards.new_card(), clean)
        name = cards.contact_of(card).uid.removeprefix("urn:uuid:") + ".vcf"
        return await self._store(collection, name, card, if_none_match="*")

    async def update(self, contact_id: str, fields: Any, etag: Optional[str] = None
                     ) -> Entry:
        """Edit the stored card (unknown properties kept); with ``etag``, only if nobody
        changed it since (PreconditionFailed)."""
        clean = cards.validate_fields(fields)
        collection, item = await self._locate(contact_id)
        card = cards.apply(cards.parse(item.data), clean)
        return await self._store(collection, item.name, card,
                                 if_match=f'"{etag or item.etag}"')

    async def set_photo(self, contact_id: str, data: Optional[bytes]) -> Entry:
        collection, item = await self._locate(contact_id)
        card = cards.set_photo(cards.parse(item.data), data)
        return await self._store(collection, item.name, card, if_match=f'"{item.etag}"')

    async def delete(self, contact_id: str, etag: Optional[str] = None) -> None:
        book_name, name = split_id(contact_id)
        try:
            collection = await self.dav.collection(KIND, book_name)
            await self.dav.delete(collection, name,
                                  if_match=f'"{etag}"' if etag else None)
        except (store.CollectionNotFound, store.ObjectNotFound):
            raise ContactNotFound(contact_id) from None

    async def import_vcf(self, data: bytes, book: Optional[str] = None) -> dict[str, Any]:
        """Every card of a .vcf: a card whose UID is already in the book replaces it, the
        others are added, IMPORT_BATCH per transaction.  A bad file changes nothing; a
        batch refused (quota) is not stored, and the import stops there."""
        collection = await self._target(book)
        prepared = await self.service.run(_prepare_import, data)
        by_uid = {e.contact.uid: e.name
                  for e in (await self._book(collection)).entries.values()}
        existing = set(by_uid.values())
        taken = set(existing)
        writes: dict[str, tuple[str, bytes, ObjectFacts]] = {}   # by UID: the last card wins
        for uid, text in prepared:
            name = by_uid.get(uid) or _object_name(uid)
            if uid not in by_uid and name in taken:   # "x" and "urn:uuid:x"
                name = _object_name("")
            by_uid[uid] = name
            taken.add(name)
            writes[uid] = (name, text, ObjectFacts(uid=uid, component="VCARD"))
        batch = list(writes.values())
        for first in range(0, len(batch), IMPORT_BATCH):
            await self.dav.put_many(collection, batch[first:first + IMPORT_BATCH])
        updated = sum(1 for name, _data, _facts in batch if name in existing)
        return {"added": len(batch) - updated, "updated": updated}


def _prepare_import(data: bytes) -> list[tuple[str, bytes]]:
    """(UID, vCard text) of every card of a .vcf, made storable (a worker thread)."""
    parsed = list(cards.parse_many(data))
    if not parsed:
        raise ContactError("file", "no vCard in the file")
    if len(parsed) > MAX_IMPORT_CARDS:
        raise ContactError("file", f"at most {MAX_IMPORT_CARDS} cards at once")
    out = []
    for index, card in enumerate(parsed):
        card = _imported(card, index)
        try:
            text = cards.serialize(card)
        except Exception as error:   # vobject's validation on output
            raise ContactError(f"file/cards/{index}",
                               f"the card cannot be written ({error})") from None
        out.append((cards.contact_of(card).uid, text))
    return out


def _imported(card: Any, index: int) -> Any:
    where = f"file/cards/{index}"
    version = str(getattr(getattr(card, "version", None), "value", "") or "")
    if version not in ("3.0", "4.0"):
        # vCard 2.1 (old phones): vobject reads it; we store it as 3.0.
        if "version" in card.contents:
            card.version.value = "3.0"
        else:
            card.add("version").value = "3.0"
    uid = str(getattr(getattr(card, "uid", None), "value", "") or "").strip()
    if not uid or len(uid) > 255:
        for line in list(card.contents.get("uid", [])):
            card.remove(line)
        card.add("uid").value = cards.new_card().uid.value
    if not str(getattr(getattr(card, "fn", None), "value", "") or "").strip():
        contact = cards.contact_of(card)
        n = getattr(getattr(card, "n", None), "value", None)
        guess = " ".join(p for p in (getattr(n, "given", ""), getattr(n, "family", ""))
                         if isinstance(p, str) and p) if n is not None else ""
        guess = guess or (contact.emails[0]["value"] if contact.emails else contact.org)
        if not guess:
            raise ContactError(where, "a card has no name (FN), email or organisation")
        for line in list(card.contents.get("fn", [])):
            card.remove(line)
        card.add("fn").value = guess
    return card


def _object_name(uid: str) -> str:
    plain = uid.removeprefix("urn:uuid:")
    if _SAFE_NAME.match(plain):
        return plain + ".vcf"
    return cards.new_card().uid.value.removeprefix("urn:uuid:") + ".vcf"
