# -*- test-case-name: tests.test_web_http -*-
"""One twisted.web Site per web listener (DESIGN.md §12): the web port and the admin port
each get the account pages (web/account.py) with their own sessions, rate limit and, on the
admin port, /healthz."""

from __future__ import annotations

from typing import Any, Callable, Collection, Mapping, Optional

from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http, server
from zope.interface import implementer

from mailgosend.auth.bans import ListenerBans
from mailgosend.auth.passkeys import PasskeyStep
from mailgosend.db.runner import DatabaseRunner
from mailgosend.listeners import IDrainable
from mailgosend.web.account import AccountPages
from mailgosend.web.admin_guard import AdminPanel, AdminRouter
from mailgosend.web.assets import asset_dir
from mailgosend.web.autoconfig import AutoconfigPages, ClientSetup
from mailgosend.web.health import HealthResource
from mailgosend.web.login import LoginFlow, SecondStep
from mailgosend.web.passkeys import PasskeyPages
from mailgosend.web.ratelimit import RateLimiter
from mailgosend.web.request import WebRequest
from mailgosend.web.sections import ExactPaths, PathPrefixes, Sections
from mailgosend.web.sessions import SessionManager
from mailgosend.web.settings_pages import SettingsPages
from mailgosend.web.setup import SetupPages, SetupToken
from mailgosend.web.settings import WebSettings
from mailgosend.web.static import StaticFiles
from mailgosend.web.templates import make_environment
from mailgosend.web.webmail import WebmailPages
from mailgosend.web.webmail_calendar import CalendarPages


# Paths whose query string is what a user typed (compose autocomplete: names, addresses):
# logged without it.
PRIVATE_QUERIES = (b"/mail/api/suggest",)


def access_log_line(timestamp: str, request: Any) -> str:
    """The combined log format, with the client behind a trusted proxy (the address bans
    and rate limits use), not the proxy's own."""
    line: str = http.combinedLogFormatter(timestamp, request)
    uri, path = getattr(request, "uri", None), getattr(request, "path", None)
    if isinstance(uri, bytes) and isinstance(path, bytes) and b"?" in uri and \
            path.startswith(PRIVATE_QUERIES):
        line = line.replace(f" {http._escape(uri)} ",  # type: ignore[attr-defined]
                            f" {http._escape(path)}?- ", 1)  # type: ignore[attr-defined]
    client = getattr(request, "origin", None)
    if client is None or not line.startswith('"'):
        return line
    return f'"{client.ip}"' + line[line.index('"', 1) + 1:]


