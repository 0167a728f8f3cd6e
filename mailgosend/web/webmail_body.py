# -*- test-case-name: tests.test_webmail_body -*-
"""Reading a message's body safely in the webmail (issue 13 item 2; the mox design).

Two layers, so that one mistake in either is not enough:

1. ``sanitise_html``: nh3 (ammonia) keeps a fixed list of harmless tags and attributes (no
   script, no event handler, no form, no ``<base>``, ``<meta>``, ``<svg>`` or ``<math>``);
   links get ``target=_blank rel="noopener noreferrer"``; CSS in ``<style>`` and in
   ``style=`` goes through a real CSS parser (tinycss2), not a regex, and anything that
   loads something (``url()``, ``image-set()``, ``@import``, ``@font-face``, escaped
   spellings of these: nextcloud/mail#5189) is removed unless the reader allowed remote
   content for this message; ``cid:`` images become ``data:`` URLs of the message's own
   parts (the frame has an opaque origin, so our SameSite cookie is not sent from it).
2. The body is served from its own URL (web/webmail.py) into an ``<iframe sandbox>``
   without ``allow-scripts`` and ``allow-same-origin``, with ``body_csp``: a ``sandbox``
   CSP whose ``default-src 'none'`` stops every fetch the sanitiser might have missed.

Plain-text parts are escaped, with http(s) and mailto links made clickable.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

import nh3
import tinycss2
from tinycss2 import ast as css_ast

from mailgosend.jmap import parts as jparts
from mailgosend.store.mimeinfo import MessageInfo, Part

__all__ = ["Findings", "Rendered", "body_csp", "render_body", "sanitise_css", "sanitise_html",
           "text_to_html"]

TAGS = (set(nh3.ALLOWED_TAGS) - {"area", "map"}) | {"style", "font", "tfoot", "big",
                                                   "address", "section", "main"}
_GENERIC = {"style", "dir", "lang", "title", "align", "valign", "width", "height",
            "bgcolor", "class", "id"}
ATTRIBUTES: dict[str, set[str]] = {
    "*": _GENERIC,
    "a": {"href", "hreflang", "name"},
    "img": {"src", "alt", "border", "hspace", "vspace"},
    "font": {"color", "face", "size"},
    "table": {"border", "cellpadding", "cellspacing", "summary", "background"},
    "td": {"colspan", "rowspan", "nowrap", "background"},
    "th": {"colspan", "rowspan", "nowrap", "scope", "background"},
    "tr": {"background"}, "tbody": set(), "thead": set(), "tfoot": set(),
    "col": {"span"}, "colgroup": {"span"}, "ol": {"start", "type"}, "ul": {"type"},
    "li": {"value"},
    "time": {"datetime"}, "hr": {"size", "noshade"},
}
LINK_SCHEMES = {"http", "https", "mailto"}
# Functions and at-rules by which CSS fetches something (CSS Images 4, Fonts 4, Cascade 5).
LOADING_FUNCTIONS = {"url", "src", "image", "image-set", "-webkit-image-set", "cross-fade",
                     "-webkit-cross-fade", "element", "-moz-element", "expression",
                     "paint"}
LOADING_PROPERTIES = {"behavior", "-moz-binding", "-ms-behavior"}
KEPT_AT_RULES = {"media", "supports", "keyframes", "-webkit-keyframes", "container",
                 "layer"}
_DATA_IMAGE = re.compile(r"data:image/(?:png|gif|jpe?g|webp|bmp);base64,[A-Za-z0-9+/=\s]*\Z",
                         re.IGNORECASE)
_LINK_SCHEME = re.compile(r"(?:https?|mailto):", re.IGNORECASE)
_REMOTE = re.compile(r"\s*(?:https?:)?//", re.IGNORECASE)
_LINK = re.compile(r"\b((?:https?://|mailto:)[^\s<>\"']+[^\s<>\"'.,;:!?)\]}])",
                   re.IGNORECASE)
# Inline images bigger than this stay out of the page (a download instead).
MAX_INLINE_IMAGE = 5 * 1024 * 1024
DEFAULT_STYLE = ("html{color-scheme:light;background:#fff;color:#111}"
                 "body{margin:0;padding:12px;font:14px/1.5 system-ui,sans-serif;"
                 "overflow-wrap:anywhere}img{max-width:100%;height:auto}"
                 "pre.mg-text{white-space:pre-wrap;font:13px/1.5 ui-monospace,monospace;"
                 "margin:0}")


@dataclass
class Findings:
    """What the sanitiser removed that the reader may ask for: remote URLs it saw."""

    remote: int = 0


# --- CSS ------------------------------------------------------------------------------

def _loads(tokens: list[css_ast.Node] | None) -> bool:
    """Whether a component value list fetches anything (url tokens, loading functions,
    at any depth)."""
    for token in tokens or ():
        kind = token.type
        if kind == "url":
            return True
        if kind == "error" and getattr(token, "kind", "") == "bad-url":
            return True
        if kind == "function":
            if token.lower_name in LOADING_FUNCTIONS:  # type: ignore[union-attr]
                return True
            if _loads(token.arguments):  # type: ignore[union-attr]
                return True
        if kind in ("() block", "[] block", "{} block"):
            if _loads(token.content):  # type: ignore[union-attr]
                return True
    return False


def _remote_value(tokens: list[css_ast.Node] | None) -> bool:
    """With remote content allowed: whether every URL is http(s) (data: too)."""
    for token in tokens or ():
        kind = token.type
        if kind == "url":
            if not re.match(r"\s*(https?:|data:image/)", token.value, re.I):  # type: ignore
                return False
        elif kind == "function":
            name = token.lower_name  # type: ignore[union-attr]
            args = token.arguments  # type: ignore[union-attr]
            if name == "url":
                strings = [a for a in args if a.type == "string"]
                if not strings or not re.match(r"\s*(https?:|data:image/)",
                                               strings[0].value, re.I):
                    return False
            elif name in ("expression", "element", "-moz-element", "paint", "src"):
                return False
            elif not _remote_value(args):
                return False
        elif kind == "error":
            return False
        elif kind in ("() block", "[] block", "{} block"):
            if not _remote_value(token.content):  # type: ignore[union-attr]
                return False
    return True


def _declarations(tokens: list[css_ast.Node], remote: bool, found: Findings) -> str:
    kept: list[str] = []
    for decl in tinycss2.parse_blocks_contents(tokens, skip_comments=True,
                                               skip_whitespace=True):
        if decl.type != "declaration":
            continue  # nested rules and errors: dropped
        if decl.lower_name in LOADING_PROPERTIES:
            continue
        if _loads(decl.value):
            found.remote += 1
            if not (remote and _remote_value(decl.value)):
                continue
        value = tinycss2.serialize(decl.value).strip()
        kept.append(f"{decl.name}:{value}{' !important' if decl.important else ''}")
    return ";".join(kept)


def _rules(rules: list[css_ast.Node], remote: bool, found: Findings) -> str:
    out: list[str] = []
    for rule in rules:
        if rule.type == "qualified-rule":
            if _loads(rule.prelude):
                continue
            body = _declarations(rule.content, remote, found)
            out.append(f"{tinycss2.serialize(rule.prelude).strip()}{{{body}}}")
        elif rule.type == "at-rule":
            name = rule.lower_at_keyword
            if name in ("import", "font-face"):
                found.remote += 1  # fetches by definition; never kept (style-src inline)
                continue
            if name not in KEPT_AT_RULES or rule.content is None or _loads(rule.prelude):
                continue
            inner = tinycss2.parse_rule_list(rule.content, skip_comments=True,
                                             skip_whitespace=True)
            prelude = tinycss2.serialize(rule.prelude).strip()
            out.append(f"@{name} {prelude}{{{_rules(inner, remote, found)}}}")
    return "".join(out)


def sanitise_css(text: str, *, remote: bool = False, found: Optional[Findings] = None
                 ) -> str:
    """A stylesheet re-serialised from its parse with everything that loads removed (kept
    when ``remote`` and only http(s)/data images); ``<`` escaped so the text can never
    close its ``<style>`` element."""
    found = found if found is not None else Findings()
    rules = tinycss2.parse_stylesheet(text, skip_comments=True, skip_whitespace=True)
    return _rules(rules, remote, found).replace("<", "\\3c ")


def sanitise_style_attribute(text: str, *, remote: bool = False,
                             found: Optional[Findings] = None) -> str:
    found = found if found is not None else Findings()
    tokens = tinycss2.parse_component_value_list(text, skip_comments=True)
    return _declarations(tokens, remote, found)


# --- HTML -----------------------------------------------------------------------------

def sanitise_html(text: str, *, remote: bool = False,
                  cid: Optional[Callable[[str], Optional[str]]] = None,
                  found: Optional[Findings] = None) -> str:
    """The HTML of one part made harmless (see the module docstring).  ``cid`` maps a
    Content-ID to a ``data:`` URL (None: not in the message)."""
    found = found if found is not None else Findings()

    def attribute(tag: str, name: str, value: str) -> Optional[str]:
        if name == "style":
            return sanitise_style_attribute(value, remote=remote, found=found) or None
        if name == "background":
            if _REMOTE.match(value):
                found.remote += 1
                return value if remote else None
            return None
        if tag == "img" and name == "src":
            stripped = value.strip()
            if stripped.lower().startswith("cid:"):
                return (cid(stripped[4:]) if cid is not None else None) or None
            if _DATA_IMAGE.match(stripped):
                return stripped
            if _REMOTE.match(stripped):
                found.remote += 1
                return stripped if remote else None
            return None
        if name == "href":
            # Only web and mail links (nh3's schemes also let data: through for images).
            stripped = re.sub(r"[\x00-\x20]", "", value)
            return value.strip() if _LINK_SCHEME.match(stripped) else None
        return value

    cleaned: str = nh3.clean(
        text, tags=TAGS, clean_content_tags={"script", "title", "noscript", "template",
                                             "textarea", "xmp", "noembed", "noframes",
                                             "iframe", "object", "svg", "math"},
        attributes=ATTRIBUTES, attribute_filter=attribute, strip_comments=True,
        link_rel="noopener noreferrer", url_schemes=LINK_SCHEMES | {"data", "cid"},
        set_tag_attribute_values={"a": {"target": "_blank"}})
    return _STYLE_ELEMENT.sub(lambda m: "<style>" + sanitise_css(
        html.unescape(m.group(1)) if "&" in m.group(1) else m.group(1),
        remote=remote, found=found) + "</style>", cleaned)


# After nh3 the document is serialised by html5ever: a <style> element's text runs to the
# first "</style", so this pattern finds exactly the elements it wrote.
_STYLE_ELEMENT = re.compile(r"<style>(.*?)</style>", re.DOTALL | re.IGNORECASE)


def text_to_html(text: str) -> str:
    """Plain text escaped, http(s)/mailto links clickable in a new tab."""
    pieces: list[str] = []
    last = 0
    for match in _LINK.finditer(text):
        pieces.append(html.escape(text[last:match.start()]))
        url = match.group(1)
        pieces.append(f'<a href="{html.escape(url)}" target="_blank" '
                      f'rel="noopener noreferrer">{html.escape(url)}</a>')
        last = match.end()
    pieces.append(html.escape(text[last:]))
    return '<pre class="mg-text">' + "".join(pieces) + "</pre>"


# --- a whole body ---------------------------------------------------------------------

@dataclass
class Rendered:
    """The body document, and what the reader may still allow."""

    document: bytes
    remote: int = 0
    parts: list[str] = field(default_factory=list)


def _cid_map(info: MessageInfo, raw: bytes) -> Callable[[str], Optional[str]]:
    images: dict[str, Part] = {}
    for leaf in jparts.leaves(info.root):
        if leaf.id and leaf.type == "image":
            images[leaf.id.strip().strip("<>").strip().lower()] = leaf
    cache: dict[str, Optional[str]] = {}

    def lookup(content_id: str) -> Optional[str]:
        key = content_id.strip().strip("<>").strip().lower()
        if key not in cache:
            part = images.get(key)
            cache[key] = None
            if part is not None:
                data, _ = jparts.decode(part, raw)
                kind = part.content_type.lower()
                if len(data) <= MAX_INLINE_IMAGE and re.fullmatch(
                        r"image/(png|gif|jpeg|jpg|webp|bmp)", kind):
                    cache[key] = (f"data:{kind};base64,"
                                  + base64.b64encode(data).decode("ascii"))
        return cache[key]
    return lookup


def render_body(info: MessageInfo, raw: bytes, *, remote: bool = False,
                prefer_text: bool = False, part_id: Optional[str] = None) -> Rendered:
    """The message's body as one HTML document: the htmlBody parts of RFC 8621's algorithm
    (jmap/parts.py ``classify``), or the textBody ones with ``prefer_text``, or one part."""
    if part_id is not None:
        one = jparts.find(info, part_id)
        chosen = [one] if one is not None else []
    else:
        text_parts, html_parts, _attachments = jparts.classify(info.root)
        chosen = text_parts if prefer_text else html_parts
    found = Findings()
    cid = _cid_map(info, raw)
    pieces: list[str] = []
    for part in chosen:
        kind = part.content_type.lower()
        if kind == "text/html":
            data, _ = jparts.decode(part, raw)
            text, _ = jparts.text_of(part, data)
            pieces.append(sanitise_html(text, remote=remote, cid=cid, found=found))
        elif part.type == "text":
            data, _ = jparts.decode(part, raw)
            text, _ = jparts.text_of(part, data)
            pieces.append(text_to_html(text))
        elif part.type == "image":
            url = cid(part.id or "") if part.id else None
            if url is None:
                data, _ = jparts.decode(part, raw)
                if len(data) <= MAX_INLINE_IMAGE and re.fullmatch(
                        r"image/(png|gif|jpeg|webp|bmp)", kind):
                    url = f"data:{kind};base64," + base64.b64encode(data).decode("ascii")
            if url is not None:
                pieces.append(f'<p><img alt="" src="{html.escape(url)}"></p>')
    body = "\n".join(pieces) or '<p class="m-empty">(This message has no text.)</p>'
    document = ("<!doctype html><html><head><meta charset=\"utf-8\">"
                f"<style>{DEFAULT_STYLE}</style></head><body>{body}</body></html>")
    return Rendered(document.encode("utf-8"), found.remote,
                    [p.number for p in chosen])


def body_csp(*, remote: bool) -> str:
    """The body document's CSP: a sandbox (no script, an opaque origin; links may open a new
    tab outside the sandbox) and no fetch at all but data: images and inline styles, unless
    the reader allowed remote content for this response."""
    images = "data: http: https:" if remote else "data:"
    fonts = "; font-src data: http: https:" if remote else ""
    return ("sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "
            f"img-src {images}; style-src 'unsafe-inline'{fonts}; "
            "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
