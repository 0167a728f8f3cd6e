"""makeService(config) -> MultiService: the only place that wires services
together (DESIGN.md §1).

Start order: database (migrated before the reactor runs) → security caches →
listeners.  Stop order is the reverse, one step at a time: listeners stop
accepting and drain their sessions (SHUTDOWN_GRACE_SECONDS), then the
database runner finishes queued work and closes.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional

from twisted.application import service
from twisted.internet import defer
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized

from mailgosend import __version__
from mailgosend.auth.bans import BanCache
from mailgosend.auth.portal import MailPortal, build_portal
from mailgosend.config import Config, new_file_notice, settings_origin
from mailgosend.config_keys import ACME_MODES, TLS_GROUPS
from mailgosend.counters import Counters
from mailgosend.crypto import KeyRing
from mailgosend.servercontrol import ServerControl
from mailgosend.db.opening import open_database
from mailgosend.db.runner import DatabaseRunner
from mailgosend.errors import StartupError
from mailgosend.events import Events
from mailgosend.mailauth.resolver import install_spf_resolver, make_resolver
from mailgosend.smtp.backend import MailBackend
from mailgosend.spam.bayes import BayesTrainer
from mailgosend.spam.greylist import Greylist, GreylistPolicy
from mailgosend.smtp.factory import SMTPLimits, SMTPServerFactory
from mailgosend.smtp.pipeline.checks import CheckSettings
from mailgosend.smtp.pipeline.delivery import Delivery
from mailgosend.smtp.pipeline.process import ReceivePipeline
from mailgosend.smtp.session import ListenerKind
from mailgosend.store.blobs import BlobStore, make_blob_store
from mailgosend.tls import acme
from mailgosend.tls.context import Clock, ServerTLS, TLSConfigError, build_server_tls
from mailgosend.tls.http01 import http_port_site
from mailgosend.tls.inventory import certificates_in_use
from mailgosend.tls.selfsigned import ensure_self_signed
from mailgosend.listeners import ListenerService
from mailgosend.logring import LogRing
from mailgosend.mail.service import MailService
from mailgosend.imap.factory import build_imap_factory, imap_avatars
from mailgosend.imap.interfaces import IIMAPAccount
from mailgosend.imap.hub import MailboxHub
from mailgosend.maintenance import MaintenanceService
from mailgosend.pgnotify import ChangeRelay
from mailgosend.pop3.factory import POP3Limits, build_pop3_factory
from mailgosend.pop3.maildrop import IPOP3Maildrop, maildrop_factory
from mailgosend.store.security import SecurityStore
from mailgosend.workers import WorkerPool

log = Logger()


class MailgosendService(service.MultiService):
    """The root service.  Children stop one at a time, newest first."""

    def __init__(self, config: Config, observer: Optional[ILogObserver] = None,
                 reactor: Any = None) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.log_observer = observer
        self.setName("mailgosend")
        self.listeners = service.MultiService()
        self.listeners.setName("listeners")
        self.runner: Optional[DatabaseRunner] = None
        self.components: dict[str, Any] = {}

    def setServiceParent(self, parent: Any) -> None:
        # twistd builds the Application around us after makeService; setting
        # our log observer as its component is how a tap plugin chooses the
        # log destination (twisted.application.app.AppLogger.start).
        if (self.log_observer is not None and isinstance(parent, Componentized)
                and parent.getComponent(ILogObserver, None) is None):
            parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)

    def startService(self) -> None:
        super().startService()
        # twistd may start services before the reactor runs; "started" must mean that the
        # reactor is up and its SIGTERM/SIGINT handlers installed (operators and tests wait
        # for this line before they signal us).
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        reactor.callWhenRunning(self._announce)

    def _announce(self) -> None:
        log.info("mailgosend {version} started (config {path}, database {db})",
                 version=__version__, path=self.config.path, db=self.config["DB_DRIVER"])

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        log.info("mailgosend stopping: no new connections, draining sessions")
        self.running = 0
        for child in reversed(list(self)):
            if child.running:
                yield defer.maybeDeferred(child.stopService)
        log.info("mailgosend stopped")

    def apply_config(self, config: Config) -> list[str]:
        """The settings page saved ``config``: hand it to every component that applies
        settings live (config_keys.LIVE_KEYS); the rest wait for the next start.  Returns
        the names of components that failed (they keep their old settings)."""
        self.config = config
        failed = []
        for name, component in list(self.components.items()):
            apply = getattr(component, "apply_config", None)
            if apply is None:
                continue
            try:
                apply(config)
            except Exception as exc:
                failed.append(name)
                log.error("applying new settings to {name} failed: {error}", name=name,
                          error=exc)
        return failed

    def reload(self) -> None:
        """SIGHUP: re-read what can change without a restart (log file, certificates)."""
        for component in self.components.values():
            reload = getattr(component, "reload", None)
            if reload is not None:
                try:
                    reload()
                except Exception as exc:  # keep serving with the old state
                    log.error("reload of {name} failed: {error}", name=type(component).__name__,
                              error=exc)
        log.info("reload done")


@dataclass(frozen=True)
class Core:
    """What the services of one process share, built once in makeService.  The keyring is
    here for the layers below the front ends (mail service, queue, DKIM, greylist, Bayes);
    IMAP and POP3 get the mail service only."""

    runner: DatabaseRunner
    keyring: KeyRing
    blob_store: BlobStore
    workers: WorkerPool
    events: Events
    portal: MailPortal
    bans: BanCache
    security: SecurityStore
    mail: MailService
    counters: Counters


@dataclass(frozen=True)
class Wiring:
    """The core plus what adding listeners needs (configuration, reactor, the root)."""

    config: Config
    reactor: Any
    root: MailgosendService
    core: Core
    spool_dir: str

    def listen(self, name: str, factory: Any, tls: Optional[ServerTLS] = None) -> None:
        listener = self.config.listener(name)
        ListenerService(name, f"{name.upper()}_PORT", f"{name.upper()}_BIND", listener.bind,
                        listener.port, factory, self.reactor, tls=tls,
                        grace_seconds=self.config["SHUTDOWN_GRACE_SECONDS"],
                        origin=settings_origin(self.config),
                        ).setServiceParent(self.root.listeners)

    def tls_for(self, group: str) -> Optional[ServerTLS]:
        """One ServerTLS per group (SMTP, IMAP, POP3, WEB), reloaded on SIGHUP."""
        key = f"tls_{group.lower()}"
        if key not in self.root.components:
            now = datetime.datetime.fromtimestamp(self.reactor.seconds(), datetime.timezone.utc)
            self.root.components[key] = _server_tls(self.config, group, now, self.reactor)
        return self.root.components[key]  # type: ignore[no-any-return]


def makeService(config: Config, *, reactor: Any = None,
                observer: Optional[ILogObserver] = None, clock: Any = None) -> MailgosendService:
    """Build every service from the configuration; nothing listens until started.

    ``clock`` (default: the reactor) times certificate renewal, so tests can move time on."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    root = MailgosendService(config, observer, reactor)
    if config.created:
        log.warn("{notice}", notice=new_file_notice(config))
    for warning in config.warnings:
        log.warn("configuration: {warning}", warning=warning)
    if config.appended:
        log.info("configuration: appended missing keys to {path}: {keys}",
                 path=config.path, keys=", ".join(config.appended))

    keyring = KeyRing(config["ENCRYPTION_KEY"], config["ENCRYPTION_KEYS_OLD"])
    engine = open_database(config, keyring)
    runner = DatabaseRunner(engine, reactor, readers=config["DB_POOL_SIZE"])
    runner.setName("database")
    runner.setServiceParent(root)
    root.runner = runner

    workers = WorkerPool(reactor, size=2)
    workers.setServiceParent(root)
    from mailgosend.delivery.worker import node_name

    # After the runner, so it stops (and writes its last buckets) before the database.
    counters = Counters(runner, reactor, node_name(config))
    counters.setServiceParent(root)
    runner.latency_observer = counters.observe_db
    security = SecurityStore(runner, config, clock=reactor)
    security.counters = counters
    bans = BanCache(security, clock=reactor, scope=config["BAN_SCOPE"])
    bans.setServiceParent(root)
    portal = build_portal(runner, security, bans, workers, config)
    spool_dir = os.path.join(config["DATA_DIR"], "spool")
    os.makedirs(spool_dir, mode=0o700, exist_ok=True)
    blob_store = make_blob_store(config["STORAGE_BACKEND"], config["STORAGE_PATH"], spool_dir,
                                 clock=reactor.seconds)
    MaintenanceService(runner, blob_store, reactor).setServiceParent(root)
    events = Events()
    if engine.dialect.name == "postgresql":  # the feed crosses nodes (DESIGN.md §9)
        ChangeRelay(engine, events, reactor).setServiceParent(root)
    mail = MailService(runner=runner, keyring=keyring, blob_store=blob_store, workers=workers,
                       clock=reactor, events=events,
                       trainer=BayesTrainer(runner, keyring, blob_store, reactor))
    mail.vacation.interval = datetime.timedelta(days=config["VACATION_REPLY_DAYS"])  # RFC 3834 §2
    from mailgosend.mail.snooze import SnoozeWaker

    # snoozed messages come back at their time, on every node (claims keep it to one)
    SnoozeWaker(mail.snoozer).setServiceParent(root)
    core = Core(runner=runner, keyring=keyring, blob_store=blob_store, workers=workers,
                events=events, portal=portal, bans=bans, security=security, mail=mail,
                counters=counters)
    root.components.update(keyring=keyring, security=security, bans=bans, portal=portal,
                           workers=workers, blob_store=blob_store, events=events, mail=mail,
                           core=core, counters=counters)
    if observer is not None:
        root.components["log"] = observer
    ring = LogRing(config)
    ring.setServiceParent(root)
    root.components["log_ring"] = ring
    # The avatars every mail-access login asks the realm for (auth/portal.py): POP3's
    # maildrop here; IMAP's with its first listener (an IMAP avatar carries its listener's
    # hub, and each session rebinds it to its own: IMAPAccount.for_access).
    portal.realm_registry.register(IPOP3Maildrop, maildrop_factory(mail))

    root.listeners.setServiceParent(root)
    root.components["listeners"] = root.listeners
    root.components["control"] = ServerControl(root, workers, reactor)
    wiring = Wiring(config, reactor, root, core, spool_dir)
    _add_smtp_listeners(wiring)
    _add_pop3_listeners(wiring)
    _add_imap_listeners(wiring)
    _add_delivery(wiring)
    _add_web_listeners(wiring)
    _add_dav_listener(wiring)
    _add_acme(wiring, clock if clock is not None else reactor)
    counters.active_connections = lambda: active_connections(root)
    counters.certificates = lambda: [c.as_dict() for c in
                                     certificates_in_use(root.components)]
    return root


