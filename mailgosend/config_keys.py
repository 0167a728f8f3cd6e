"""The table of every configuration key: one source for parsing, validation,
the generated app_config.conf and the README reference.

A key is declared once here; nothing else in the code knows a default or a
doc string.  ``tests/test_config_docs.py`` checks README.rst against this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

# Kinds of value; the parser for each lives in config.py.
STR = "str"
INT = "int"
PORT = "port"
BOOL = "bool"
FLOAT = "float"
SIZE = "size"
SECRET = "secret"        # 64 hex characters (32 bytes)
SECRETS = "secrets"      # comma-separated list of SECRET (old keys)
HOSTNAME = "hostname"
DOMAIN = "domain"
ADDRESS = "address"      # bind address (IPv4/IPv6 literal)
NAMESERVER = "nameserver"
HOSTPORT = "hostport"
PATH = "path"
FILE = "file"            # path of a file that must be readable when used
CHOICE = "choice"
INTLIST = "intlist"
LIST = "list"
LOGLEVEL = "loglevel"


@dataclass(frozen=True)
class Key:
    name: str
    kind: str
    default: str
    doc: str
    section: str
    aliases: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    value_aliases: tuple[tuple[str, str], ...] = ()   # e.g. (("manual", "file"),)
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    # Profile overrides of the default, used only when a file is generated.
    profile_defaults: tuple[tuple[str, str], ...] = ()
    # Generated at first run (random secrets); ``default`` is then ignored.
    generate: Optional[Callable[[], str]] = field(default=None, compare=False)
    # Keys read by a feature that is not built yet are kept in the file so
    # the file stays stable, and say so honestly in their doc.
    pending: str = ""

    def default_for(self, profile: str) -> str:
        return dict(self.profile_defaults).get(profile, self.default)


def _random_secret() -> str:
    import secrets

    return secrets.token_hex(32)


SECTIONS = (
    ("identity", "Identity"),
    ("listeners", "Listeners: ports and bind addresses (PORT = 0 or <SERVICE>_ENABLED = false disables one)"),
    ("tls", "TLS"),
    ("secrets", "Secrets (generated on first run; keep a copy: without ENCRYPTION_KEY stored mail is unreadable)"),
    ("database", "Database and storage"),
    ("web", "Web and admin ports"),
    ("security", "Security"),
    ("limits", "Limits"),
    ("spam", "Spam and mail authentication"),
    ("delivery", "Outbound delivery"),
    ("mtasts", "MTA-STS and TLS reporting (RFC 8461, RFC 8460)"),
    ("logging", "Logging and debugging"),
)

# name, default port, local-profile port, doc
SERVICES: tuple[tuple[str, int, int, str], ...] = (
    ("SMTP", 25, 10025, "inbound SMTP from other mail servers (STARTTLS offered)"),
    ("SUBMIT", 587, 10587, "mail submission for your users' clients (STARTTLS, then AUTH)"),
    ("SMTPS", 465, 10465, "mail submission over implicit TLS"),
    ("IMAP", 143, 10143, "IMAP (STARTTLS)"),
    ("IMAPS", 993, 10993, "IMAP over implicit TLS"),
    ("POP3", 110, 10110, "POP3 (STLS)"),
    ("POP3S", 995, 10995, "POP3 over implicit TLS"),
    ("WEB", 8080, 8080, "the web sign-in and account pages (HTTPS when WEB_TLS is on)"),
    ("ADMIN", 8081, 8081, "the admin sign-in pages and /healthz"),
    ("DAV", 5232, 5232, "CalDAV/CardDAV for clients set up with /dav/calendars/<user>/"),
    ("HTTP", 80, 10080, "plain HTTP: ACME HTTP-01 challenges (/.well-known/acme-challenge/), "
     "everything else redirected to HTTPS on WEB_PORT (served unless TLS_MODE = off)"),
)

# Listener groups that may have their own certificate (<GROUP>_TLS_CERT/_KEY).
TLS_GROUPS = ("SMTP", "IMAP", "POP3", "WEB")
# TLS modes whose certificate comes from an ACME CA (mailgosend/tls/acme.py).
ACME_MODES = ("http01", "dns01")

# Which listeners are built in this release; the rest keep their keys but
# say they are not served yet (never a listener that does nothing).
SERVED = {"WEB", "ADMIN", "DAV", "SMTP", "SUBMIT", "SMTPS", "POP3", "POP3S", "IMAP", "IMAPS", "HTTP"}


def _service_keys() -> list[Key]:
    keys: list[Key] = [
        Key("BIND_ADDRESS", ADDRESS, "0.0.0.0",
            "Address every listener binds to unless its own <SERVICE>_BIND says otherwise "
            "(0.0.0.0 = all IPv4, :: = all IPv6 and IPv4).",
            "listeners", aliases=("LISTEN_ADDRESS",),
            profile_defaults=(("local", "127.0.0.1"),)),
    ]
    for name, port, local_port, doc in SERVICES:
        pending = "" if name in SERVED else "not served by this release yet"
        keys.append(Key(f"{name}_ENABLED", BOOL, "true", f"Serve {doc}.", "listeners",
                        pending=pending))
        # The seed README's names for the web listeners: WEBCLIENT_* and WEBADMIN_*.
        seed = {"WEB": "WEBCLIENT", "ADMIN": "WEBADMIN"}.get(name)
        aliases: tuple[str, ...] = (f"{seed}_PORT",) if seed else ()
        if name == "SUBMIT":
            aliases = ("SUBMISSION_PORT",)
        elif name == "DAV":
            aliases = ("CALDAV_PORT",)
        keys.append(Key(f"{name}_PORT", PORT, str(port), f"Port for {doc}; 0 disables it.",
                        "listeners", aliases=aliases, minimum=0, maximum=65535,
                        profile_defaults=(("local", str(local_port)),), pending=pending))
        bind_aliases: tuple[str, ...] = (f"{name}_IFACE",) + ((f"{seed}_IFACE",) if seed else ())
        if name == "SUBMIT":
            bind_aliases += ("SUBMISSION_IFACE",)
        elif name == "DAV":
            bind_aliases += ("CALDAV_IFACE",)
        default_bind = "127.0.0.1" if name == "ADMIN" else ""
        keys.append(Key(f"{name}_BIND", ADDRESS, default_bind,
                        f"Bind address for {doc}; empty means BIND_ADDRESS."
                        + (" Loopback by default: expose the admin panel only through a "
                           "reverse proxy or an SSH tunnel." if name == "ADMIN" else ""),
                        "listeners", aliases=bind_aliases, pending=pending))
    return keys


KEYS: tuple[Key, ...] = tuple([
    # --- identity -----------------------------------------------------------
    Key("HOSTNAME", HOSTNAME, "mail.example.com",
        "Fully qualified name of this server: SMTP greeting, Received headers, "
        "Authentication-Results authserv-id, TLS certificate name. Its A/AAAA record "
        "and the PTR of its address should point at each other.",
        "identity", profile_defaults=(("local", "localhost"),)),
    Key("PUBLIC_IP", ADDRESS, "",
        "The server's public IP address, for the DNS check (mailgosend doctor, the admin "
        "panel): its reverse DNS, blocklist listings and SPF; empty uses the A record of "
        "HOSTNAME.", "identity"),
    Key("DEFAULT_DOMAIN", DOMAIN, "example.com",
        "Mail domain used when a login or address is given without @domain.",
        "identity", aliases=("DOMAIN_DEFAULT",),
        profile_defaults=(("local", "localhost.test"),)),
    Key("PROFILE", CHOICE, "standard",
        "Which defaults this file was generated with, also used for keys appended "
        "later: standard (ports 25, 587, 143...) or local (loopback, unprivileged "
        "ports 10025, 10587, 10143..., for trying mailgosend as a normal user).",
        "identity", choices=("standard", "local"),
        profile_defaults=(("local", "local"),)),
    Key("DATA_DIR", PATH, "data",
        "Directory for the SQLite database, message files (STORAGE_BACKEND = fs) and "
        "certificates; relative paths are relative to this file's directory.",
        "identity"),
    # --- listeners ----------------------------------------------------------
    *_service_keys(),
    Key("SHUTDOWN_GRACE_SECONDS", INT, "10",
        "On SIGTERM/SIGINT, how long open sessions may finish before they are closed.",
        "listeners", minimum=0, maximum=300),
    # --- TLS ----------------------------------------------------------------
    Key("TLS_MODE", CHOICE, "selfsigned",
        "dns01: certificates from an ACME CA (Let's Encrypt by default) proven through DNS "
        "TXT records (ACME_DNS_PROVIDER; wildcards possible, no inbound port needed); http01: "
        "the same, proven over HTTP_PORT (port 80 must reach this server); file: use "
        "TLS_CERT/TLS_KEY (re-read on SIGHUP); selfsigned: a certificate for HOSTNAME made on "
        "first start under DATA_DIR/tls (for trying the server and for clients that accept "
        "it; other mail servers will not trust it); off: no TLS, so submission (587/465) is "
        "not served and IMAP/POP3 logins are refused. ACME certificates are renewed 30 days "
        "before expiry and swapped in without a restart; `mailgosend tls status` shows them.",
        "tls", choices=("dns01", "http01", "file", "selfsigned", "off"),
        value_aliases=(("manual", "file"),)),
    Key("TLS_CERT", FILE, "",
        "PEM certificate chain (leaf first) used when TLS_MODE = file.", "tls"),
    Key("TLS_KEY", FILE, "",
        "PEM private key for TLS_CERT.", "tls"),
    *[Key(f"{group}_TLS_{part}", FILE, "",
          f"{'Certificate chain' if part == 'CERT' else 'Private key'} for {what} only, "
          f"instead of TLS_{part} or the ACME certificate (any TLS_MODE but off; set both "
          f"{group}_TLS_CERT and {group}_TLS_KEY; re-read on SIGHUP).", "tls",
          pending="")
      for group, what in (("SMTP", "SMTP, submission and SMTPS"), ("IMAP", "IMAP and IMAPS"),
                          ("POP3", "POP3 and POP3S"), ("WEB", "the web and admin ports"))
      for part in ("CERT", "KEY")],
    Key("WEB_TLS", BOOL, "true",
        "Serve the web and admin ports over HTTPS, with WEB_TLS_CERT/WEB_TLS_KEY or the "
        "certificate of TLS_MODE. Turn it off behind a reverse proxy that terminates TLS "
        "(see TRUSTED_PROXIES) or for local trials.", "tls",
        profile_defaults=(("local", "false"),)),
    Key("TLS_MIN_VERSION", CHOICE, "1.2",
        "Oldest TLS version accepted.", "tls", choices=("1.2", "1.3")),
    Key("TLS_SNI_CERTS", LIST, "",
        "Extra certificates, comma-separated cert.pem:key.pem pairs, each served to clients "
        "that ask (SNI) for a name in its subjectAltName: one server, several domains with "
        "their own certificates. Re-read on SIGHUP.", "tls"),
    Key("ACME_EMAIL", STR, "",
        "Contact address given to the ACME CA (expiry warnings, policy changes); optional.",
        "tls"),
    Key("ACME_DIRECTORY", STR, "",
        "ACME directory URL; empty means Let's Encrypt (production, or staging with "
        "ACME_STAGING = true).", "tls"),
    Key("ACME_STAGING", BOOL, "false",
        "Use Let's Encrypt's staging CA (untrusted certificates, generous rate limits) to "
        "try a setup.", "tls"),
    Key("ACME_CA_FILE", FILE, "",
        "PEM CA certificates trusted for the ACME server's own HTTPS (a private ACME CA); "
        "empty trusts the system store.", "tls"),
    Key("ACME_CACHE_DIR", PATH, "",
        "Where the ACME account key (mode 0600), certificates and renewal state are kept; "
        "empty means DATA_DIR/acme.", "tls"),
    Key("ACME_DOMAINS", LIST, "",
        "Names of the ACME certificate, comma-separated (``*.example.com`` needs TLS_MODE = "
        "dns01); empty means HOSTNAME plus, for each local domain, autoconfig.<domain> and "
        "autodiscover.<domain> (while the web port is served) and mta-sts.<domain> (while "
        "MTA_STS_MODE is not none), each once it has an address in DNS.", "tls"),
    Key("ACME_DNS_PROVIDER", STR, "",
        "TLS_MODE = dns01: a dns-lexicon provider name (cloudflare, route53, ovh, ...; its "
        "credentials as LEXICON_<PROVIDER>_<OPTION> keys in this file or environment "
        "variables, e.g. LEXICON_CLOUDFLARE_AUTH_TOKEN), or hook to run ACME_DNS_HOOK.",
        "tls"),
    Key("ACME_DNS_HOOK", FILE, "",
        "ACME_DNS_PROVIDER = hook: a program run as `program add|remove FQDN VALUE`; exit "
        "status 0 means done.", "tls"),
    Key("ACME_DNS_HOOK_TIMEOUT", INT, "120",
        "Seconds ACME_DNS_HOOK may run before it is killed and the attempt fails.", "tls",
        minimum=1, maximum=3600),
    Key("ACME_DNS_ZONE", STR, "",
        "The DNS zone the TXT records go into (example.com); empty finds it through DNS "
        "(the SOA of the name).", "tls"),
    Key("ACME_DNS_PROPAGATION_SECONDS", INT, "600",
        "How long to wait for every authoritative server of the zone to serve a new TXT "
        "record before the attempt fails.", "tls", minimum=1, maximum=7200),
    # --- secrets ------------------------------------------------------------
    Key("ENCRYPTION_KEY", SECRET, "",
        "Master key (64 hex characters) for encryption at rest; per-user keys are "
        "derived from it. Generated on first run. Losing it loses all stored mail.",
        "secrets", generate=_random_secret),
    Key("ENCRYPTION_KEYS_OLD", SECRETS, "",
        "Comma-separated previous ENCRYPTION_KEY values, still accepted for reading "
        "after a key rotation.", "secrets"),
    Key("SESSION_SECRET", SECRET, "",
        "Secret (64 hex characters) for web session and CSRF tokens. Generated on first run.",
        "secrets", generate=_random_secret),
    # --- web ----------------------------------------------------------------
    Key("WEB_HOSTNAMES", LIST, "",
        "Comma-separated host names the web and admin ports answer to besides HOSTNAME, "
        "localhost and the literal addresses they listen on; a request for any other Host "
        "is refused with 421.", "web"),
    Key("TRUSTED_PROXIES", LIST, "",
        "Comma-separated addresses or networks (CIDR) of reverse proxies in front of the web "
        "and admin ports: only their X-Forwarded-For and X-Forwarded-Proto headers are "
        "believed (for bans, rate limits, session lists and secure cookies). Empty: no "
        "proxy, the headers are ignored.", "web"),
    Key("SECURE_COOKIE", BOOL, "false",
        "Mark session cookies Secure even when the web port itself speaks plain HTTP (set "
        "it behind a TLS-terminating proxy that is not in TRUSTED_PROXIES). Under HTTPS "
        "cookies are always Secure.", "web"),
    Key("SESSION_MAX_AGE", INT, "604800",
        "Lifetime of a web sign-in, in seconds, however active it is.", "web",
        minimum=300, maximum=31536000),
    Key("SESSION_IDLE_TIMEOUT", INT, "7200",
        "A web sign-in unused for this many seconds ends.", "web",
        minimum=60, maximum=31536000),
    Key("WEB_RATE_PER_MIN", INT, "60",
        "Sign-in attempts and other changes (POST) per minute from one address on the web "
        "port; more get 429 with Retry-After. Pages and static files are not counted.",
        "web", minimum=1, maximum=100000),
    Key("ADMIN_RATE_PER_MIN", INT, "10",
        "The same limit on the admin port.", "web", minimum=1, maximum=100000),
    Key("JMAP_ENABLED", BOOL, "true",
        "Serve JMAP (RFC 8620/8621: the webmail's API, and any JMAP client's with an app "
        "password) on the web port: /.well-known/jmap, /jmap/api, uploads, downloads and "
        "push.", "web"),
    Key("JMAP_RATE_PER_MIN", INT, "600",
        "JMAP API calls and uploads (POST) per minute from one address; more get 429 with "
        "Retry-After. Counted apart from WEB_RATE_PER_MIN: a mail app makes many.", "web",
        minimum=1, maximum=1000000),
    Key("SUBMISSION_UNDO_SECONDS", INT, "0",
        "JMAP EmailSubmission: seconds a sent message is held before it goes out, during "
        "which the sender can still cancel it (undoStatus pending -> canceled; the webmail's "
        "Undo). 0 sends at once.", "web", minimum=0, maximum=3600),
    Key("FUTURE_RELEASE_MAX_DAYS", INT, "30",
        "Send later: how many days ahead a message may be held in the queue, asked for with "
        "MAIL FROM HOLDFOR=/HOLDUNTIL= on the submission ports (RFC 4865 FUTURERELEASE, "
        "advertised in EHLO) or in a JMAP EmailSubmission's envelope (maxDelayedSend). 0 "
        "turns send later off.", "web", minimum=0, maximum=365),
    Key("VACATION_REPLY_DAYS", INT, "7",
        "Automatic vacation replies (JMAP VacationResponse): at most one to the same sender "
        "in this many days (RFC 3834 §2 suggests 7).", "web", minimum=1, maximum=365),
    Key("METRICS_ALLOW", LIST, "127.0.0.0/8, ::1/128",
        "Comma-separated addresses or networks (CIDR) allowed to read the Prometheus "
        "metrics at /metrics on the admin port without signing in; empty: none (then only "
        "METRICS_TOKEN opens it). The admin port may be reachable from elsewhere: keep this "
        "to the scraper's address. Behind a reverse proxy on the same machine, list the "
        "proxy in TRUSTED_PROXIES, or every request seems to come from loopback.", "web"),
    Key("METRICS_TOKEN", STR, "",
        "A bearer token that also opens /metrics (Authorization: Bearer <token>) from any "
        "address, at least 32 characters; empty: no token.", "web"),
    # --- database -----------------------------------------------------------
    Key("DB_DRIVER", CHOICE, "sqlite",
        "sqlite: embedded database in DB_PATH (one machine); postgres: PostgreSQL at "
        "DB_DSN (several nodes may share it).",
        "database", choices=("sqlite", "postgres"), value_aliases=(("postgresql", "postgres"),)),
    Key("DB_PATH", PATH, "mailgosend.db",
        "SQLite database file; relative paths are relative to DATA_DIR.", "database"),
    Key("DB_DSN", STR, "",
        "PostgreSQL connection URL when DB_DRIVER = postgres, e.g. "
        "postgresql://mailgosend@127.0.0.1:5432/mailgosend", "database"),
    Key("DB_POOL_SIZE", INT, "8",
        "Database threads (readers for SQLite, connections for PostgreSQL).",
        "database", minimum=1, maximum=64),
    Key("STORAGE_BACKEND", CHOICE, "db",
        "Where message bodies are kept: db (in the database) or fs (files under "
        "STORAGE_PATH, written atomically).", "database", choices=("db", "fs")),
    Key("STORAGE_PATH", PATH, "blobs",
        "Directory for message files when STORAGE_BACKEND = fs; relative to DATA_DIR.",
        "database"),
    # --- security -----------------------------------------------------------
    Key("BRUTE_MAX_TRIES", INT, "10",
        "Failed logins from one IP address within BRUTE_WINDOW_MIN that ban the address.",
        "security", minimum=1, maximum=10000),
    Key("BRUTE_ACCOUNT_MAX_TRIES", INT, "30",
        "Failed logins for one account (from any address) within BRUTE_WINDOW_MIN that "
        "suspend password logins to that account for BRUTE_BAN_HOURS.",
        "security", minimum=1, maximum=100000),
    Key("BRUTE_WINDOW_MIN", INT, "15",
        "Sliding window, in minutes, in which failed logins are counted.",
        "security", minimum=1, maximum=10080),
    Key("BRUTE_BAN_HOURS", FLOAT, "1",
        "How long a ban lasts, in hours.", "security", minimum=0.01, maximum=8760),
    Key("BAN_EXEMPT_IPS", LIST, "",
        "Comma-separated addresses or networks (CIDR) that are never banned, e.g. your "
        "office. Failed logins from them are still recorded.", "security"),
    # Which listeners a ban from failed logins closes at connect time (auth/bans.py).
    Key("BAN_SCOPE", LIST, "submission,imap,pop3,web,dav",
        "Comma-separated listeners that refuse an address banned for failed logins at "
        "connect time (smtp is inbound port 25; submission is 587 and 465). The default "
        "is every listener that accepts a login; add smtp to refuse a banned address's "
        "inbound mail too. Logins from a banned address fail everywhere regardless.",
        "security", choices=("smtp", "submission", "imap", "pop3", "web", "dav")),
    Key("PLAINTEXT_AUTH_LOOPBACK", BOOL, "false",
        "Allow IMAP and POP3 logins without TLS from loopback addresses (127.0.0.1, ::1), "
        "for local tools such as a webmail or fetchmail on the same machine. Elsewhere "
        "passwords are only accepted under TLS.", "security"),
    Key("MFA_PROTECTS_PROTOCOLS", BOOL, "true",
        "Once a user turns on two-factor authentication, refuse their account password on "
        "IMAP, POP3, SMTP AUTH and DAV: mail clients then sign in with app passwords, so "
        "the second factor cannot be bypassed through a mail client. The refusal tells the "
        "user to create an app password.", "security"),
    Key("BCRYPT_COST", INT, "12",
        "bcrypt work factor for new password hashes. Lower values are for test suites only.",
        "security", minimum=4, maximum=16),
    # --- limits -------------------------------------------------------------
    Key("MAX_MESSAGE_SIZE", SIZE, "50M",
        "Largest message accepted (SMTP SIZE), in bytes or with K/M/G.",
        "limits", minimum=1024),
    Key("HEADER_SIZE_LIMIT", SIZE, "100K",
        "Largest header section of a message received over SMTP, in bytes or with K/M; a "
        "larger one is refused at the end of DATA with 552 5.3.4 (as Postfix's "
        "header_size_limit, whose default this is).", "limits", minimum=1024,
        maximum=1024 * 1024),
    Key("MAX_RECIPIENTS", INT, "100",
        "Recipients per message (RFC 5321 §4.5.3.1.8 requires at least 100).",
        "limits", minimum=1, maximum=100000),
    Key("MAX_CONNECTIONS", INT, "500",
        "Open connections per listener, all clients together.", "limits",
        minimum=1, maximum=100000),
    Key("MAX_CONNECTIONS_PER_IP", INT, "20",
        "Open connections per listener from one client address.", "limits",
        minimum=1, maximum=100000),
    Key("DEFAULT_QUOTA", SIZE, "0",
        "Mailbox quota for new users (0 = unlimited); `user add --quota` overrides it.",
        "limits", minimum=0),
    # --- spam / mail authentication -----------------------------------------
    Key("SPAM_THRESHOLD", FLOAT, "5.0",
        "Spam score at or above which inbound mail goes to the Junk folder.",
        "spam", minimum=0, maximum=1000, pending=""),
    Key("SPAM_CHECK_SPF", BOOL, "true", "Check SPF (RFC 7208) on inbound mail.", "spam",
        pending=""),
    Key("SPAM_CHECK_DKIM", BOOL, "true", "Verify DKIM signatures (RFC 6376) on inbound mail.",
        "spam", pending=""),
    Key("SPAM_CHECK_DMARC", BOOL, "true",
        "Apply DMARC (RFC 7489) policies: reject refuses the message, quarantine files it "
        "as spam.", "spam", pending=""),
    Key("DNSBL_ZONES", LIST, "zen.spamhaus.org",
        "Comma-separated DNS blocklists queried for the connecting address.", "spam",
        aliases=("SPAM_DNSBL",), pending=""),
    Key("DNSBL_CHECK_PRIVATE", BOOL, "false",
        "Also query the blocklists for private and loopback client addresses (for test "
        "setups; real lists never list them).", "spam",
        pending=""),
    Key("GREYLIST_ENABLED", BOOL, "false",
        "Greylist unknown (client network, sender, recipient) triplets on the inbound "
        "listener (RFC 6647): the first attempt gets 451 4.7.1 at RCPT, a retry after "
        "GREYLIST_DELAY_SECONDS is accepted. Never applies to authenticated submission.",
        "spam"),
    Key("GREYLIST_DELAY_SECONDS", INT, "300",
        "How long a new triplet is deferred before a retry is accepted.", "spam",
        minimum=0, maximum=86400),
    Key("GREYLIST_RETRY_WINDOW_HOURS", FLOAT, "24",
        "A triplet not retried successfully within this many hours starts over.", "spam",
        minimum=1, maximum=720),
    Key("GREYLIST_EXPIRE_DAYS", FLOAT, "35",
        "A passed triplet (or client network) unused for this many days is forgotten.",
        "spam", minimum=1, maximum=3650),
    Key("GREYLIST_EXEMPT_NETWORKS", LIST, "127.0.0.0/8, ::1/128",
        "Comma-separated client networks (CIDR) that are never greylisted; loopback by "
        "default, for local scripts and filters.", "spam"),
    Key("BAYES_MIN_TRAINED", INT, "20",
        "A user's Bayesian classifier adds points to the spam score only after that user "
        "has trained at least this many ham and this many spam messages (by moving mail "
        "into or out of Junk).", "spam", minimum=1, maximum=1000000),
    Key("BAYES_MAX_POINTS", FLOAT, "3.5",
        "Most points the per-user Bayesian classifier adds for near-certain spam (it takes "
        "off at most half as many for near-certain ham); 0 turns it off.  3.5 is "
        "SpamAssassin's BAYES_99 score.", "spam",
        minimum=0, maximum=100),
    Key("DNS_PRIMARY", NAMESERVER, "",
        "DNS server (host or host:port) for SPF, DKIM, DMARC, DNSBL and MX lookups; "
        "empty uses /etc/resolv.conf.", "spam"),
    Key("DNS_SECONDARY", NAMESERVER, "", "Second DNS server, tried when the first fails.",
        "spam"),
    Key("DOCTOR_PORT25_PROBE", HOSTPORT, "gmail-smtp-in.l.google.com:25",
        "A mail server (host or host:port) the DNS check (mailgosend doctor, the admin "
        "panel) connects to, to tell whether outbound port 25 is open here; empty skips "
        "that check. Only a TCP connect, closed at once: nothing is sent.", "delivery"),
    # --- delivery -----------------------------------------------------------
    Key("QUEUE_RETRY_MINS", INTLIST, "5,10,30,60,120,240",
        "Minutes to wait before each retry of a temporarily failed delivery; the last "
        "step repeats.", "delivery", aliases=("QUEUE_RETRY_MIN",)),
    Key("QUEUE_MAX_AGE_HOURS", FLOAT, "120",
        "A message still undelivered after this many hours is bounced.", "delivery",
        aliases=("QUEUE_MAX_AGE_H",), minimum=1, maximum=8760),
    Key("DELIVERY_PORT", PORT, "25",
        "Port used to reach other domains' MX hosts.", "delivery", minimum=1, maximum=65535),
    Key("RELAY_HOST", HOSTPORT, "",
        "Smarthost (host:port) for all outbound mail, for providers that block port 25; "
        "empty delivers directly to MX hosts.", "delivery"),
    Key("RELAY_USER", STR, "", "Login for RELAY_HOST (AUTH is only sent over TLS).", "delivery"),
    Key("RELAY_PASSWORD", STR, "", "Password for RELAY_USER.", "delivery"),
    Key("RELAY_CA_FILE", PATH, "",
        "Extra CA certificates (PEM) trusted for RELAY_HOST's certificate; empty trusts "
        "the system store only.  With RELAY_USER set the smarthost's certificate must "
        "verify for its host name, or no password is sent.", "delivery"),
    Key("DELIVERY_BIND", ADDRESS, "",
        "Source address for outbound SMTP connections (the address your SPF record "
        "names); empty lets the system choose.", "delivery"),
    Key("DELIVERY_CONCURRENCY", INT, "20",
        "Outbound SMTP sessions open at once, all destinations together.", "delivery",
        minimum=1, maximum=1000),
    Key("DELIVERY_DESTINATION_CONCURRENCY", INT, "5",
        "Outbound SMTP sessions open at once to one destination domain.", "delivery",
        minimum=1, maximum=100),
    Key("DELIVERY_PAUSED", BOOL, "false",
        "Keep outbound mail queued without attempting delivery (maintenance); "
        "`mailgosend queue retry-all` after setting it back.", "delivery"),
    Key("DELAY_WARNING_HOURS", FLOAT, "4",
        "Send the sender a delay notice after this many hours (0 = never).", "delivery",
        minimum=0, maximum=8760),
    # --- MTA-STS and TLS-RPT -------------------------------------------------
    Key("MTA_STS_MODE", CHOICE, "testing",
        "Mode of the MTA-STS policy (RFC 8461) served for every local domain at "
        "https://mta-sts.<domain>/.well-known/mta-sts.txt: testing (senders deliver anyway "
        "and report TLS problems), enforce (senders refuse to deliver without a verified "
        "TLS connection to a listed MX), none (withdraws an earlier policy). Start with "
        "testing; switch to enforce once reports show no failures.",
        "mtasts", choices=("none", "testing", "enforce")),
    Key("MTA_STS_MAX_AGE", INT, "604800",
        "How long (seconds) senders may cache the MTA-STS policy; one week by default "
        "(RFC 8461 §3.2 allows up to a year).", "mtasts", minimum=60, maximum=31557600),
    Key("MTA_STS_MX", LIST, "",
        "Comma-separated MX host names (or ``*.example.com`` patterns) listed in the MTA-STS "
        "policy; empty: HOSTNAME, the name the published MX records point at.", "mtasts"),
    Key("TLSRPT_RUA", STR, "",
        "Where other servers send their daily TLS reports about mail to your domains: the "
        "rua of the published _smtp._tls record (RFC 8460 §3), a mailto: or https: URI. "
        "Empty: mailto:postmaster@<domain>; off: no record is suggested.", "mtasts"),
    Key("MTA_STS_OUTBOUND", BOOL, "true",
        "Fetch, cache and obey the MTA-STS policies of recipient domains: under enforce, "
        "mail waits in the queue rather than going to an MX whose name is not in the "
        "policy or whose certificate does not verify.", "mtasts"),
    Key("MTA_STS_CA_FILE", PATH, "",
        "Extra CA certificates (PEM) trusted for MTA-STS policy servers and MX hosts, "
        "besides the system store (private PKIs and tests).", "mtasts"),
    Key("MTA_STS_HTTPS_PORT", PORT, "443",
        "Port used to fetch recipient domains' MTA-STS policies (443 everywhere but in "
        "test setups).", "mtasts", minimum=1, maximum=65535),
    Key("TLSRPT_SEND", BOOL, "true",
        "Send a daily TLS report (RFC 8460) of our outbound TLS results to each recipient "
        "domain that publishes an _smtp._tls record.", "mtasts"),
    # --- logging ------------------------------------------------------------
    Key("LOG_LEVEL", LOGLEVEL, "info", "debug, info, warn, error or critical.", "logging"),
    Key("LOG_FILE", PATH, "",
        "Write the log to this file (rotated at 10 MB, 10 kept) instead of standard output.",
        "logging"),
])

BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}

ALIASES: dict[str, str] = {alias: k.name for k in KEYS for alias in k.aliases}

# Configuration names passed through to dns-lexicon (TLS_MODE = dns01): LEXICON_<PROVIDER>_<OPTION>.
LEXICON_PREFIX = "LEXICON_"

SECRET_KEYS = frozenset(k.name for k in KEYS if k.kind in (SECRET, SECRETS)) | {
    "RELAY_PASSWORD", "METRICS_TOKEN"}

# Keys the running server applies at once when the admin panel's settings page saves them
# (MailgosendService.apply_config); every other key takes effect at the next start.
LIVE_KEYS = frozenset({
    "LOG_LEVEL", "WEB_RATE_PER_MIN", "ADMIN_RATE_PER_MIN", "METRICS_ALLOW",
    "BRUTE_MAX_TRIES", "BRUTE_ACCOUNT_MAX_TRIES", "BRUTE_WINDOW_MIN", "BRUTE_BAN_HOURS",
    "BAN_EXEMPT_IPS", "SPAM_THRESHOLD", "SPAM_CHECK_SPF", "SPAM_CHECK_DKIM",
    "SPAM_CHECK_DMARC", "DNSBL_ZONES", "DNSBL_CHECK_PRIVATE", "BAYES_MIN_TRAINED",
    "BAYES_MAX_POINTS"})


def canonical_name(name: str) -> Optional[str]:
    """The canonical key for a name or alias, or None when unknown."""
    upper = name.strip().upper()
    if upper in BY_NAME:
        return upper
    return ALIASES.get(upper)
