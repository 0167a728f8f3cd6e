"""JMAP (RFC 8620 core, RFC 8621 mail): the webmail's API and any JMAP client's (DESIGN.md §12).

- ``errors.py``: the method-level and request-level errors of RFC 8620 §3.6, and SetError.
- ``methods.py``: the registry of method handlers and the ``Call`` each one receives.
- Each data type has its own module registering its methods (mailbox.py, email_*.py, ...);
  they reach mail only through ``mailgosend.mail`` (the per-user ``UserMail``), never db/.
"""