def _global_pair(config: Config, now: datetime.datetime) -> tuple[str, str]:
    """The certificate every listener serves unless its group has its own (TLS_MODE)."""
    mode = config["TLS_MODE"]
    if mode == "selfsigned":
        return ensure_self_signed(os.path.join(config["DATA_DIR"], "tls"), config["HOSTNAME"],
                                  config.bind_addresses(), now=now)
    if mode in ACME_MODES:
        # Self-signed until the ACME service's first certificate replaces it (tls/acme.py).
        return acme.ensure_placeholder(acme.cache_dir(config), config["HOSTNAME"], now)
    return config["TLS_CERT"], config["TLS_KEY"]


def _sni_cert_pairs(config: Config) -> list[tuple[str, str]]:
    """TLS_SNI_CERTS as (cert, key) pairs; the config check made sure each has both parts."""
    pairs = []
    for item in config["TLS_SNI_CERTS"]:
        cert, _, key = item.partition(":")
        pairs.append((cert.strip(), key.strip()))
    return pairs


def active_connections(root: MailgosendService) -> dict[str, int]:
    """Open connections per listener name (smtp, submit, imaps, web, ...) on this node."""
    counts: dict[str, int] = {}
    for listener in root.listeners:
        opened = getattr(listener.factory, "open_connections", None)
        if opened is not None:
            counts[listener.name] = counts.get(listener.name, 0) + len(opened())
    return counts


