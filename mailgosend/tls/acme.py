"""TLS_MODE = http01 / dns01: certificates from an ACME v2 CA (RFC 8555), renewed unattended.

certbot's ``acme`` library speaks the protocol (txacme only speaks ACME v1, which Let's Encrypt
switched off: research/library-notes.md §3).  It is synchronous (requests), so every exchange with
the CA, every DNS provider call and every propagation check runs in a thread of the reactor's
pool; the reactor only schedules, serves HTTP-01 tokens and swaps contexts.  The challenge
helpers are beside it: http01.py (HTTP_PORT) and dns01.py (TXT records, propagation).

Files under ACME_CACHE_DIR (DATA_DIR/acme by default), the directory mode 0700:

- ``account.key`` (0600): the account's private key, made once (RFC 8555 §7.3: the key is the
  account; the CA finds it again from the key alone).
- ``live/cert.pem`` and ``live/key.pem`` (0600): the certificate every listener serves unless a
  per-service certificate overrides it.  Until the first issuance succeeds it is a self-signed
  placeholder, so the listeners can start (and serve HTTP-01) before the CA has answered.
- ``state.json``: names, last attempt, last error, failures, next check; what
  ``mailgosend tls status`` and the admin panel read.

Renewal: checked at start-up and every 12 hours on the injected clock; a certificate is
(re)issued when it is the placeholder, misses a wanted name, or expires within 30 days.  A failed
attempt is retried after 1, 5, 15 and 60 minutes, then 3 and 12 hours.  A new certificate is
written key first, then chain, and ``on_change`` (the SIGHUP reload) swaps it into every listener.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger

from mailgosend.clientports import CLIENT_SETUP_PREFIXES, MTA_STS_PREFIX
from mailgosend.tls import dns01
from mailgosend.tls.http01 import ChallengeStore
from mailgosend.tls.selfsigned import self_signed_pem, write_pair, write_private

log = Logger()

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
RENEW_BEFORE = datetime.timedelta(days=30)
CHECK_INTERVAL = 12 * 3600.0
BACKOFF = (60.0, 300.0, 900.0, 3600.0, 3 * 3600.0, 12 * 3600.0)
BAD_NONCE_TRIES = 20  # pebble refuses a share of good nonces; a real CA rarely any
ORDER_TIMEOUT = 180.0


class Clock(Protocol):
    """The part of ``IReactorTime`` used: the reactor or ``twisted.internet.task.Clock``."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, f: Callable[..., Any], *a: Any, **kw: Any) -> Any: ...


class ACMEError(Exception):
    """An attempt failed; the message is safe to log and show (no keys, no tokens)."""


# --- settings -----------------------------------------------------------------------------



def default_names(config: Mapping[str, Any], domains: Iterable[str]) -> list[str]:
    """ACME_DOMAINS; or HOSTNAME, then the names of the features on each local domain: the
    client setup names while the web port is served, mta-sts.<domain> while MTA_STS_MODE is
    not none.  The caller keeps only those of the feature names that exist in DNS."""
    if config["ACME_DOMAINS"]:
        return _unique(name.strip().lower().rstrip(".") for name in config["ACME_DOMAINS"])
    names = [config["HOSTNAME"].lower()]
    values = getattr(config, "values", None)
    if not isinstance(values, Mapping):  # a plain mapping rather than a Config
        values = config
    web = bool(values.get("WEB_ENABLED", False)) and bool(values.get("WEB_PORT", 0))
    mta_sts = str(values.get("MTA_STS_MODE", "none") or "none").lower() != "none"
    prefixes = (CLIENT_SETUP_PREFIXES if web else ()) + ((MTA_STS_PREFIX,) if mta_sts else ())
    for domain in sorted(domains):
        names.extend(prefix + domain for prefix in prefixes)
    return _unique(names)


def _unique(names: Iterable[str]) -> list[str]:
    found: list[str] = []
    for name in names:
        if name and name not in found:
            found.append(name)
    return found


