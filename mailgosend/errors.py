"""Errors that cross module boundaries.  Protocol-specific errors (SMTP and
IMAP replies) live with their protocol; these are the server-wide ones."""


class StartupError(Exception):
    """The server cannot start; the message is one line naming the setting and the fix.

    twistd prints it without a traceback (see service.install_startup_excepthook).
    """