class WebChannel(http.HTTPChannel):
    """HTTP/1.1 with keep-alive, known to its Site so shutdown can close it (IDrainable)."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self.factory.channels.add(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.channels.discard(self)
        super().connectionLost(reason)

    def server_shutting_down(self) -> None:
        """Close an idle keep-alive connection now; a busy one after its response; a
        response that never ends by itself (a live tail's or JMAP's event stream) is ended
        now, and one that starts from now on ends at once (``shutting_down``)."""
        self.factory.shutting_down = True
        for request in list(self.requests):
            end_stream = getattr(request, "end_stream", None)
            if end_stream is not None:
                end_stream()
        if self.requests:
            self.persistent = False
        elif self.transport is not None:
            self.transport.loseConnection()


@implementer(IDrainable)
class WebSite(server.Site):
    """A Site whose requests are WebRequests; what they check comes from here."""

    requestFactory = WebRequest
    protocol = WebChannel  # type: ignore[assignment]
    displayTracebacks = False
    noisy = False

    def __init__(self, resource: Any, settings: WebSettings, limiter: RateLimiter,
                 bans: ListenerBans, clock: Any,
                 upload_prefixes: tuple[bytes, ...] = (),
                 body_limits: tuple[tuple[bytes, int], ...] = (),
                 limiters: tuple[tuple[bytes, RateLimiter], ...] = (),
                 unmetered_prefixes: tuple[bytes, ...] = ()) -> None:
        super().__init__(resource, reactor=clock, logFormatter=access_log_line)
        # Paths outside the per-address rate limit (DAV: its logins are metered instead).
        self.unmetered_prefixes = unmetered_prefixes
        # Paths whose bodies may reach MAX_MESSAGE_SIZE (uploads); all others are forms.
        self.upload_prefixes = upload_prefixes
        # Paths with their own body limit, whose resource answers a body over it itself.
        self.body_limits = body_limits
        # Paths with their own rate limit for changes (POST), instead of ``limiter``.
        self.limiters = limiters
        self.web_settings = settings
        self.web_limiter = limiter
        self.web_bans = bans
        self.pages: Optional[AccountPages] = None
        self.setup: Optional[SetupPages] = None
        self.admin_panel: Optional[AdminPanel] = None
        self.channels: set[WebChannel] = set()
        # The resources build_site mounted by first path segment (b"jmap", b"admin", ...).
        self.mounted: dict[bytes, Any] = {}
        # Set at shutdown: a long response starting now (EventSource) ends at once.
        self.shutting_down = False

    def open_connections(self) -> Collection[WebChannel]:
        return set(self.channels)

    def limiter_for(self, path: bytes) -> RateLimiter:
        for prefix, limiter in self.limiters:
            if path.startswith(prefix):
                return limiter
        return self.web_limiter

    def apply_config(self, config: Any) -> None:
        """WEB_RATE_PER_MIN / ADMIN_RATE_PER_MIN saved on the settings page apply at once."""
        self.web_limiter.set_rate(config[f"{self.web_settings.kind.upper()}_RATE_PER_MIN"])
        if self.admin_panel is not None:
            self.admin_panel.config = config


def build_site(*, settings: WebSettings, runner: DatabaseRunner, portal: Any, security: Any,
               bans: ListenerBans, clock: Any, static: Optional[StaticFiles] = None,
               templates: Any = None, steps: tuple[SecondStep, ...] = (),
               upload_prefixes: tuple[bytes, ...] = (),
               sections: Optional[Mapping[str, Callable[[AccountPages], Any]]] = None,
               admin: Any = None, workers: Any = None, endpoints: tuple[Any, ...] = (),
               jmap: Optional[Callable[[SessionManager], Any]] = None,
               admin_groups: Optional[Callable[[AdminPanel], Mapping[bytes, Any]]] = None,
               config: Any = None, components: Optional[Mapping[str, Any]] = None,
               client_setup: Optional[ClientSetup] = None, mail: Any = None,
               dav: Any = None) -> WebSite:
    """The Site of one web listener (``settings.kind``: "web" or "admin"); ``sections``
    makes the pages mounted under /account/<name>/ from the AccountPages.  With ``admin``
    (AccountAdmin) and ``workers``: the settings page on the web port, the
    first-administrator setup on the admin port (``site.setup``) and the admin panel
    (``site.admin_panel``): ``admin_groups(panel)`` gives the page groups' resources by
    the second segment of ``/admin/<name>/...`` (``b""``: the dashboard, for ``/admin``)
    and, under keys starting with ``/`` (``b"/metrics"``), resources at the top level.
    With ``client_setup`` too, the web port serves client autoconfiguration and MTA-STS
    (web/autoconfig.py).  ``jmap`` (web port): makes the JMAP endpoint (jmap/wiring.py)
    from the port's sessions; it is mounted at /jmap/ and /.well-known/jmap; with it and
    ``mail`` (MailService) the webmail page at /mail (web/webmail.py), the endpoint's client.
    With ``dav`` (dav/resource.py DavResource), CalDAV/CardDAV under /caldav/ and /carddav/,
    /.well-known/caldav|carddav and PROPFIND on / (dav/resource.py DavRoot); with ``mail``
    too, the webmail's calendar under /mail/calendar (web/webmail_calendar.py)."""
    static = static if static is not None else StaticFiles(asset_dir("static"))
    templates = templates if templates is not None else make_environment(static)
    pages = AccountPages(
        kind=settings.kind, runner=runner, sessions=SessionManager(runner, settings, clock),
        flow=LoginFlow(portal, security, settings.kind, steps), static=static,
        templates=templates,
        health=HealthResource(runner) if settings.kind == "admin" else None)
    for name, make in (sections or {}).items():
        pages.sections[name] = make(pages)
    for step in steps:
        if isinstance(step, PasskeyStep):
            pages.passkeys = PasskeyPages(pages=pages, runner=runner, step=step, clock=clock)
    mounted: dict[bytes, Any] = {}
    setup = None
    panel = None
    if admin is not None and settings.kind == "web":
        mounted[b"settings"] = SettingsPages(pages=pages, admin=admin, portal=portal,
                                             workers=workers, endpoints=endpoints,
                                             client_setup=client_setup).resource()
        if client_setup is not None:
            public = AutoconfigPages(setup=client_setup, runner=runner,
                                     serves_domain=admin.serves_domain, clock=clock,
                                     pages=pages).resource()
            for segment in (b".well-known", b"mail", b"autodiscover", b"Autodiscover"):
                mounted[segment] = public
    elif admin is not None:
        setup = SetupPages(pages=pages, admin=admin, workers=workers, token=SetupToken())
        mounted[b"setup"] = setup.resource()
        panel = AdminPanel(pages=pages, admin=admin, runner=runner, clock=clock,
                           workers=workers, config=config, components=components)
        pages.flow.admin_rights = panel.rights
        groups = dict(admin_groups(panel)) if admin_groups is not None else {}
        for key in [k for k in groups if k.startswith(b"/")]:
            mounted[key[1:]] = groups.pop(key)
        mounted[b"admin"] = AdminRouter(groups.pop(b"", None) or pages.resource(), groups)
    body_limits: tuple[tuple[bytes, int], ...] = ()
    limiters: tuple[tuple[bytes, RateLimiter], ...] = ()
    if jmap is not None and settings.kind == "web":
        endpoint = jmap(pages.sessions)
        mounted[b"jmap"] = endpoint.resource
        mounted[b".well-known"] = ExactPaths(mounted.get(b".well-known", pages.resource()),
                                             {b"/.well-known/jmap": endpoint.well_known})
        body_limits = endpoint.body_limits
        # The webmail's own JSON (/mail/api/: contacts, autocomplete) is an app's API too:
        # counted with JMAP's calls (JMAP_RATE_PER_MIN), not with sign-in attempts.
        app_limiter = RateLimiter(endpoint.rate_per_min, clock)
        limiters = ((b"/jmap/", app_limiter), (b"/mail/api/", app_limiter))
        if mail is not None:
            webmail = WebmailPages(pages=pages, mail=mail).resource()
            if dav is not None:
                calendar = CalendarPages(pages=pages, mail=mail, dav=dav.service).resource()
                # The contacts page and its JSON (issue #15): the CardDAV data.
                from mailgosend.mail.contacts import ContactsService
                from mailgosend.web import webmail_contacts
                contacts = webmail_contacts.WebmailContacts(
                    pages=pages, contacts=ContactsService(dav.service, workers), mail=mail
                ).resource()
                prefixes = {p: contacts for p in webmail_contacts.PREFIXES}
                prefixes.update({b"/mail/calendar": calendar, b"/mail/api/calendar": calendar})
                webmail = PathPrefixes(webmail, prefixes)
                upload_prefixes = upload_prefixes + webmail_contacts.UPLOAD_PREFIXES
            # Thunderbird's autoconfig URL (web/autoconfig.py) lives under /mail/ too.
            autoconfig = mounted.get(b"mail")
            mounted[b"mail"] = webmail if autoconfig is None else ExactPaths(
                webmail, {b"/mail/config-v1.1.xml": autoconfig})
    unmetered: tuple[bytes, ...] = ()
    if dav is not None:
        mounted[b"caldav"] = mounted[b"carddav"] = dav
        dav_paths = (b"/caldav/", b"/carddav/")
        upload_prefixes = upload_prefixes + dav_paths
        unmetered = dav_paths
    root = Sections(pages.resource(), mounted) if mounted else pages.resource()
    if dav is not None:
        from mailgosend.dav.resource import DavRoot
        root = DavRoot(root, dav)
    site = WebSite(root, settings, RateLimiter(settings.rate_per_min, clock),
                   bans, clock, upload_prefixes, body_limits, limiters, unmetered)
    site.pages = pages
    site.setup = setup
    site.mounted = mounted
    site.admin_panel = panel
    return site
