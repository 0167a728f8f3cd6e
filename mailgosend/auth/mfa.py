# -*- test-case-name: tests.test_auth_mfa -*-
"""Two-factor authentication with TOTP (RFC 6238): enrolment, verification, disabling.

The rules live here, for the web sign-in, the settings page and the admin port alike; the
codes are auth/totp.py's, the storage store/mfa.py's.  Like mailgosend.admin, every method
takes a SQLAlchemy Connection first and is one transaction (the server runs them with
``DatabaseRunner.write``, tests and the CLI with ``db.sync.run_sync``).

Implementation notes:

1. The secret is sealed with the user's key (KeyRing, purpose "totp", owner the user's uuid,
   context naming the users row), so a copied column opens for nobody else (DESIGN.md §4).
2. Enrolment stores the new secret unconfirmed; MFA is on only once a code from it is
   confirmed, and the 10 recovery codes are returned then, once (stored as keyed hashes).
3. A code is accepted once: the step of each accepted code is stored by a conditional
   UPDATE (store/mfa.py ``accept_step``), so a replay in the same window, even racing on
   another node, is refused.  A recovery code is deleted as it is used.
4. Turning MFA off needs the password and a code.  bcrypt is slow and must not run inside a
   transaction (admin.py note 2): :meth:`SecondFactor.prove_password` runs first, in the
   worker pool, and :meth:`SecondFactor.disable` takes its proof, which is void if the
   password changed in between.
5. Time is the caller's ``now`` (an injected clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional

from sqlalchemy.engine import Connection

from mailgosend import passwords
from mailgosend.auth import totp
from mailgosend.crypto import KeyRing
from mailgosend.store import accounts
from mailgosend.store import mfa as store
from mailgosend.store.accounts import AccountError, User

__all__ = ["Enrolment", "MFAError", "PasswordProof", "SecondFactor", "WrongCode"]

PURPOSE_SECRET = "totp"
PURPOSE_RECOVERY = "recovery"


class MFAError(AccountError):
    """A second-factor request that cannot be carried out; the message is for people."""


class WrongCode(MFAError):
    """Wrong, expired or already used code (one answer for all of them)."""

    def __init__(self) -> None:
        super().__init__("the authentication code is wrong or was already used", "code")


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows: the QR code and the secret as text for typing."""

    secret: str = field(repr=False)
    uri: str = field(repr=False)
    qr_svg: str = field(repr=False)


@dataclass(frozen=True)
class PasswordProof:
    """The account password was checked (by :meth:`SecondFactor.prove_password`)."""

    email: str
    password_hash: str = field(repr=False)


def _context(user: User) -> bytes:
    return f"users:{user.id}:totp_secret".encode()