@dataclass(frozen=True)
class ACMESettings:
    """What the service needs from the configuration (``from_config``) or a test."""

    mode: str                                  # "http01" or "dns01"
    cache_dir: str
    directory: str
    email: str = ""
    ca_file: str = ""
    names: tuple[str, ...] = ()                # ACME_DOMAINS; empty: default_names()
    hostname: str = "localhost"
    dns_provider: str = ""
    dns_hook: str = ""
    dns_hook_timeout: float = 120.0
    dns_zone: str = ""
    dns_primary: str = ""
    propagation_timeout: float = 600.0
    lexicon_options: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, config: Any) -> "ACMESettings":
        directory = config["ACME_DIRECTORY"] or (
            LETS_ENCRYPT_STAGING if config["ACME_STAGING"] else LETS_ENCRYPT)
        return cls(mode=config["TLS_MODE"], cache_dir=cache_dir(config), directory=directory,
                   email=config["ACME_EMAIL"], ca_file=config["ACME_CA_FILE"],
                   names=tuple(config["ACME_DOMAINS"]), hostname=config["HOSTNAME"],
                   dns_provider=config["ACME_DNS_PROVIDER"].strip().lower(),
                   dns_hook=config["ACME_DNS_HOOK"],
                   dns_hook_timeout=float(config["ACME_DNS_HOOK_TIMEOUT"]),
                   dns_zone=config["ACME_DNS_ZONE"].strip().lower().rstrip("."),
                   dns_primary=config["DNS_PRIMARY"],
                   propagation_timeout=float(config["ACME_DNS_PROPAGATION_SECONDS"]),
                   lexicon_options=dict(config.values.get("LEXICON_OPTIONS", {})))


def cache_dir(config: Any) -> str:
    return config["ACME_CACHE_DIR"] or os.path.join(config["DATA_DIR"], "acme")


def live_paths(directory: str) -> tuple[str, str]:
    """(certificate chain, private key) that the listeners serve in an ACME mode."""
    live = os.path.join(directory, "live")
    return os.path.join(live, "cert.pem"), os.path.join(live, "key.pem")


