# -*- test-case-name: tests.test_web_passkeys -*-
"""Passkeys and security keys (W3C WebAuthn Level 3) as a sign-in factor, with the Duo Labs
``webauthn`` library doing the ceremony checks (§7.1 registration, §7.2 authentication).

Implementation notes:

1. The Relying Party ID is the host name the browser used (one of WEB_HOSTNAMES/HOSTNAME,
   already checked by the Request), never an IP literal: browsers refuse those (§5.1.3).
   The expected origin is the page's own origin; both are stored with the challenge.
2. A challenge is 32 random bytes stored server-side for the session that asked, valid
   CHALLENGE_SECONDS, and deleted when an answer is checked (store/passkeys.py), so a signed
   answer cannot be replayed (§13.4.3).
3. User verification is required (PIN or biometrics on the authenticator), so a passkey is
   something the user has and knows or is.
4. The signature counter is stored after each use; the library refuses a counter that did
   not grow when either side is non-zero, a sign of a cloned authenticator (§6.1.1).
5. A refused answer counts as a failed login toward bans, like a wrong TOTP code.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional, Sequence

import webauthn
from twisted.internet import defer
from twisted.logger import Logger
from webauthn.helpers import base64url_to_bytes, parse_client_data_json
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidCBORData
from webauthn.helpers.exceptions import InvalidRegistrationResponse, InvalidJSONStructure
from webauthn.helpers.structs import (AuthenticatorSelectionCriteria,
                                      AuthenticatorTransport, PublicKeyCredentialDescriptor,
                                      ResidentKeyRequirement, UserVerificationRequirement)

from mailgosend.auth.checker import record_failure
from mailgosend.db.runner import DatabaseRunner
from mailgosend.store import passkeys as store
from mailgosend.store.accounts import User

__all__ = ["CHALLENGE_SECONDS", "NewPasskey", "PasskeyRefused", "PasskeyStep",
           "authentication_options", "challenge_of", "registration_options",
           "verify_authentication", "verify_registration"]

log = Logger()

CHALLENGE_SECONDS = 300
RP_NAME = "mailgosend"

_LIBRARY_ERRORS = (InvalidRegistrationResponse, InvalidAuthenticationResponse,
                   InvalidJSONStructure, InvalidCBORData, ValueError, KeyError, TypeError)


class PasskeyRefused(Exception):
    """The browser's answer does not verify; the message is for logs, never shown."""


@dataclass(frozen=True)
class NewPasskey:
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]


def new_challenge() -> bytes:
    return secrets.token_bytes(32)


def registration_options(challenge: bytes, rp_id: str, user: User,
                         existing: Sequence[store.Passkey]) -> str:
    """The JSON for ``navigator.credentials.create`` (base64url fields, §5.4)."""
    options = webauthn.generate_registration_options(
        rp_id=rp_id, rp_name=RP_NAME, user_id=str(user.id).encode(), user_name=user.email,
        user_display_name=user.email, challenge=challenge, timeout=CHALLENGE_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED),
        # §5.4.3: the authenticator refuses to register a second credential for the account.
        exclude_credentials=[_descriptor(p) for p in existing])
    return webauthn.options_to_json(options)


def authentication_options(challenge: bytes, rp_id: str,
                           allowed: Sequence[store.Passkey]) -> str:
    """The JSON for ``navigator.credentials.get`` (§5.5), limited to the user's passkeys."""
    options = webauthn.generate_authentication_options(
        rp_id=rp_id, challenge=challenge, timeout=CHALLENGE_SECONDS * 1000,
        allow_credentials=[_descriptor(p) for p in allowed],
        user_verification=UserVerificationRequirement.REQUIRED)
    return webauthn.options_to_json(options)