class SecondFactor:
    """The TOTP rules under one key ring; one per process."""

    def __init__(self, keyring: KeyRing, issuer: str = "mailgosend") -> None:
        self._keyring = keyring
        self._issuer = issuer

    # --- enrolment -------------------------------------------------------------------

    def start_enrolment(self, conn: Connection, email: str) -> Enrolment:
        """A new secret for ``email``, stored unconfirmed; refused while MFA is on."""
        user = accounts.get_user(conn, email)
        if store.state(conn, user.id).enabled:
            raise MFAError("two-factor authentication is already on; turn it off first",
                           "email")
        secret = totp.new_secret()
        sealed = self._keyring.seal(secret.encode("ascii"), purpose=PURPOSE_SECRET,
                                    owner=user.uuid, context=_context(user))
        store.begin_enrolment(conn, user.id, sealed)
        uri = totp.provisioning_uri(secret, user.email, self._issuer)
        return Enrolment(secret, uri, totp.qr_svg(uri))

    def pending_enrolment(self, conn: Connection, email: str) -> Optional[Enrolment]:
        """The enrolment started and not yet confirmed, to show again after a wrong code
        (the app may already hold this secret); None when there is none or MFA is on."""
        user = accounts.get_user(conn, email)
        state = store.state(conn, user.id)
        if state.enabled or state.sealed_secret is None:
            return None
        secret = self._open_secret(user, state.sealed_secret)
        uri = totp.provisioning_uri(secret, user.email, self._issuer)
        return Enrolment(secret, uri, totp.qr_svg(uri))

    def confirm_enrolment(self, conn: Connection, email: str, code: str,
                          now: datetime) -> list[str]:
        """Turn MFA on if ``code`` is right for the pending secret; the recovery codes, to
        be shown once."""
        user = accounts.get_user(conn, email)
        state = store.state(conn, user.id)
        if state.enabled:
            raise MFAError("two-factor authentication is already on", "code")
        if state.sealed_secret is None:
            raise MFAError("no enrolment in progress: start again", "code")
        self._accept_totp(conn, user, state, code, now)
        codes = totp.new_recovery_codes()
        store.enable(conn, user.id, now, [self._recovery_hash(user, c) for c in codes])
        return codes

    # --- use -------------------------------------------------------------------------

    def is_enabled(self, conn: Connection, email: str) -> bool:
        return store.state(conn, accounts.get_user(conn, email).id).enabled

    def verify(self, conn: Connection, email: str, code: str, now: datetime) -> str:
        """Accept a TOTP code or a recovery code once: ``"totp"`` or ``"recovery"``;
        WrongCode otherwise (also when MFA is off: there is nothing to check against)."""
        user = accounts.get_user(conn, email)
        state = store.state(conn, user.id)
        if not state.enabled:
            raise WrongCode()
        recovery = totp.normalize_recovery_code(code)
        if recovery is not None:
            if store.use_recovery_code(conn, user.id, self._recovery_hash(user, recovery)):
                return "recovery"
            raise WrongCode()
        self._accept_totp(conn, user, state, code, now)
        return "totp"

    def recovery_codes_left(self, conn: Connection, email: str) -> int:
        return store.recovery_left(conn, accounts.get_user(conn, email).id)

    def new_recovery_codes(self, conn: Connection, email: str, code: str,
                           now: datetime) -> list[str]:
        """Replace the recovery codes (after a code from the app): the old ones are void."""
        user = accounts.get_user(conn, email)
        state = store.state(conn, user.id)
        if not state.enabled:
            raise MFAError("two-factor authentication is off", "code")
        self._accept_totp(conn, user, state, code, now)
        codes = totp.new_recovery_codes()
        store.enable(conn, user.id, now, [self._recovery_hash(user, c) for c in codes])
        return codes

    # --- turning it off --------------------------------------------------------------

    @staticmethod
    def prove_password(user: User, password: str) -> PasswordProof:
        """Check the account password (slow: run it in the worker pool, outside any
        transaction); MFAError if it is wrong."""
        if not passwords.verify_password(password, user.password_hash):
            raise MFAError("the password is wrong", "password")
        return PasswordProof(user.email, user.password_hash)

    def disable(self, conn: Connection, proof: PasswordProof, code: str,
                now: datetime) -> None:
        """Turn MFA off: needs the password (``proof``) and a code (TOTP or recovery)."""
        user = accounts.get_user(conn, proof.email)
        if user.password_hash != proof.password_hash:
            raise MFAError("the password changed meanwhile: enter it again", "password")
        self.verify(conn, user.email, code, now)
        store.clear(conn, user.id)

    # --- helpers ---------------------------------------------------------------------

    def _accept_totp(self, conn: Connection, user: User, state: store.MFAState, code: str,
                     now: datetime) -> None:
        assert state.sealed_secret is not None
        secret = self._open_secret(user, state.sealed_secret)
        step = totp.matching_step(secret, code, now.timestamp(), state.last_step)
        if step is None or not store.accept_step(conn, user.id, step):
            raise WrongCode()

    def _open_secret(self, user: User, sealed: bytes) -> str:
        return self._keyring.open(sealed, purpose=PURPOSE_SECRET, owner=user.uuid,
                                  context=_context(user)).decode("ascii")

    def _recovery_hash(self, user: User, code: str) -> bytes:
        normalized: Optional[str] = totp.normalize_recovery_code(code)
        assert normalized is not None
        return totp.recovery_code_hash(self._keyring.derive(PURPOSE_RECOVERY, user.uuid),
                                       normalized)
