"""The admin panel's operations pages over HTTP: a signed-in administrator's WebClient
(tests/test_admin_dash_pages.py AdminTestCase) and a form helper that, like a browser,
takes the CSRF token from the page the form is on."""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet import defer

from mailgosend.db.runner import run_sync
from tests.support.web import WebClient, csrf_from
from tests.test_admin_dash_pages import ADMIN, ALICE, AdminTestCase

__all__ = ["ADMIN", "ALICE", "OpsTestCase", "submit"]


@defer.inlineCallbacks
def submit(web: WebClient, page: str, action: str,
           data: Optional[dict[str, str]] = None) -> Any:
    """GET ``page`` (for its CSRF token), then POST ``data`` to ``action``."""
    shown = yield web.get(page)
    assert shown.status_code == 200, (page, shown.status_code)
    answer = yield web.post(action, {"csrf_token": csrf_from(shown.text), **(data or {})})
    return answer


class OpsTestCase(AdminTestCase):
    def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.server.engine, fn, *args, write=False, **kwargs)

    def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return run_sync(self.server.engine, fn, *args, write=True, **kwargs)
