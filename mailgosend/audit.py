# -*- test-case-name: tests.test_admin_dash_audit -*-
"""The audit log for front ends (the admin panel records; the CLI could too): they call
these, never the store.

Every administrative action is recorded with ``record`` INSIDE the job that makes the
change, e.g.::

    def job(conn):
        user = admin.delete_user(conn, email)
        audit.record(conn, actor=actor.email, action="user.delete", target=email,
                     ip=request.client_ip, at=now, domain=user.domain)
        return user
    yield runner.write(job)

Action names are dotted, ``<thing>.<verb>``: ``settings.edit``, ``tls.upload``,
``domain.add``, ``user.delete``, ``queue.retry``, ``ban.remove`` ...
"""

from __future__ import annotations

from mailgosend.store.audit import AuditEntry, AuditQuery, record, search

__all__ = ["AuditEntry", "AuditQuery", "record", "search"]
