# -*- test-case-name: tests.test_admin_dash_pages -*-
"""The admin panel's dashboard (issue 14 item 1) at ``/admin``."""

from __future__ import annotations

from typing import Any

from klein import Klein

from mailgosend.admin import Actor
from mailgosend.web.admin_guard import AdminGroup, admin_page, install_error_pages
from mailgosend.web.request import WebRequest


class DashboardPages(AdminGroup):
    app = Klein()

    @app.route("/admin", methods=["GET", "HEAD"])
    @app.route("/admin/", methods=["GET", "HEAD"])
    @admin_page()
    def dashboard(self, request: WebRequest, actor: Actor) -> Any:
        return self.render(request, "admin/dashboard.html", actor)


install_error_pages(DashboardPages.app)
