# -*- test-case-name: tests.test_auth_secondstep -*-
"""The second step of a sign-in (web, admin): the code from the app or a recovery code,
checked once, with wrong codes counted toward bans like wrong passwords.

A six-digit code is guessable (3 valid codes in 10**6 within the window), so guesses
must cost what password guesses cost: each wrong code is a failed login for the address
and the account (auth/bruteforce.py), and a banned address is refused before any check.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer

from mailgosend.auth.bans import BanCache
from mailgosend.auth.checker import LoginBanned, ip_ban, record_failure
from mailgosend.auth.mfa import SecondFactor, WrongCode
from mailgosend.db.runner import DatabaseRunner
from mailgosend.store.security import SecurityStore

__all__ = ["SecondStep"]


class SecondStep:
    def __init__(self, runner: DatabaseRunner, security: SecurityStore, bans: BanCache,
                 mfa: SecondFactor) -> None:
        self._runner = runner
        self._security = security
        self._bans = bans
        self._mfa = mfa

    @defer.inlineCallbacks
    def check(self, email: str, code: str, ip: str, service: str) -> Any:
        """``"totp"`` or ``"recovery"`` for a code accepted (once); WrongCode, counted as a
        failed login, otherwise; LoginBanned for a banned address or suspended account."""
        until = yield ip_ban(self._security, self._bans, ip)
        if until is not None:
            yield self._security.refused("mfa_refused_banned_ip", ip, email, service)
            raise LoginBanned("too many failed logins from this address", until)
        account_until = yield self._security.account_ban_for(email, ip)
        if account_until is not None:
            yield self._security.refused("mfa_refused_account_suspended", ip, email, service)
            raise LoginBanned("logins to this account are suspended", account_until)
        now = datetime.fromtimestamp(self._security.clock.seconds(), timezone.utc)
        try:
            kind = yield self._runner.write(self._mfa.verify, email, code, now)
        except WrongCode:
            yield record_failure(self._security, self._bans, ip, email, service,
                                 "wrong authentication code")
            raise
        if kind == "recovery":
            yield self._security.refused("mfa_recovery_code_used", ip, email, service)
        return kind