def _server_tls(config: Config, group: str, now: datetime.datetime,
                clock: Clock) -> Optional[ServerTLS]:
    """The TLS contexts for one group of listeners (SMTP, IMAP, POP3, WEB); ``now`` from the
    reactor's clock decides whether a self-signed certificate is renewed, and ``clock`` (that
    reactor) is the one the certificates' validity is checked against, then and at each
    reload: a certificate made from one clock is never judged by another.

    The default certificate is the group's own ({group}_TLS_CERT) or the global one; every
    other certificate configured (TLS_SNI_CERTS, the global one, the other groups') is served
    to a client asking (SNI) for a name it covers and the default does not."""
    if config["TLS_MODE"] == "off":
        return None
    keys = "TLS_CERT/TLS_KEY"
    global_pair = _global_pair(config, now)
    cert, key = global_pair
    if group and config[f"{group}_TLS_CERT"]:
        cert, key = config[f"{group}_TLS_CERT"], config[f"{group}_TLS_KEY"]
        keys = f"{group}_TLS_CERT/{group}_TLS_KEY"
    others = [*_sni_cert_pairs(config), global_pair,
              *[(config[f"{g}_TLS_CERT"], config[f"{g}_TLS_KEY"]) for g in TLS_GROUPS
                if config[f"{g}_TLS_CERT"]]]
    try:
        tls = build_server_tls(cert, key, min_version=config["TLS_MIN_VERSION"],
                               clock=clock, sni_pairs=others)
    except TLSConfigError as exc:
        raise StartupError(f"{keys}: {exc}") from None
    for warning in tls.warnings:
        log.warn("TLS: {warning}", warning=warning)
    return tls


