# -*- test-case-name: tests.test_web_mfa -*-
"""The TOTP second step of a sign-in (web/login.py ``SecondStep``): required once the user
has turned MFA on; accepts a code from the app or a recovery code, each once, through
auth/secondstep.py, so wrong codes count toward bans like wrong passwords."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from mailgosend.auth.checker import LoginBanned
from mailgosend.auth.mfa import SecondFactor, WrongCode
from mailgosend.auth.secondstep import SecondStep
from mailgosend.db.runner import DatabaseRunner
from mailgosend.store.accounts import User


class TOTPStep:
    name = "totp"
    template = "account/totp_step.html"

    def __init__(self, runner: DatabaseRunner, factor: SecondFactor, check: SecondStep,
                 service: str) -> None:
        self._runner = runner
        self._factor = factor
        self._check = check
        self._service = service

    def required(self, user: User) -> "defer.Deferred[bool]":
        return self._runner.read(self._factor.is_enabled, user.email)

    @defer.inlineCallbacks
    def verify(self, user: User, form: dict[str, str], client_ip: str) -> Any:
        code = form.get("code", "").strip()
        if not code:
            return False
        try:
            yield self._check.check(user.email, code, client_ip, self._service)
        except (WrongCode, LoginBanned):
            return False
        return True