def ensure_placeholder(directory: str, hostname: str, now: datetime.datetime) -> tuple[str, str]:
    """The live pair, made self-signed for HOSTNAME when there is none yet, so that listeners
    start at once; the service replaces it with the CA's certificate."""
    os.makedirs(os.path.join(directory, "live"), mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    cert_path, key_path = live_paths(directory)
    if not (os.path.exists(cert_path) and os.path.exists(key_path)):
        cert_pem, key_pem = self_signed_pem(hostname, [x509.DNSName(hostname)], now)
        write_pair(cert_path, cert_pem, key_path, key_pem)
    return cert_path, key_path


# --- state, for status ----------------------------------------------------------------------

@dataclass
class CertificateStatus:
    """What an operator wants to know about one certificate (CLI, admin panel)."""

    name: str
    names: list[str]
    cert_path: str
    not_after: Optional[str] = None        # ISO 8601 UTC of the served certificate
    issuer: Optional[str] = None
    serial: Optional[str] = None
    placeholder: bool = True
    last_attempt: Optional[str] = None
    last_success: Optional[str] = None
    last_error: Optional[str] = None
    failures: int = 0
    next_check: Optional[str] = None
    bad_nonce_retries: int = 0
    skipped_names: list[str] = field(default_factory=list)  # feature names not in DNS yet

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(
        timespec="seconds")


def describe_certificate(cert_path: str) -> dict[str, Any]:
    """Names, expiry, issuer and serial of a PEM certificate file (empty if unreadable)."""
    try:
        with open(cert_path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
    except (OSError, ValueError):
        return {}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(name) for name in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    return {"names": names, "not_after": cert.not_valid_after_utc.isoformat(timespec="seconds"),
            "issuer": cert.issuer.rfc4514_string(), "serial": format(cert.serial_number, "x"),
            "placeholder": cert.issuer == cert.subject,
            "not_after_dt": cert.not_valid_after_utc, "not_before_dt": cert.not_valid_before_utc}


def read_state(directory: str) -> list[CertificateStatus]:
    """The state file the service writes, merged with what the certificate files say now."""
    try:
        with open(os.path.join(directory, "state.json"), encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError):
        raw = []
    found = []
    for item in raw if isinstance(raw, list) else []:
        try:
            status = CertificateStatus(**item)
        except TypeError:
            continue
        found.append(status)
    return found


# --- DNS-01 providers ---------------------------------------------------------------------

def make_provider(settings: ACMESettings) -> dns01.DNSProvider:
    if settings.dns_provider == "hook":
        if not settings.dns_hook:
            raise ACMEError("ACME_DNS_PROVIDER = hook needs ACME_DNS_HOOK")
        return dns01.HookProvider(settings.dns_hook, settings.dns_hook_timeout)
    if not settings.dns_provider:
        raise ACMEError("TLS_MODE = dns01 needs ACME_DNS_PROVIDER (a dns-lexicon provider name "
                        "or hook)")

    def zone_for(fqdn: str) -> str:
        return settings.dns_zone or dns01.zone_of(fqdn, settings.dns_primary)
    return dns01.LexiconProvider(settings.dns_provider, zone_for, settings.lexicon_options)


# --- the protocol, in a thread -------------------------------------------------------------------

def _network_class() -> Any:
    from acme import client, messages

    class PatientNetwork(client.ClientNetwork):  # type: ignore[misc]
        """Retries a request the CA refused with badNonce (RFC 8555 §6.5) up to
        BAD_NONCE_TRIES times with a fresh nonce; the library itself retries only once, and
        pebble rejects a share of valid nonces on purpose."""

        bad_nonces = 0

        def post(self, *args: Any, **kwargs: Any) -> Any:
            for attempt in range(BAD_NONCE_TRIES):
                try:
                    return self._post_once(*args, **kwargs)
                except messages.Error as error:
                    if error.code != "badNonce" or attempt == BAD_NONCE_TRIES - 1:
                        raise
                    self.bad_nonces += 1
            raise AssertionError("unreachable")
    return PatientNetwork


def _load_account_key(directory: str) -> Any:
    """The account key, made once (P-256) and kept 0600; its loss only means a new account."""
    import josepy

    path = os.path.join(directory, "account.key")
    if not os.path.exists(path):
        key = ec.generate_private_key(ec.SECP256R1())
        write_private(path, key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()), 0o600)
    with open(path, "rb") as handle:
        private = serialization.load_pem_private_key(handle.read(), password=None)
    return josepy.JWKEC(key=private)


@dataclass
class Issued:
    cert_pem: bytes
    key_pem: bytes
    bad_nonces: int


def issue(settings: ACMESettings, names: Sequence[str], challenges: ChallengeStore,
          provider: Optional[dns01.DNSProvider], stop: Optional[threading.Event] = None) -> Issued:
    """One complete order (RFC 8555 §7.4): account, order, challenges, finalize, download.
    Blocking; run it in a thread."""
    from acme import challenges as acme_challenges
    import josepy
    from acme import client, crypto_util, errors, messages

    directory = settings.cache_dir
    account_key = _load_account_key(directory)
    net = _network_class()(account_key, alg=josepy.ES256, user_agent="mailgosend",
                           verify_ssl=settings.ca_file or True)
    try:
        acme_directory = client.ClientV2.get_directory(settings.directory, net)
        acme_client = client.ClientV2(acme_directory, net)
        try:
            # RFC 8555 §7.3: the same key finds the existing account (200 + Location), which
            # the library reports as a conflict; a CA that lost it simply makes a new one.
            acme_client.new_account(messages.NewRegistration.from_data(
                email=settings.email or None, terms_of_service_agreed=True))
        except errors.ConflictError as existing:
            net.account = messages.RegistrationResource(uri=existing.location,
                                                        body=messages.Registration())
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        csr = crypto_util.make_csr(key_pem, list(names))
        order = acme_client.new_order(csr)
        cleanup: list[Callable[[], None]] = []
        try:
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue
                wanted = (acme_challenges.DNS01 if settings.mode == "dns01"
                          else acme_challenges.HTTP01)
                challb = next((c for c in authz.body.challenges
                               if isinstance(c.chall, wanted)), None)
                domain = authz.body.identifier.value
                if challb is None:
                    raise ACMEError(f"{domain}: the CA offers no {settings.mode} challenge "
                                    "(a wildcard needs TLS_MODE = dns01)")
                response, validation = challb.response_and_validation(account_key)
                if settings.mode == "dns01":
                    assert provider is not None
                    fqdn = challb.chall.validation_domain_name(domain)
                    provider.add(fqdn, validation)
                    cleanup.append(functools.partial(provider.remove, fqdn, validation))
                    servers = dns01.authoritative_servers(fqdn, settings.dns_primary)
                    dns01.wait_for_txt(fqdn, validation, servers, settings.propagation_timeout,
                                 stop=stop)
                else:
                    token = challb.chall.encode("token")
                    challenges.add(token, validation)
                    cleanup.append(functools.partial(challenges.remove, token))
                acme_client.answer_challenge(challb, response)
            deadline = datetime.datetime.now() + datetime.timedelta(seconds=ORDER_TIMEOUT)
            done = acme_client.poll_and_finalize(order, deadline)
        finally:
            for undo in cleanup:
                try:
                    undo()
                except Exception as exc:  # a leftover TXT record is harmless; say so
                    log.warn("ACME: cleaning up a challenge failed: {error}", error=exc)
    except errors.ValidationError as exc:
        problems = []
        for authz in exc.failed_authzrs:
            for challb in authz.body.challenges:
                if challb.error is not None:
                    detail = challb.error.detail or challb.error.typ
                    problems.append(f"{authz.body.identifier.value}: {detail}")
        raise ACMEError("validation failed: " + "; ".join(problems or ["(no detail)"])) from None
    except messages.Error as exc:
        raise ACMEError(f"the ACME server refused: {exc.typ}: {exc.detail}") from None
    except errors.TimeoutError:
        raise ACMEError(f"the order was not ready after {ORDER_TIMEOUT:g} s") from None
    except errors.Error as exc:
        raise ACMEError(f"ACME: {type(exc).__name__}: {exc}") from None
    except OSError as exc:  # requests' ConnectionError, SSLError... are OSErrors
        raise ACMEError(f"cannot reach the ACME server {settings.directory}: "
                        f"{type(exc).__name__}") from None
    return Issued(done.fullchain_pem.encode("ascii"), key_pem, net.bad_nonces)


# --- the service ----------------------------------------------------------------------------------

class ACMEService(service.Service):
    """Keeps the live certificate issued and renewed; swaps it in through ``on_change``."""

    def __init__(self, settings: ACMESettings, *, reactor: Any, clock: Clock,
                 on_change: Callable[[], Any],
                 local_domains: Callable[[], Any] = lambda: defer.succeed([]),
                 config: Any = None) -> None:
        self.setName("acme")
        self.settings = settings
        self.reactor = reactor
        self.clock = clock
        self.on_change = on_change
        self.local_domains = local_domains
        self.config = config
        self.challenges = ChallengeStore()
        self.cert_path, self.key_path = live_paths(settings.cache_dir)
        self.status = CertificateStatus(name="default", names=list(settings.names),
                                        cert_path=self.cert_path)
        previous = read_state(settings.cache_dir)
        if previous:
            kept = previous[0]
            self.status.last_attempt = kept.last_attempt
            self.status.last_success = kept.last_success
            self.status.last_error = kept.last_error
        self._refresh_from_file()
        self._timer: Any = None
        self._running: Optional[defer.Deferred[None]] = None
        self._stop = threading.Event()  # ends a propagation wait when the server stops

    # -- status --
    def _refresh_from_file(self) -> None:
        info = describe_certificate(self.cert_path)
        self.status.not_after = info.get("not_after")
        self.status.issuer = info.get("issuer")
        self.status.serial = info.get("serial")
        self.status.placeholder = info.get("placeholder", True)

    def _save_state(self) -> None:
        data = json.dumps([self.status.as_dict()], indent=2).encode()
        try:
            write_private(os.path.join(self.settings.cache_dir, "state.json"), data, 0o600)
        except OSError as exc:
            log.warn("ACME: cannot write the state file: {error}", error=exc.strerror)

    def certificate_status(self) -> list[dict[str, Any]]:
        """The small status object the admin panel reads (one entry per certificate)."""
        return [self.status.as_dict()]

    # -- scheduling --
    def startService(self) -> None:
        super().startService()
        self._stop.clear()
        self._start_check()

    def _start_check(self) -> None:
        running: defer.Deferred[None] = self.check()
        running.addErrback(self._crashed)
        self._running = running

    def _crashed(self, failure: Any) -> None:
        """An error outside the attempt (writing the files): reported and retried like one."""
        self._failed(f"{failure.type.__name__}: {failure.getErrorMessage()}")

    def stopService(self) -> Any:
        super().stopService()
        self._stop.set()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        running = self._running
        return running if running is not None else None

    def pending(self) -> defer.Deferred[None]:
        """Fires when the check in progress (if any) is done: for tests and the CLI."""
        running = self._running
        if running is None or running.called:
            return defer.succeed(None)
        waiting: defer.Deferred[None] = defer.Deferred()

        def done(result: Any) -> Any:
            waiting.callback(None)
            return result
        running.addBoth(done)
        return waiting

    def _schedule(self, delay: float) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if not self.running:
            return
        self.status.next_check = _iso(self.clock.seconds() + delay)
        self._timer = self.clock.callLater(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._start_check()

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.timezone.utc)

    def needs_issuance(self, names: Sequence[str]) -> Optional[str]:
        """Why a new certificate is needed now, or None (valid, all names, > 30 days left)."""
        info = describe_certificate(self.cert_path)
        if not info:
            return "no certificate"
        if info["placeholder"]:
            return "only the self-signed placeholder so far"
        missing = [n for n in names if n.lower() not in {x.lower() for x in info["names"]}]
        if missing:
            return "names missing: " + ", ".join(missing)
        if info["not_after_dt"] - RENEW_BEFORE <= self._now():
            return f"expires on {info['not_after']}"
        return None

    @defer.inlineCallbacks
    def check(self) -> Any:
        """Issue or renew when needed, then schedule the next check (12 h, or the backoff)."""
        if self.settings.names:
            names = list(self.settings.names)
        else:
            try:
                domains = yield self.local_domains()
            except Exception as exc:
                log.warn("ACME: cannot list local domains: {error}", error=exc)
                domains = []
            wanted = default_names(self.config or {"ACME_DOMAINS": (),
                                                   "HOSTNAME": self.settings.hostname}, domains)
            # One name the CA cannot validate fails the whole order: a feature name without a
            # DNS record yet (the admin has not published it) is left out until it has one.
            extras = wanted[1:]
            present = (yield threads.deferToThreadPool(
                self.reactor, self.reactor.getThreadPool(), dns01.existing_names, extras,
                self.settings.dns_primary)) if extras else []
            names = wanted[:1] + present
            self.status.skipped_names = [name for name in extras if name not in present]
        self.status.names = names
        reason = self.needs_issuance(names)
        if reason is None:
            self.status.failures = 0
            self._schedule(CHECK_INTERVAL)
            self._save_state()
            return
        log.info("ACME: requesting a certificate for {names} from {directory} ({reason})",
                 names=", ".join(names), directory=self.settings.directory, reason=reason)
        self.status.last_attempt = _iso(self.clock.seconds())
        try:
            provider = make_provider(self.settings) if self.settings.mode == "dns01" else None
            issued = yield threads.deferToThreadPool(
                self.reactor, self.reactor.getThreadPool(), issue, self.settings, names,
                self.challenges, provider, self._stop)
        except (ACMEError, dns01.DNS01Error) as exc:
            self._failed(str(exc))
            return
        except Exception as exc:  # a library bug must not stop renewal for good
            self._failed(f"{type(exc).__name__}: {exc}")
            return
        self.status.bad_nonce_retries += issued.bad_nonces
        write_pair(self.cert_path, issued.cert_pem, self.key_path, issued.key_pem)
        self._refresh_from_file()
        self.status.last_success = _iso(self.clock.seconds())
        self.status.last_error = None
        self.status.failures = 0
        log.info("ACME: new certificate for {names}, valid until {until}; swapping it in",
                 names=", ".join(names), until=self.status.not_after)
        try:
            self.on_change()
        except Exception as exc:
            log.error("ACME: swapping the new certificate in failed: {error}", error=exc)
        self._schedule(CHECK_INTERVAL)
        self._save_state()

    def _failed(self, message: str) -> None:
        self.status.last_error = message
        self.status.failures += 1
        delay = BACKOFF[min(self.status.failures, len(BACKOFF)) - 1]
        log.error("ACME: certificate for {names} not issued (attempt {n}): {error}; "
                  "next try in {delay:g} s", names=", ".join(self.status.names),
                  n=self.status.failures, error=message, delay=delay)
        self._schedule(delay)
        self._save_state()