def _add_acme(w: Wiring, clock: Any) -> None:
    """TLS_MODE = http01/dns01: the service that issues and renews the global certificate and
    swaps it in through the SIGHUP path; and HTTP_PORT (challenges, redirect to HTTPS)."""
    from mailgosend.store.accounts import list_domains

    config = w.config
    challenges = None
    if config["TLS_MODE"] in ACME_MODES:
        runner = w.core.runner

        def local_domains() -> Any:
            return runner.read(list_domains).addCallback(
                lambda found: [d.name for d in found if d.enabled])

        service = acme.ACMEService(acme.ACMESettings.from_config(config), reactor=w.reactor,
                                   clock=clock, on_change=w.root.reload,
                                   local_domains=local_domains, config=config)
        service.setServiceParent(w.root)
        w.root.components["acme_status"] = service.certificate_status
        w.root.components["acme"] = service   # the admin panel's "Renew now" (renew_now)
        challenges = service.challenges
    if config.listener("http").active and config["TLS_MODE"] != "off":
        web = config.listener("web")
        w.listen("http", http_port_site(challenges, web.port if web.active else 443,
                                        https=config["WEB_TLS"]))


def _add_smtp_listeners(w: Wiring) -> None:
    """Inbound SMTP (25), submission (587, STARTTLS) and SMTPS (465, implicit TLS)."""
    config = w.config
    wanted = [name for name in ("smtp", "submit", "smtps") if config.listener(name).active]
    if not wanted:
        return
    resolver = make_resolver(config["DNS_PRIMARY"], config["DNS_SECONDARY"])
    install_spf_resolver(resolver)
    core = w.core
    delivery = Delivery(runner=core.runner, local=core.mail.delivery, events=core.events,
                        default_domain=config["DEFAULT_DOMAIN"])
    pipeline = ReceivePipeline(settings=CheckSettings.from_config(config), resolver=resolver,
                               workers=core.workers, delivery=delivery, runner=core.runner,
                               clock=w.reactor, spool_dir=w.spool_dir, mail=core.mail)
    pipeline.counters = core.counters
    w.root.components["receive_pipeline"] = pipeline
    greylist = None
    if config["GREYLIST_ENABLED"] and config.listener("smtp").active:
        policy = GreylistPolicy.from_config(config)
        greylist = Greylist(core.runner, core.keyring, policy, w.reactor)
        w.root.components["greylist"] = greylist
        w.root.getServiceNamed("maintenance").greylist_policy = policy
    backend = MailBackend(runner=core.runner, portal=core.portal, bans=core.bans, pipeline=pipeline,
                          default_domain=config["DEFAULT_DOMAIN"], spool_dir=w.spool_dir,
                          greylist=greylist)
    limits = SMTPLimits(max_message_size=config["MAX_MESSAGE_SIZE"],
                        max_header_size=config["HEADER_SIZE_LIMIT"],
                        max_recipients=config["MAX_RECIPIENTS"],
                        max_connections=config["MAX_CONNECTIONS"],
                        max_connections_per_ip=config["MAX_CONNECTIONS_PER_IP"])
    tls = w.tls_for("SMTP")
    kinds: dict[str, ListenerKind] = {"smtp": "inbound", "submit": "submission",
                                      "smtps": "smtps"}
    for name in wanted:
        kind = kinds[name]
        if kind != "inbound" and tls is None:
            log.warn("{key}: {kind} needs TLS (AUTH is never offered in clear); not "
                     "listening. Set TLS_MODE = dns01, http01, file or selfsigned.",
                     key=f"{name.upper()}_PORT", kind=kind)
            continue
        factory = SMTPServerFactory(backend, config["HOSTNAME"], kind, tls, w.reactor, limits,
                                    config["FUTURE_RELEASE_MAX_DAYS"] * 86400)
        factory.counters = core.counters
        w.listen(name, factory, tls if kind == "smtps" else None)


