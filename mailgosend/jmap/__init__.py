"""JMAP (RFC 8620 core, RFC 8621 mail): the webmail's API and any JMAP client's (DESIGN.md §12).

- ``errors.py``: the method-level and request-level errors of RFC 8620 §3.6, and SetError.
- ``methods.py``: the registry of method handlers and the ``Call`` each one receives.
- Each data type has its own module registering its methods (mailbox.py, email_*.py, ...);
  they reach mail only through ``mailgosend.mail`` (the per-user ``UserMail``), never db/.
  ``catalog.py`` is the one list of those modules the endpoint serves.
- The endpoint (jmap-core): ``http.py`` (routes on the web port), ``session.py`` (the Session
  resource, §2), ``api.py`` (requests, result references, createdIds, §3), ``auth.py``
  (cookie with CSRF, Basic and Bearer app passwords through the Portal), ``blobs.py`` (what
  a blob id names, §6) and ``transfer.py`` (upload and download), ``push.py`` (EventSource,
  §7.3), ``state.py`` (state strings), ``core.py`` (Core/echo), ``wiring.py`` (built by
  service.py, mounted by web/site.py).
"""