def _descriptor(passkey: store.Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in passkey.transports:
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(id=passkey.credential_id,
                                         transports=transports or None)


def challenge_of(credential: dict[str, Any]) -> bytes:
    """The challenge the browser says it signed (found in clientDataJSON, §5.8.1); the
    signature check comes later, against the challenge we stored."""
    try:
        client_data = base64url_to_bytes(credential["response"]["clientDataJSON"])
        return bytes(parse_client_data_json(client_data).challenge)
    except _LIBRARY_ERRORS as exc:
        raise PasskeyRefused(f"unreadable client data: {exc}") from None


def credential_id_of(credential: dict[str, Any]) -> bytes:
    try:
        return base64url_to_bytes(credential["rawId"])
    except _LIBRARY_ERRORS as exc:
        raise PasskeyRefused(f"unreadable credential id: {exc}") from None


def verify_registration(credential: dict[str, Any], challenge: bytes, rp_id: str,
                        origin: str) -> NewPasskey:
    try:
        verified = webauthn.verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp_id,
            expected_origin=origin, require_user_verification=True)
    except _LIBRARY_ERRORS as exc:
        raise PasskeyRefused(str(exc)) from None
    transports = credential.get("response", {}).get("transports") or []
    return NewPasskey(bytes(verified.credential_id), bytes(verified.credential_public_key),
                      verified.sign_count,
                      tuple(str(t) for t in transports if isinstance(t, str))[:8])


def verify_authentication(credential: dict[str, Any], challenge: bytes, rp_id: str,
                          origin: str, passkey: store.Passkey) -> int:
    """The authenticator's new signature counter, or PasskeyRefused."""
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp_id,
            expected_origin=origin, credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=True)
    except _LIBRARY_ERRORS as exc:
        raise PasskeyRefused(str(exc)) from None
    return int(verified.new_sign_count)


def parse_credential(text: str) -> dict[str, Any]:
    """The browser's PublicKeyCredential as JSON (``toJSON()``, §5.1.8), or PasskeyRefused."""
    try:
        value = json.loads(text)
    except ValueError:
        raise PasskeyRefused("the credential is not JSON") from None
    if not isinstance(value, dict):
        raise PasskeyRefused("the credential is not a JSON object")
    return value


class PasskeyStep:
    """The sign-in step "Use your passkey" (web/login.py ``SecondStep``): required once the
    user has a passkey; the page's script puts the signed answer in the ``credential`` field.
    """

    name = "passkey"
    template = "account/passkey_step.html"

    def __init__(self, runner: DatabaseRunner, clock: Any, security: Any = None,
                 bans: Any = None, service: str = "web") -> None:
        self._runner = runner
        self._service = service
        self._clock = clock
        self._security = security
        self._bans = bans

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), timezone.utc)

    def required(self, user: User) -> "defer.Deferred[bool]":
        return self._runner.read(store.has_any, user.id)

    @defer.inlineCallbacks
    def begin(self, user: User, session_id: int, rp_id: str, origin: str) -> Any:
        """The options JSON for this session's sign-in ceremony (a fresh challenge)."""
        allowed = yield self._runner.read(store.list_for, user.id, rp_id)
        challenge = new_challenge()
        now = self.now()
        yield self._runner.write(store.put_challenge, challenge, session_id, user.id, "login",
                                 rp_id, origin, now + timedelta(seconds=CHALLENGE_SECONDS),
                                 now)
        return authentication_options(challenge, rp_id, allowed)

    @defer.inlineCallbacks
    def verify(self, user: User, form: dict[str, str], client_ip: str) -> Any:
        text = form.get("credential", "")
        if not text:
            return False        # the form sent without the script: nothing was tried
        try:
            yield self._check(user, text)
        except PasskeyRefused as exc:
            log.info("web: passkey sign-in of {user} from {ip} refused: {why}",
                          user=user.email, ip=client_ip, why=str(exc))
            if self._security is not None and self._bans is not None:
                yield record_failure(self._security, self._bans, client_ip, user.email,
                                     self._service, "passkey not verified")
            return False
        return True

    @defer.inlineCallbacks
    def _check(self, user: User, text: str) -> Any:
        credential = parse_credential(text)
        challenge = challenge_of(credential)
        now = self.now()
        stored = yield self._runner.write(store.take_challenge, challenge, "login", now,
                                          user_id=user.id)
        if stored is None:
            raise PasskeyRefused("unknown, expired or already used challenge")
        passkey = yield self._runner.read(store.find, user.id, credential_id_of(credential))
        if passkey is None:
            raise PasskeyRefused("not one of this user's passkeys")
        count = verify_authentication(credential, challenge, stored.rp_id, stored.origin,
                                      passkey)
        yield self._runner.write(store.record_use, passkey.id, count, now)


def rp_id_for(host: str) -> Optional[str]:
    """The RP ID for a page served under ``host``, or None for an IP literal (§5.1.3)."""
    name = host.strip().lower().rstrip(".")
    if not name:
        return None
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    return None
