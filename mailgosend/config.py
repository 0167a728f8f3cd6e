"""app_config.conf: load, first-run generation, appending missing keys,
MAILGO_<KEY> environment overrides, and validation (DESIGN.md §8).

This is the only module that reads the configuration file or the
environment.  Everything else receives the immutable :class:`Config` it
returns, so a test can build one in memory and two servers can run in one
process with different settings.
"""

from __future__ import annotations

import datetime
import difflib
import ipaddress
import os
import re
import stat
import tempfile
import textwrap
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional

from mailgosend import __version__
from mailgosend import config_keys as K
from mailgosend.auth.bruteforce import parse_networks
from mailgosend.domains import DomainError, normalise_domain

ENV_PREFIX = "MAILGO_"
# MAILGO_ variables that are read elsewhere and are not configuration keys.
ENV_NOT_KEYS = frozenset({"MAILGO_CONFIG", "MAILGO_TEST_PG_DSN"})
PROFILES = ("standard", "local")

_SIZE = re.compile(r"^(\d+)\s*([kmg]?)b?$", re.IGNORECASE)
# Names of twisted.logger.LogLevel (log.py converts); kept as text so that loading the
# configuration does not import Twisted (the CLI starts faster).
_LOG_LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "warning": "warn",
               "error": "error", "critical": "critical"}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class ConfigError(Exception):
    """The configuration cannot be used; each problem names its key."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Listener:
    """Where one service listens, as the configuration says."""

    name: str
    enabled: bool
    port: int
    bind: str

    @property
    def active(self) -> bool:
        return self.enabled and self.port != 0


@dataclass(frozen=True)
class Config:
    """Typed, immutable settings.  Paths are absolute; secrets are bytes."""

    path: str
    values: Mapping[str, Any]
    profile: str = "standard"
    warnings: tuple[str, ...] = ()
    appended: tuple[str, ...] = field(default=())
    # True when this load generated the file, with a new ENCRYPTION_KEY (see new_file_notice).
    created: bool = False
    # The MAILGO_<KEY> variables that were applied (name -> value): they win over the file,
    # also when the settings page rewrites it (edit_file validates with them).
    overrides: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def listener(self, service: str) -> Listener:
        service = service.upper()
        bind = self.values[f"{service}_BIND"] or self.values["BIND_ADDRESS"]
        return Listener(service.lower(), self.values[f"{service}_ENABLED"],
                        self.values[f"{service}_PORT"], bind)

    def bind_addresses(self) -> tuple[str, ...]:
        """The distinct addresses the active listeners bind to, in SERVICES order."""
        found: list[str] = []
        for name, *_ in K.SERVICES:
            listener = self.listener(name)
            if listener.active and listener.bind not in found:
                found.append(listener.bind)
        return tuple(found)

    def replace(self, **changes: Any) -> "Config":
        """A copy with some values changed (tests and tools); not re-validated."""
        values = dict(self.values)
        values.update(changes)
        return Config(self.path, MappingProxyType(values), self.profile, self.warnings,
                      self.appended, self.created, self.overrides)


def new_file_notice(config: Config) -> str:
    """What the operator must hear once, when the file was generated: back up the new key."""
    return (f"NEW ENCRYPTION_KEY: {config.path} was generated with a new random "
            f"ENCRYPTION_KEY (profile {config.profile}). Every stored message is encrypted "
            f"with keys derived from it: copy {config.path} (or the key) somewhere safe now; "
            "without it stored mail cannot be read.")


def settings_origin(config: Config) -> str:
    """Where the listener settings come from, for errors about ports and addresses."""
    return (f"settings from {config.path}, generated with PROFILE = {config.profile}; "
            "--profile only chooses the defaults of a new file")


# --- value parsers: each returns the typed value or raises ValueError(reason) ----

def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("must be true or false (also yes/no, on/off, 1/0)")


def parse_size(text: str) -> int:
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError("must be a number of bytes, optionally with K, M or G (e.g. 50M)")
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[
        match.group(2).lower()]


def parse_hostname(text: str) -> str:
    """A host or domain name in the server's one canonical form (mailgosend.domains)."""
    try:
        return normalise_domain(text)
    except DomainError:
        raise ValueError("must be a valid DNS name such as mail.example.com") from None