def _add_delivery(w: Wiring) -> None:
    """The outbound queue worker; woken by every commit that queues mail.  Added last, so it
    stops first: no delivery is started once the listeners and database begin to close."""
    from datetime import timedelta

    from mailgosend.delivery.bounces import Bouncer
    from mailgosend.delivery.https import HTTPSClient
    from mailgosend.delivery.mtasts import MTASTS
    from mailgosend.delivery.tlsrpt import TLSReporter
    from mailgosend.delivery.worker import DeliverySettings, QueueService, node_name
    from mailgosend.mailauth.dkimsign import DKIMSigner

    config = w.config
    settings = DeliverySettings.from_config(config)
    core = w.core
    bouncer = Bouncer(runner=core.runner, keyring=core.keyring, blob_store=core.blob_store,
                      local=core.mail.delivery, workers=core.workers, events=core.events, hostname=config["HOSTNAME"],
                      delay_warning_hours=config["DELAY_WARNING_HOURS"],
                      max_age=timedelta(hours=config["QUEUE_MAX_AGE_HOURS"]))
    bouncer.counters = core.counters
    resolver = make_resolver(config["DNS_PRIMARY"], config["DNS_SECONDARY"])
    # MTA-STS (RFC 8461) policies of recipient domains and TLS-RPT (RFC 8460) reports.
    https = HTTPSClient(reactor=w.reactor, workers=core.workers, resolver=resolver,
                        ca_file=config["MTA_STS_CA_FILE"] or None,
                        port=config["MTA_STS_HTTPS_PORT"])
    mta_sts = None
    if config["MTA_STS_OUTBOUND"]:
        mta_sts = MTASTS(runner=core.runner, workers=core.workers, resolver=resolver,
                         https=https, clock=w.reactor,
                         ca_file=config["MTA_STS_CA_FILE"] or None)
    worker = QueueService(
        settings=settings, runner=core.runner, keyring=core.keyring, blob_store=core.blob_store,
        workers=core.workers, resolver=resolver,
        signer=DKIMSigner(core.runner, core.keyring, core.workers, clock=w.reactor),
        bouncer=bouncer,
        clock=w.reactor, node=node_name(config), mta_sts=mta_sts)
    worker.setServiceParent(w.root)
    w.root.components["delivery"] = worker
    if config["TLSRPT_SEND"] and mta_sts is not None:
        reporter = TLSReporter(runner=core.runner, workers=core.workers, resolver=resolver,
                               https=https, local=core.mail.delivery, events=core.events,
                               clock=w.reactor, hostname=config["HOSTNAME"],
                               sender=f"postmaster@{config['DEFAULT_DOMAIN']}")
        reporter.setServiceParent(w.root)
        w.root.components["tlsrpt"] = reporter
    core.events.watch_queue(lambda _change: worker.wake())


