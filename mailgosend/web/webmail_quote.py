# -*- test-case-name: tests.test_webmail_compose -*-
"""The body of a message as HTML to quote in a reply or an inline forward (issue 13 item 3).

The compose editor (static/js/webmail/compose.js) lives in the page's own origin, whose CSP
has no 'unsafe-inline': even parsing hostile HTML there (DOMPurify's inert DOMParser
document) makes Chromium report every style and event attribute it meets.  So the page
never gets the raw HTML to quote: it gets this, cleaned on the server by nh3 down to text
structure (no style element or attribute, no image or media that would fetch, links with
http, https or mailto only), and DOMPurify still checks it in the page.
"""

from __future__ import annotations

import html

import nh3

from mailgosend.jmap import parts as jparts
from mailgosend.store.mimeinfo import MessageInfo

__all__ = ["quote_html", "QUOTE_TAGS"]

QUOTE_TAGS = {"a", "b", "blockquote", "br", "code", "dd", "div", "dl", "dt", "em", "h1", "h2",
              "h3", "h4", "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "s", "small", "span",
              "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
              "u", "ul"}


def _text_html(text: str) -> str:
    lines = text.replace("\r\n", "\n").split("\n")
    return "".join(f"<div>{html.escape(line)}</div>" if line else "<div><br></div>"
                   for line in lines)


def quote_html(info: MessageInfo, raw: bytes) -> str:
    """The message's htmlBody parts (RFC 8621 §4.1.4 classification) cleaned for quoting;
    text parts as escaped lines."""
    _text_parts, html_parts, _attachments = jparts.classify(info.root)
    pieces: list[str] = []
    for part in html_parts:
        kind = part.content_type.lower()
        if kind not in ("text/html", "text/plain") and part.type != "text":
            continue
        data, _ = jparts.decode(part, raw)
        text, _ = jparts.text_of(part, data)
        if kind == "text/html":
            pieces.append(nh3.clean(text, tags=QUOTE_TAGS, attributes={"a": {"href"},
                                                                 "div": {"data-signature",
                                                                         "data-quote"}},
                                    url_schemes={"http", "https", "mailto"},
                                    clean_content_tags={"script", "style"},
                                    strip_comments=True, link_rel="noopener noreferrer"))
        else:
            pieces.append(_text_html(text))
    return "".join(pieces)