def parse_hostport(text: str, default_port: Optional[int] = None) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("has an unclosed '['")
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError("must be host, host:port or [IPv6]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise ValueError("must name a host")
    if ":" not in host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            parse_hostname(host)
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError("has a port that is not a number from 1 to 65535")
        return host, int(port_text)
    if default_port is None:
        raise ValueError("must include a port (host:port)")
    return host, default_port


def _parse_secret(text: str) -> bytes:
    text = text.strip()
    if len(text) != 64 or not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise ValueError(f"must be 64 hexadecimal characters (32 bytes); got {len(text)} "
                         "characters (generate one with: python3 -c "
                         "'import secrets; print(secrets.token_hex(32))')")
    return bytes.fromhex(text)


def _parse_value(key: K.Key, raw: str, base_dir: str, data_dir: Optional[str]) -> Any:
    text = raw.strip()
    low = text.lower()
    kind = key.kind
    if kind == K.STR:
        return text
    if kind in (K.INT, K.PORT, K.FLOAT):
        try:
            number: float = float(text) if kind == K.FLOAT else int(text)
        except ValueError:
            what = "a number" if kind == K.FLOAT else "a whole number"
            if kind == K.PORT:
                what = "a port number from 0 to 65535"
            raise ValueError(f"must be {what}") from None
        lo = key.minimum if key.minimum is not None else (0 if kind == K.PORT else None)
        hi = key.maximum if key.maximum is not None else (65535 if kind == K.PORT else None)
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            what = "a port number" if kind == K.PORT else "a number"
            raise ValueError(f"must be {what} from {_fmt(lo)} to {_fmt(hi)}")
        return number
    if kind == K.BOOL:
        return parse_bool(text)
    if kind == K.SIZE:
        size = parse_size(text)
        if key.minimum is not None and size < key.minimum:
            raise ValueError(f"must be at least {_fmt(key.minimum)} bytes")
        return size
    if kind == K.SECRET:
        return _parse_secret(text)
    if kind == K.SECRETS:
        return tuple(_parse_secret(part) for part in text.split(",") if part.strip())
    if kind == K.HOSTNAME:
        return parse_hostname(text)
    if kind == K.DOMAIN:
        return parse_hostname(text)
    if kind == K.ADDRESS:
        if not text:
            if key.name == "BIND_ADDRESS":
                raise ValueError("must be an IP address such as 0.0.0.0, :: or 127.0.0.1")
            return ""
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise ValueError("must be an IP address such as 0.0.0.0, :: or 127.0.0.1 "
                             "(not a host name)") from None
    if kind == K.NAMESERVER:
        if text:
            from mailgosend.mailauth.resolver import parse_nameserver

            parse_nameserver(text)  # the same rule the resolver applies (an IP, optional port)
        return text
    if kind == K.HOSTPORT:
        return parse_hostport(text, 25) if text else None
    if kind in (K.PATH, K.FILE):
        if not text:
            return ""
        base = data_dir if key.name in ("DB_PATH", "STORAGE_PATH") and data_dir else base_dir
        return os.path.normpath(os.path.join(base, os.path.expanduser(text)))
    if kind == K.CHOICE:
        value = dict(key.value_aliases).get(low, low)
        if value not in key.choices:
            raise ValueError("must be one of: " + ", ".join(key.choices))
        return value
    if kind == K.INTLIST:
        try:
            items = tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise ValueError("must be comma-separated whole numbers, e.g. 5,10,30") from None
        if not items or any(i <= 0 for i in items):
            raise ValueError("must list at least one positive number, e.g. 5,10,30")
        return items
    if kind == K.LIST:
        names = tuple(part.strip() for part in text.split(",") if part.strip())
        if key.choices:  # a list of names from a fixed set (BAN_SCOPE)
            names = tuple(name.lower() for name in names)
            unknown = [name for name in names if name not in key.choices]
            if unknown:
                raise ValueError(f"unknown {', '.join(unknown)}: each item must be one of: "
                                 + ", ".join(key.choices))
        return names
    if kind == K.LOGLEVEL:
        if low not in _LOG_LEVELS:
            raise ValueError("must be one of: debug, info, warn, error, critical")
        return _LOG_LEVELS[low]
    raise AssertionError(f"unknown key kind {kind}")


def _fmt(number: Optional[float]) -> str:
    if number is None:
        return "any"
    return str(int(number)) if float(number).is_integer() else str(number)


# --- the file --------------------------------------------------------------

@dataclass
class _Entry:
    value: str
    where: str          # "app_config.conf line 12" or "environment MAILGO_X"
    spelled: str        # the name as written (may be an alias)


def _read_file(path: str, problems: list[str]) -> dict[str, _Entry]:
    with open(path, encoding="utf-8") as handle:
        return _parse_lines(handle, os.path.basename(path), problems)


def _parse_lines(lines: Iterable[str], file_name: str, problems: list[str]
                 ) -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{file_name} line {number}"
        if "=" not in stripped:
            first_word = stripped.split()[0]
            if K.canonical_name(first_word) in K.SECRET_KEYS:
                shown = f"{first_word} (value hidden)"
            else:
                shown = repr(stripped[:60])
            problems.append(f"{where}: expected KEY = value, found {shown}")
            continue
        name, value = (part.strip() for part in stripped.split("=", 1))
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        canonical = K.canonical_name(name)
        if canonical is None and name.upper().startswith(K.LEXICON_PREFIX):
            # A DNS provider's credential for dns-lexicon (TLS_MODE = dns01): its names
            # depend on the provider, so they are passed through, never listed as keys.
            canonical = name.upper()
        if canonical is None:
            problems.append(f"{where}: unknown key {name}" + _suggest(name))
            continue
        if canonical in entries:
            first = entries[canonical]
            also = f"also as {first.spelled}" if first.spelled != name else "also"
            problems.append(f"{where}: {name} is set twice ({also} on {first.where}); "
                            "keep one")
            continue
        entries[canonical] = _Entry(value, where, name)
    return entries


def missing_keys(path: str) -> list[str]:
    """Keys the file does not set (their defaults apply until they are appended)."""
    entries = _read_file(path, [])
    return [key.name for key in K.KEYS if key.name not in entries]


def _suggest(name: str) -> str:
    names = list(K.BY_NAME) + list(K.ALIASES)
    close = difflib.get_close_matches(name.upper(), names, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _key_block(key: K.Key, value: str, profile: str = "standard") -> str:
    doc = key.doc
    if key.pending:
        doc += f" [{key.pending}]"
    lines = textwrap.wrap(doc, 76)
    extra = []
    if key.choices:
        extra.append("one of: " + ", ".join(key.choices))
    if key.aliases:
        extra.append("also accepted as: " + ", ".join(key.aliases))
    if key.generate is None:
        default = key.default_for(profile)
        extra.append(f"default: {default if default else '(empty)'}")
    if extra:
        lines.append("(" + "; ".join(extra) + ")")
    return "".join(f"# {line}\n" for line in lines) + f"{key.name} = {value}\n"


def _initial_value(key: K.Key, profile: str) -> str:
    return key.generate() if key.generate is not None else key.default_for(profile)


def render_file(profile: str = "standard") -> str:
    """The text of a new configuration file, every key documented."""
    today = datetime.date.today().isoformat()
    out = [
        f"# mailgosend configuration, generated {today} by mailgosend {__version__}"
        + (f" (profile: {profile})" if profile != "standard" else "") + ".\n",
        "# Format: KEY = value, one per line; lines starting with # are comments.\n",
        "# Every key can be overridden by the environment variable MAILGO_<KEY>.\n",
        "# Check this file with: mailgosend --config <this file> config check\n",
        "# Keep it private (mode 0600): it holds the key to all stored mail.\n",
    ]
    for section, title in K.SECTIONS:
        out.append(f"\n# ==== {title} ====\n")
        for key in K.KEYS:
            if key.section == section:
                out.append("\n" + _key_block(key, _initial_value(key, profile), profile))
    return "".join(out)


def _create_private(path: str, text: str) -> None:
    """Create the file with mode 0600 from the start (never world-readable, even briefly)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _append_missing(path: str, missing: list[K.Key], profile: str,
                    env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Append the missing keys without touching the user's lines."""
    blocks = []
    appended = []
    for key in missing:
        if key.generate is not None and _env_name(key, env):
            continue  # supplied by the environment: do not invent a second secret
        blocks.append("\n" + _key_block(key, _initial_value(key, profile), profile))
        appended.append(key.name)
    if not blocks:
        return [], []
    today = datetime.date.today().isoformat()
    text = (f"\n# ==== Added {today} by mailgosend {__version__}: keys missing from this "
            "file ====\n" + "".join(blocks))
    try:
        with open(path, "r+", encoding="utf-8") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() and not _ends_with_newline(path):
                handle.write("\n")
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        return [], [f"could not append {', '.join(appended)} to {path} ({exc.strerror}); "
                    "using their defaults"]
    return appended, []


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _env_name(key: K.Key, env: Mapping[str, str]) -> Optional[str]:
    for name in (key.name, *key.aliases):
        if ENV_PREFIX + name in env:
            return ENV_PREFIX + name
    return None


def load(path: str, *, profile: Optional[str] = None,
         environ: Optional[Mapping[str, str]] = None, create: bool = True) -> Config:
    """Read (creating or completing it first) and validate the configuration.

    ``profile`` (else ``MAILGO_PROFILE``, else standard) chooses the defaults
    written into a new file; an existing file keeps the PROFILE it was
    generated with, so keys appended later get the same kind of defaults, and
    a different ``profile`` asked for is reported in the warnings.  Raises ConfigError listing every problem,
    each naming its key.
    """
    env = os.environ if environ is None else environ
    asked = profile
    given = "profile"
    if profile is None:
        profile = env.get(ENV_PREFIX + "PROFILE", "standard").strip().lower()
        given = f"{ENV_PREFIX}PROFILE"
    if profile not in PROFILES:
        raise ConfigError([f"unknown {given} {profile!r}: use one of {', '.join(PROFILES)}"])
    path = os.path.abspath(path)
    warnings: list[str] = []
    created = False
    if not os.path.exists(path):
        if not create:
            raise ConfigError([f"{path}: no such file (run the server once to generate it)"])
        try:
            _create_private(path, render_file(profile))
        except OSError as exc:
            raise ConfigError([f"{path}: cannot create the configuration file: "
                               f"{exc.strerror}"]) from None
        created = True
    elif os.stat(path).st_mode & 0o077:
        warnings.append(f"{path} is readable by other users; it holds ENCRYPTION_KEY: "
                        f"chmod 600 {path}")
    problems: list[str] = []
    try:
        entries = _read_file(path, problems)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the configuration file: {exc}"]) from None
    appended: list[str] = []
    if "PROFILE" in entries and entries["PROFILE"].value.strip().lower() in PROFILES:
        profile = entries["PROFILE"].value.strip().lower()
    if asked is not None and asked != profile:
        warnings.append(_profile_mismatch(path, asked, profile))
    warnings.extend(_unknown_environment(env))
    missing = [key for key in K.KEYS if key.name not in entries]
    if missing and create and not problems:
        appended, append_warnings = _append_missing(path, missing, profile, env)
        warnings.extend(append_warnings)
        if appended:
            entries = _read_file(path, problems)
    overrides = {}
    for key in K.KEYS:
        env_name = _env_name(key, env)
        if env_name:
            entries[key.name] = _Entry(env[env_name], "environment", env_name)
            overrides[env_name] = env[env_name]
    return _validate(path, entries, profile, warnings, appended, problems, created,
                     overrides)


def _profile_mismatch(path: str, asked: str, profile: str) -> str:
    """--profile names the defaults of a new file only; say so, and how to switch."""
    example = K.BY_NAME["SMTP_PORT"].default_for(asked)
    return (f"--profile {asked} is ignored: {path} exists and was generated with "
            f"PROFILE = {profile}, and its values decide (ports, BIND_ADDRESS...). To use the "
            f"{asked} profile, edit the listener keys in the file (e.g. SMTP_PORT = {example}, "
            f"BIND_ADDRESS = {K.BY_NAME['BIND_ADDRESS'].default_for(asked)}) and set PROFILE = "
            f"{asked}; or, if no mail is stored yet, move the file and its DATA_DIR away and "
            f"start again with --profile {asked}")


def _unknown_environment(env: Mapping[str, str]) -> list[str]:
    """MAILGO_ variables that name no key: ignored, but said, as in the file."""
    found = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_KEYS:
            continue
        key = name[len(ENV_PREFIX):]
        if key != key.upper() or K.canonical_name(key) is None:
            found.append(f"environment {name}: unknown key {key}{_suggest(key)}; the variable "
                         "is ignored")
    return found


def _validate(path: str, entries: Mapping[str, _Entry], profile: str, warnings: list[str],
              appended: list[str], problems: list[str], created: bool = False,
              overrides: Optional[Mapping[str, str]] = None) -> Config:
    """Check every value; syntax problems found while reading come first in the report."""
    base_dir = os.path.dirname(path)
    values: dict[str, Any] = {}

    def convert(key: K.Key, data_dir: Optional[str]) -> None:
        entry = entries.get(key.name)
        raw = entry.value if entry else key.default_for(profile)
        try:
            values[key.name] = _parse_value(key, raw, base_dir, data_dir)
        except ValueError as exc:
            where = entry.where if entry else "default"
            spelled = entry.spelled if entry else key.name
            shown = "(hidden)" if key.name in K.SECRET_KEYS else repr(raw)
            alias = ""
            if spelled not in (key.name, ENV_PREFIX + key.name):
                alias = f" (sets {key.name})"
            if key.generate is not None and not raw.strip():
                problems.append(f"{where}: {key.name} is empty; it {exc}")
            else:
                problems.append(f"{where}: {spelled}{alias} = {shown}: {exc}")

    convert(K.BY_NAME["DATA_DIR"], None)
    data_dir = values.get("DATA_DIR") or base_dir
    for key in K.KEYS:
        if key.name != "DATA_DIR":
            convert(key, data_dir)
    values["LEXICON_OPTIONS"] = MappingProxyType(
        {name: entry.value for name, entry in entries.items()
         if name.startswith(K.LEXICON_PREFIX)})
    problems.extend(_cross_checks(values, entries))
    if problems:
        raise ConfigError(problems)
    return Config(path, MappingProxyType(values), profile, tuple(warnings), tuple(appended),
                  created, MappingProxyType(dict(overrides or {})))


def _where(entries: Mapping[str, _Entry], name: str) -> str:
    entry = entries.get(name)
    return entry.where if entry else "default"


def _tls_checks(values: Mapping[str, Any], entries: Mapping[str, _Entry]) -> list[str]:
    """TLS_SNI_CERTS pairs and what the ACME modes need (tls/acme.py)."""
    problems: list[str] = []
    mode = values.get("TLS_MODE")
    for item in values.get("TLS_SNI_CERTS") or ():
        cert, colon, key = item.partition(":")
        if not colon or not cert.strip() or not key.strip():
            problems.append(f"{_where(entries, 'TLS_SNI_CERTS')}: TLS_SNI_CERTS: {item!r} must "
                            "be cert.pem:key.pem")
            continue
        for file_path in (cert.strip(), key.strip()):
            if mode != "off" and not (os.path.isfile(file_path) and os.access(file_path, os.R_OK)):
                problems.append(f"{_where(entries, 'TLS_SNI_CERTS')}: TLS_SNI_CERTS: "
                                f"{file_path!r}: not a readable file")
    provider = (values.get("ACME_DNS_PROVIDER") or "").strip().lower()
    if mode == "dns01" and not provider:
        problems.append(f"{_where(entries, 'ACME_DNS_PROVIDER')}: ACME_DNS_PROVIDER is empty but "
                        "TLS_MODE = dns01 needs it: a dns-lexicon provider (e.g. cloudflare) or "
                        "hook")
    if mode == "dns01" and provider == "hook" and not values.get("ACME_DNS_HOOK"):
        problems.append(f"{_where(entries, 'ACME_DNS_HOOK')}: ACME_DNS_HOOK is empty but "
                        "ACME_DNS_PROVIDER = hook needs the program to run")
    if mode == "http01" and (not values.get("HTTP_ENABLED") or not values.get("HTTP_PORT")):
        problems.append(f"{_where(entries, 'HTTP_PORT')}: TLS_MODE = http01 needs HTTP_PORT "
                        "(the CA fetches its challenge there; 80 from the internet), or use "
                        "TLS_MODE = dns01")
    if mode == "http01":
        wildcards = [n for n in values.get("ACME_DOMAINS") or () if n.strip().startswith("*")]
        if wildcards:
            problems.append(f"{_where(entries, 'ACME_DOMAINS')}: ACME_DOMAINS: "
                            f"{', '.join(wildcards)}: wildcard names can only be proven through "
                            "DNS; use TLS_MODE = dns01")
    return problems


def _cross_checks(values: Mapping[str, Any], entries: Mapping[str, _Entry]) -> list[str]:
    """Rules between keys; a rule whose inputs already failed to parse is skipped."""
    problems: list[str] = []
    needed = ("TLS_MODE", "TLS_CERT", "TLS_KEY", "DB_DRIVER", "DB_DSN", "ENCRYPTION_KEY",
              "ENCRYPTION_KEYS_OLD", "BIND_ADDRESS")
    if any(name not in values for name in needed):
        values = {**{name: None for name in needed}, **values}
    if values["TLS_MODE"] == "file":
        for name in ("TLS_CERT", "TLS_KEY"):
            file_path = values[name]
            if not file_path:
                problems.append(f"{_where(entries, name)}: {name} is empty but TLS_MODE = file "
                                f"needs it (or set TLS_MODE = off)")
            elif not os.path.isfile(file_path) or not os.access(file_path, os.R_OK):
                problems.append(f"{_where(entries, name)}: {name} = {file_path!r}: not a "
                                "readable file")
    for group in K.TLS_GROUPS:
        pair = [f"{group}_TLS_CERT", f"{group}_TLS_KEY"]
        given = [name for name in pair if values.get(name)]
        if given and len(given) == 1:
            missing = next(name for name in pair if name not in given)
            problems.append(f"{_where(entries, given[0])}: {given[0]} is set but {missing} is "
                            "not; set both or neither")
        if given and values["TLS_MODE"] != "off":
            for name in given:
                file_path = values[name]
                if not os.path.isfile(file_path) or not os.access(file_path, os.R_OK):
                    problems.append(f"{_where(entries, name)}: {name} = {file_path!r}: not a "
                                    "readable file")
    problems.extend(_tls_checks(values, entries))
    for name in ("TRUSTED_PROXIES", "METRICS_ALLOW"):
        try:
            parse_networks(values.get(name) or ())
        except ValueError as exc:
            problems.append(f"{_where(entries, name)}: {name}: {exc}")
    token = values.get("METRICS_TOKEN") or ""
    if token and (len(token) < 32 or any(c.isspace() for c in token)):
        problems.append(f"{_where(entries, 'METRICS_TOKEN')}: METRICS_TOKEN must be at "
                        "least 32 characters without spaces (e.g. python3 -c 'import "
                        "secrets; print(secrets.token_urlsafe(32))')")
    for item in values.get("WEB_HOSTNAMES") or ():
        try:
            parse_hostname(item)
        except ValueError as exc:
            problems.append(f"{_where(entries, 'WEB_HOSTNAMES')}: WEB_HOSTNAMES: {item!r}: "
                            f"{exc}")
    if values["DB_DRIVER"] == "postgres" and not values["DB_DSN"]:
        problems.append(f"{_where(entries, 'DB_DSN')}: DB_DSN is empty but DB_DRIVER = "
                        "postgres needs it, e.g. postgresql://mailgosend@127.0.0.1/mailgosend")
    if values["ENCRYPTION_KEY"] and values["ENCRYPTION_KEY"] in (values["ENCRYPTION_KEYS_OLD"] or ()):
        problems.append(f"{_where(entries, 'ENCRYPTION_KEYS_OLD')}: ENCRYPTION_KEYS_OLD "
                        "contains the current ENCRYPTION_KEY")
    bound: dict[tuple[str, int], str] = {}
    for name, *_ in K.SERVICES:
        port = values.get(f"{name}_PORT")
        if not values.get(f"{name}_ENABLED") or not port or f"{name}_BIND" not in values:
            continue
        bind = values[f"{name}_BIND"] or values["BIND_ADDRESS"] or "0.0.0.0"
        for (other_bind, other_port), other in bound.items():
            if other_port == port and _overlap(bind, other_bind):
                problems.append(f"{_where(entries, name + '_PORT')}: {name}_PORT = {port} is "
                                f"also {other}_PORT; give each service its own port")
        bound[(bind, port)] = name
    return problems


def _overlap(a: str, b: str) -> bool:
    wildcard = {"0.0.0.0", "::"}
    return a == b or a in wildcard or b in wildcard


# --- the one writer: the admin panel's settings page ---------------------------------------

_ASSIGNMENT = re.compile(r"^(\s*)([A-Za-z0-9_]+)(\s*=\s*)(.*?)(\s*)$")


def file_values(path: str) -> dict[str, str]:
    """The raw ``KEY = value`` texts of the file, by canonical name (the settings page)."""
    return {name: entry.value for name, entry in _read_file(path, []).items()}


def environment_overrides(config: Config) -> dict[str, str]:
    """Keys set by a MAILGO_ variable at load, with the variable's name: not the file."""
    env = config.overrides
    found = {}
    for key in K.KEYS:
        name = _env_name(key, env)
        if name:
            found[key.name] = name
    return found


def editable(name: str) -> bool:
    """Keys the settings page may change: every key but the secrets."""
    return name in K.BY_NAME and name not in K.SECRET_KEYS


def edit_file(config: Config, changes: Mapping[str, str]) -> Config:
    """Write new values for some keys into ``config.path`` and return the new Config.

    Each value is checked exactly as at start-up (the same parsers and cross-checks, on the
    whole file as it would be); when anything is wrong a ConfigError names the key and the
    file is not touched.  Otherwise only the ``KEY = value`` line of each changed key is
    rewritten in place (its spelling, an alias, and every comment, blank line and the order
    of the file are kept; a key missing from the file is appended with its documentation),
    and the new file replaces the old one atomically with the same permissions.  A key set
    by a MAILGO_ environment variable is refused: the file's value would not be used (the
    variables are those the running Config was loaded with, and they still win).
    """
    env = config.overrides
    problems: list[str] = []
    wanted: dict[str, str] = {}
    for name, value in changes.items():
        canonical = K.canonical_name(name)
        if canonical is None or not editable(canonical):
            problems.append(f"{name}: not a key that can be edited here")
            continue
        if "\n" in value or "\r" in value:
            problems.append(f"{canonical}: the value must be on one line")
            continue
        if _env_name(K.BY_NAME[canonical], env):
            problems.append(f"{canonical} is set by the environment variable "
                            f"{_env_name(K.BY_NAME[canonical], env)}, which wins over the "
                            "file; change it there")
            continue
        wanted[canonical] = value.strip()
    if problems:
        raise ConfigError(problems)
    path = config.path
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines(keepends=True)
    done: set[str] = set()
    for index, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ASSIGNMENT.match(line.rstrip("\r\n"))
        if match is None:
            continue
        canonical = K.canonical_name(match.group(2))
        if canonical in wanted and canonical not in done:
            ending = line[len(line.rstrip("\r\n")):] or "\n"
            lines[index] = (match.group(1) + match.group(2) + match.group(3)
                            + wanted[canonical] + ending)
            done.add(canonical)
    missing = [name for name in wanted if name not in done]
    if missing:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        for name in missing:
            lines.append("\n" + _key_block(K.BY_NAME[name], wanted[name], config.profile))
    text = "".join(lines)
    entries = _parse_lines(text.splitlines(keepends=True), os.path.basename(path), problems)
    for key in K.KEYS:
        env_name = _env_name(key, env)
        if env_name:
            entries[key.name] = _Entry(env[env_name], "environment", env_name)
    new = _validate(path, entries, config.profile, list(config.warnings), [], problems,
                    overrides=env)
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(prefix=".app_config.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return new