def _mailbox_listeners(w: Wiring, plain: str, implicit: str,
                       build: Callable[[bool, Optional[ServerTLS]], Any]) -> None:
    """A STARTTLS port and an implicit-TLS port for one mail-access protocol."""
    if not any(w.config.listener(name).active for name in (plain, implicit)):
        return
    tls = w.tls_for(plain.upper())
    for name in (plain, implicit):
        if not w.config.listener(name).active:
            continue
        is_implicit = name == implicit
        if is_implicit and tls is None:
            log.warn("{key}: implicit TLS needs a TLS_MODE other than off; not listening",
                     key=f"{name.upper()}_PORT")
            continue
        w.listen(name, build(is_implicit, tls), tls if is_implicit else None)


def _add_imap_listeners(w: Wiring) -> None:
    """IMAP (143, STARTTLS) and IMAPS (993, implicit TLS); one hub so sessions on both
    ports see each other's changes at once."""
    hub = MailboxHub()
    core, config = w.core, w.config

    def build(implicit: bool, tls: Optional[ServerTLS]) -> Any:
        factory = build_imap_factory(
            mail=core.mail, portal=core.portal, bans=core.bans.for_service("imap"),
            events=core.events, tls=tls, hostname=config["HOSTNAME"],
            max_message_size=config["MAX_MESSAGE_SIZE"],
            clock=w.reactor, implicit_tls=implicit, hub=hub, spool_dir=w.spool_dir,
            allow_plaintext_loopback=config["PLAINTEXT_AUTH_LOOPBACK"],
            max_connections=config["MAX_CONNECTIONS"],
            max_connections_per_ip=config["MAX_CONNECTIONS_PER_IP"])
        if not implicit or not config.listener("imap").active:  # once, with the first
            core.portal.realm_registry.register(IIMAPAccount, imap_avatars(factory.access))
        return factory
    _mailbox_listeners(w, "imap", "imaps", build)


def _add_pop3_listeners(w: Wiring) -> None:
    """POP3 (110, STLS) and POP3S (995, implicit TLS) over the same mailboxes."""
    limits = POP3Limits(max_connections=w.config["MAX_CONNECTIONS"],
                        max_connections_per_ip=w.config["MAX_CONNECTIONS_PER_IP"])

    def build(implicit: bool, tls: Optional[ServerTLS]) -> Any:
        return build_pop3_factory(
            portal=w.core.portal, bans=w.core.bans.for_service("pop3"), tls=tls, hostname=w.config["HOSTNAME"], clock=w.reactor,
            implicit_tls=implicit, limits=limits,
            allow_plaintext_loopback=w.config["PLAINTEXT_AUTH_LOOPBACK"])
    _mailbox_listeners(w, "pop3", "pop3s", build)


