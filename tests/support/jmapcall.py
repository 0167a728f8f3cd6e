"""Calling JMAP method handlers directly, as the API endpoint does, over a real database
and mail service (the endpoint's own tests go through HTTP)."""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet import reactor

from mailgosend.jmap.errors import MethodError
from mailgosend.jmap.methods import Call, Limits, Method
from mailgosend.mail.service import MailService, UserMail
from tests.support.imap import KEYRING, IMAPFixture


def all_methods() -> dict[str, Method]:
    """Every method of the mail data types this branch serves."""
    import importlib
    methods: dict[str, Method] = {}
    for name in ("email_get", "email_set", "identity", "submission", "vacation"):
        try:
            module = importlib.import_module(f"mailgosend.jmap.{name}")
        except ModuleNotFoundError:
            continue
        methods.update(module.METHODS)
    return methods


class JMAPCallFixture(IMAPFixture):
    """A MailService over the IMAP fixture's database, and ``jmap(name, args)``."""

    limits = Limits()

    def setUp(self) -> Any:
        d = super().setUp()
        self.service = MailService(runner=self.runner, keyring=KEYRING, blob_store=self.blobs,
                                   workers=self.workers, clock=reactor, trainer=self.trainer,
                                   events=self.events)
        self.methods = all_methods()
        self.created: dict[str, str] = {}
        self.mails: dict[str, UserMail] = {}
        return d

    async def mail_of(self, email: str) -> UserMail:
        """The user's view, opened once (as a session would)."""
        if email not in self.mails:
            self.mails[email] = await self.service.open_account(email)
        return self.mails[email]

    async def jmap(self, name: str, args: dict[str, Any], *, user: Optional[str] = None,
                   context: Any = None) -> tuple[str, dict[str, Any], list[Any]]:
        """(response name, arguments, implied responses): "error" and the error document
        for a MethodError, as the endpoint answers."""
        email = user or self.alice.email
        mail = await self.mail_of(email)
        call = Call(name=name, call_id="c0", account_id=f"A{mail.user.id}", mail=mail,
                    context=context, limits=self.limits, created=self.created)
        try:
            result = await self.methods[name].handler(call, args)
        except MethodError as error:
            return "error", error.response(), call.implied
        return name, result, call.implied

    def account(self, user: Any = None) -> str:
        return f"A{(user or self.alice).id}"
