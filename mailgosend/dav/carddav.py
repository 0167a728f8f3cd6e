# -*- test-case-name: tests.test_dav_carddav -*-
"""What CardDAV (RFC 6352) adds to the WebDAV core: address-book properties and the
REPORTs addressbook-query (text-match over the user's decrypted cards) and
addressbook-multiget."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Optional

from mailgosend.dav import vcard
from mailgosend.dav import webdav as core
from mailgosend.dav import xmlutil as X
from mailgosend.dav.xmlutil import CARDDAV, DAV, q
from mailgosend.mail.dav import ObjectFacts
from mailgosend.store import dav as store

__all__ = ["CardDAV", "card_matches", "cards_matching"]

DATA = q(CARDDAV, "address-data")
# Cards tested per worker call: one thread hop per batch, and the reactor runs between.
_BATCH = 200


def card_matches(data: bytes, filters: list[ET.Element], allof: bool) -> bool:
    """RFC 6352 §10.5: prop-filters (anyof by default) with text-matches (each prop-filter's
    own test, anyof by default) and is-not-defined."""
    results = []
    for prop in filters:
        values = vcard.property_values(data, prop.get("name", ""))
        if prop.find(q(CARDDAV, "is-not-defined")) is not None:
            results.append(not values)
            continue
        matches = prop.findall(q(CARDDAV, "text-match"))
        if not matches:
            results.append(bool(values))
            continue
        outcomes = []
        for match in matches:
            hit = any(vcard.text_match(v, match.text or "", match.get("match-type", "contains"),
                                       match.get("collation", "i;unicode-casemap"))
                      for v in values)
            outcomes.append(hit != (match.get("negate-condition") == "yes"))
        results.append(all(outcomes) if prop.get("test") == "allof" else any(outcomes))
    if not results:
        return True
    return all(results) if allof else any(results)


def cards_matching(cards: list[bytes], filters: list[ET.Element], allof: bool) -> list[bool]:
    """``card_matches`` for a batch of cards: one worker-thread hop per batch."""
    return [card_matches(data, filters, allof) for data in cards]


class CardDAV:
    kind = "addressbook"
    resource_type = q(CARDDAV, "addressbook")
    content_type = b"text/vcard; charset=utf-8"

    def collection_props(self, ctx: core.Context, collection: store.Collection
                         ) -> dict[str, ET.Element]:
        data = X.el(q(CARDDAV, "supported-address-data"))
        for version in vcard.VERSIONS:
            ET.SubElement(data, q(CARDDAV, "address-data-type"),
                          {"content-type": "text/vcard", "version": version})
        return {
            q(CARDDAV, "supported-address-data"): data,
            q(CARDDAV, "max-resource-size"): X.el(q(CARDDAV, "max-resource-size"),
                                                  str(core.MAX_OBJECT_SIZE)),
            q(DAV, "supported-report-set"): core.report_set([
                (CARDDAV, "addressbook-multiget"), (CARDDAV, "addressbook-query"),
                (DAV, "sync-collection")]),
        }

    def validate(self, data: bytes, collection: store.Collection) -> ObjectFacts:
        return vcard.validate(data)

    async def report(self, ctx: core.Context, collection: store.Collection,
                     root: ET.Element) -> Optional[core.Reply]:
        if root.tag == q(CARDDAV, "addressbook-multiget"):
            return await core.multiget(ctx, collection, root, DATA)
        if root.tag == q(CARDDAV, "addressbook-query"):
            return await self._query(ctx, collection, root)
        return None

    async def _query(self, ctx: core.Context, collection: store.Collection,
                     root: ET.Element) -> core.Reply:
        """RFC 6352 §8.6: the cards matching the filter; with CARDDAV:limit (§8.6.1) at
        most that many, and a 507 for the collection when more matched."""
        node = root.find(q(CARDDAV, "filter"))
        filters = node.findall(q(CARDDAV, "prop-filter")) if node is not None else []
        allof = node is not None and node.get("test") == "allof"
        limit = core.read_limit(root, CARDDAV)
        items = await ctx.dav.items(collection)
        matched: list[Any] = []
        truncated = False
        for at in range(0, len(items), _BATCH):
            batch = items[at:at + _BATCH]
            verdicts = await ctx.workers.run(cards_matching,
                                             [item.data or b"" for item in batch],
                                             filters, allof)
            matched += [item for item, keep in zip(batch, verdicts) if keep]
            if limit is not None and len(matched) > limit:
                matched, truncated = matched[:limit], True
                break
        del items
        return core.items_reply(ctx, collection, matched, core.wanted_props(root), DATA,
                                truncated=truncated)