def _add_web_listeners(w: Wiring) -> None:
    """The web port (8080) and the admin port (8081, /healthz): one Site each, HTTPS when
    WEB_TLS is on (WEB_TLS_CERT/WEB_TLS_KEY or the global certificate)."""
    from mailgosend.admin import AccountAdmin, AccountPolicy
    from mailgosend.auth.mfa import SecondFactor
    from mailgosend.auth.secondstep import SecondStep
    from mailgosend.auth.passkeys import PasskeyStep
    from mailgosend.dav.paths import WEB_MOUNT
    from mailgosend.web.autoconfig import ClientSetup
    from mailgosend.web.mailclients import client_endpoints
    from mailgosend.web.settings import WebSettings
    from mailgosend.web.setup import FirstAdminAnnouncer
    from mailgosend.web.site import build_site
    from mailgosend.web.totp_step import TOTPStep

    if w.config["JMAP_ENABLED"]:
        from mailgosend.jmap.submission import Releaser

        # held JMAP submissions (undo window, send later) go out even after a restart,
        # and even when the web port is off by then
        Releaser(w.core.mail, w.reactor, hostname=w.config["HOSTNAME"]).setServiceParent(
            w.root)
    wanted = [name for name in ("web", "admin") if w.config.listener(name).active]
    if not wanted:
        return
    tls = None
    if w.config["WEB_TLS"]:
        tls = w.tls_for("WEB")
        if tls is None:
            raise StartupError("WEB_TLS = true needs a certificate: set TLS_MODE = dns01, "
                               "http01, file or selfsigned, or WEB_TLS = false (behind a TLS "
                               "proxy, see TRUSTED_PROXIES)")
    core = w.core
    factor = SecondFactor(core.keyring, issuer=w.config["HOSTNAME"])
    second = SecondStep(core.runner, core.security, core.bans, factor)
    admin = AccountAdmin(AccountPolicy.from_config(w.config), events=core.events)
    endpoints = client_endpoints(w.config)
    jmap = None
    if w.config["JMAP_ENABLED"]:
        from mailgosend.jmap.submission import SubmissionSettings
        from mailgosend.jmap.wiring import endpoint_factory

        hostname = w.config["HOSTNAME"]
        jmap = endpoint_factory(config=w.config, portal=core.portal, runner=core.runner,
                                mail=core.mail, events=core.events, clock=w.reactor,
                                extra={"submission": SubmissionSettings(
                                    w.config["SUBMISSION_UNDO_SECONDS"], hostname,
                                    w.config["FUTURE_RELEASE_MAX_DAYS"] * 86400)})
    for name in wanted:
        site = build_site(settings=WebSettings.from_config(w.config, name),
                          runner=core.runner, portal=core.portal,
                          security=core.security, bans=core.bans.for_service("web"),
                          clock=w.reactor,
                          # A user with both factors is asked for both, in this order.
                          steps=(TOTPStep(core.runner, factor, second, name),
                                 PasskeyStep(core.runner, w.reactor, core.security,
                                             core.bans, name)),
                          sections=_account_sections(name, core, factor, admin),
                          admin=admin, workers=core.workers, endpoints=endpoints,
                          admin_groups=_admin_groups, config=w.config,
                          components=w.root.components,
                          client_setup=ClientSetup.from_config(w.config), jmap=jmap,
                          mail=core.mail,
                          dav=_dav_resource(w, WEB_MOUNT) if name == "web" else None)
        w.root.components[f"{name}_site"] = site
        w.listen(name, site, tls)
        if site.setup is not None:
            listener = w.config.listener(name)
            host = (w.config["HOSTNAME"] if listener.bind in ("", "0.0.0.0", "::")
                    else f"[{listener.bind}]" if ":" in listener.bind else listener.bind)
            url = f"{'https' if tls else 'http'}://{host}:{listener.port}/setup"
            announcer = FirstAdminAnnouncer(site.setup, url)
            announcer.setServiceParent(w.root)
            w.root.components["first_admin_setup"] = announcer


def _admin_groups(panel: Any) -> dict[bytes, Any]:
    """The admin panel's page groups (web/admin_guard.py AdminRouter), by the second
    segment of /admin/<name>/...; b"" is /admin itself, keys starting with "/" are
    top-level routes of the admin port.  Every page group gets the same AdminPanel."""
    from mailgosend.web.admin_audit import AuditPages
    from mailgosend.web.admin_dashboard import DashboardPages
    from mailgosend.web.admin_domains import DomainPages
    from mailgosend.web.admin_logs import LogsPages
    from mailgosend.web.admin_metrics import MetricsResource, ReadyResource
    from mailgosend.web.admin_queue import QueuePages
    from mailgosend.web.admin_security import SecurityPages
    from mailgosend.web.admin_settings import SettingsPages
    from mailgosend.web.admin_tls import TLSPages
    from mailgosend.web.admin_users import UserPages

    components = panel.components

    def listeners_up() -> list[tuple[str, bool]]:
        return [(listener.name, listener.listening is not None)
                for listener in components["listeners"]]
    users = UserPages(panel).resource()
    queue = QueuePages(panel).resource()
    return {
        b"": DashboardPages(panel).resource(),
        b"settings": SettingsPages(panel).resource(),
        b"tls": TLSPages(panel).resource(),
        b"logs": LogsPages(panel).resource(),
        b"audit": AuditPages(panel).resource(),
        b"domains": DomainPages(panel).resource(),
        b"users": users, b"aliases": users,
        b"queue": queue, b"deliveries": queue,
        b"security": SecurityPages(panel).resource(),
        b"/metrics": MetricsResource(components["counters"], lambda: panel.config),
        b"/readyz": ReadyResource(panel.runner, listeners_up),
    }


