# -*- test-case-name: tests.test_admin_dash_tls -*-
"""A certificate and key uploaded on the admin panel's TLS page: checked, then installed
over the TLS_CERT/TLS_KEY files (TLS_MODE = file), atomically.

Refused, with nothing written, when: TLS_MODE is not ``file``; either part is not PEM;
the key does not belong to the first certificate; the chain is out of order (leaf first,
then each issuer); the certificate is expired or not yet valid; its names do not cover
HOSTNAME.  The checks are tls/context.py's (the same as at start-up), run on temporary
files beside the targets, which then replace the targets with ``os.replace``; the previous
files are kept as ``<name>.previous``.  Runs in a worker thread (file I/O, key checks).
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from mailgosend.tls import sni
from mailgosend.tls.context import TLSConfigError, load_certificate_pair
from mailgosend.tls.inventory import _common_name

MAX_PEM = 1 << 20


class UploadError(Exception):
    """Why an upload was refused; ``field`` is the form field at fault."""

    def __init__(self, message: str, field: str = "certificate") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Checked:
    names: tuple[str, ...]
    issuer: str
    not_after: datetime.datetime


def _write_temporary(target: str, data: bytes, mode: int) -> str:
    """A new file beside ``target`` (same file system: os.replace is atomic)."""
    fd, path = tempfile.mkstemp(prefix=".upload-", dir=os.path.dirname(target) or ".")
    os.fchmod(fd, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def _plain(error: TLSConfigError, cert_tmp: str, key_tmp: str) -> UploadError:
    """A start-up message about files, said about the uploaded parts instead."""
    problem = error.problem.replace(key_tmp, "(the uploaded key)").replace(
        cert_tmp, "(the uploaded certificate)")
    field = "key" if error.path == key_tmp else "certificate"
    what = "The private key" if field == "key" else "The certificate"
    if "does not match private key" in problem:
        return UploadError("The certificate does not match the private key: the key "
                           "belongs to another certificate.", "key")
    if "must start with the certificate of private key" in problem:
        return UploadError("The certificates are in the wrong order: the server's own "
                           "certificate (the one matching the key) must come first, then "
                           "each issuer.", "certificate")
    return UploadError(f"{what} was refused: {problem}.", field)


def check_files(cert_path: str, key_path: str, hostname: str, now: datetime.datetime,
                shown: tuple[str, str] = ("", "")) -> Checked:
    """Every check of an upload on two files; UploadError when one fails."""
    try:
        loaded = load_certificate_pair(cert_path, key_path, now)
    except TLSConfigError as exc:
        raise _plain(exc, cert_path, key_path) from None
    for warning in loaded.warnings:
        if "did not issue certificate" in warning:
            raise UploadError("The certificates are in the wrong order: after the server's "
                              "own certificate, each certificate must be the issuer of the "
                              "one before it.", "certificate")
    leaf = loaded.chain[0]
    if leaf.not_valid_after_utc <= now:
        raise UploadError(f"The certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}.",
                          "certificate")
    if leaf.not_valid_before_utc > now:
        raise UploadError("The certificate is not valid yet (from "
                          f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC).", "certificate")
    if not sni.covers(loaded.hostnames, hostname):
        names = ", ".join(loaded.hostnames) or "none"
        raise UploadError(f"The certificate's names ({names}) do not cover this server's "
                          f"HOSTNAME {hostname}.", "certificate")
    return Checked(loaded.hostnames, _common_name(leaf.issuer), loaded.not_after)


def install(config: Any, cert_pem: bytes, key_pem: bytes, now_seconds: float) -> Checked:
    """Check the upload and install it over TLS_CERT/TLS_KEY (see the module docstring)."""
    if config["TLS_MODE"] != "file":
        raise UploadError(f"TLS_MODE is {config['TLS_MODE']}: an uploaded certificate is "
                          "used with TLS_MODE = file. Set TLS_MODE, TLS_CERT and TLS_KEY on "
                          "the settings page first.", "certificate")
    for data, field, marker in ((cert_pem, "certificate", b"-----BEGIN CERTIFICATE-----"),
                                (key_pem, "key", b"PRIVATE KEY-----")):
        if not data.strip():
            raise UploadError(f"Choose the {field} file (PEM).", field)
        if len(data) > MAX_PEM or marker not in data:
            what = "certificate chain" if field == "certificate" else "private key"
            raise UploadError(f"The {field} file is not a PEM {what}.", field)
    cert_path, key_path = config["TLS_CERT"], config["TLS_KEY"]
    now = datetime.datetime.fromtimestamp(now_seconds, datetime.timezone.utc)
    made = []
    try:
        cert_tmp = _write_temporary(cert_path, cert_pem, 0o644)
        made.append(cert_tmp)
        key_tmp = _write_temporary(key_path, key_pem, 0o600)
        made.append(key_tmp)
        checked = check_files(cert_tmp, key_tmp, config["HOSTNAME"], now)
        for path in (cert_path, key_path):
            if os.path.exists(path):
                shutil.copy2(path, path + ".previous")
        # Key first: a reload between the two sees the old pair refused as mismatched
        # and keeps serving the previous certificates (ServerTLS.reload is all or nothing).
        os.replace(key_tmp, key_path)
        os.replace(cert_tmp, cert_path)
        made.clear()
        return checked
    finally:
        for path in made:
            if os.path.exists(path):
                os.unlink(path)