def _dav_resource(w: Wiring, mount: Any) -> Any:
    """CalDAV/CardDAV (issue #15) at ``mount``: one DavService per process."""
    from mailgosend.dav.resource import DavResource
    from mailgosend.mail.dav import DavService

    service = w.root.components.get("dav")
    if service is None:
        service = DavService(runner=w.core.runner, keyring=w.core.keyring, clock=w.reactor,
                             workers=w.core.workers, events=w.core.events)
        w.root.components["dav"] = service
    return DavResource(dav=service, portal=w.core.portal, workers=w.core.workers,
                       mount=mount, default_domain=w.config["DEFAULT_DOMAIN"])


def _add_dav_listener(w: Wiring) -> None:
    """DAV_PORT (5232; 0 disables): the same DAV data under /dav/calendars/<user>/ and
    /dav/contacts/<user>/, HTTPS when WEB_TLS is on, like the web port."""
    from mailgosend.dav.paths import DAV_PORT_MOUNT
    from mailgosend.web.ratelimit import RateLimiter
    from mailgosend.web.settings import WebSettings
    from mailgosend.web.site import WebSite

    if not w.config.listener("dav").active:
        return
    tls = w.tls_for("WEB") if w.config["WEB_TLS"] else None
    settings = WebSettings.from_config(w.config, "dav")
    site = WebSite(_dav_resource(w, DAV_PORT_MOUNT), settings,
                   RateLimiter(settings.rate_per_min, w.reactor),
                   w.core.bans.for_service("dav"), w.reactor,
                   upload_prefixes=(b"/",), unmetered_prefixes=(b"/",))
    w.root.components["dav_site"] = site
    w.listen("dav", site, tls)


def _account_sections(kind: str, core: Core, factor: Any, admin: Any) -> dict[str, Any]:
    """The pages under /account/<name>/: MFA on both ports; app passwords (for mail
    clients) on the web port."""
    from mailgosend.web.apppasswords_pages import AppPasswordPages
    from mailgosend.web.mfa_pages import MFAPages

    sections: dict[str, Any] = {
        "mfa": lambda pages: MFAPages(pages, core.runner, factor, core.workers)}
    if kind == "web":
        sections["app-passwords"] = lambda pages: AppPasswordPages(pages, core.runner, admin,
                                                                   core.workers)
    return sections


def install_startup_excepthook() -> None:
    """Print a StartupError as one line on stderr instead of a traceback."""
    previous = sys.excepthook

    def hook(kind: Any, value: Any, tb: Any) -> None:
        if isinstance(value, StartupError):
            sys.stderr.write(f"mailgosend: {value}\n")
            sys.stderr.flush()
            return
        previous(kind, value, tb)

    sys.excepthook = hook


def install_signal_handlers(root: MailgosendService, reactor: Any) -> None:
    """SIGHUP reloads; SIGTERM/SIGINT are twistd's (reactor.stop → stopService)."""
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(root.reload))


def chown_data_dir(config: Config, uid: Optional[int], gid: Optional[int]) -> None:
    """With ``twistd --uid/--gid`` as root, hand the data directory to that user."""
    if uid is None or os.getuid() != 0:
        return
    for top, dirs, files in os.walk(config["DATA_DIR"]):
        for name in [top] + [os.path.join(top, d) for d in dirs] + \
                [os.path.join(top, f) for f in files]:
            os.chown(name, uid, -1 if gid is None else gid)
