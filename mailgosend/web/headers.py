"""Security headers on every HTTP response, set by a Request subclass on the
Site so no resource can forget them (DESIGN.md §5)."""

from __future__ import annotations

from twisted.web.server import Request

# A strict default; pages that need more (webmail styles, sandboxed mail
# frames) widen it per response, never with 'unsafe-inline' script.
DEFAULT_CSP = ("default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
               "base-uri 'none'")

STATIC_HEADERS = (
    (b"X-Content-Type-Options", b"nosniff"),
    (b"X-Frame-Options", b"DENY"),
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on
    # same-site form posts (Fetch standard), which the CSRF Origin check must refuse.
    (b"Referrer-Policy", b"same-origin"),
    (b"Cross-Origin-Opener-Policy", b"same-origin"),
    (b"Cross-Origin-Resource-Policy", b"same-origin"),
    (b"Permissions-Policy",
     b"camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"),
)


class SecureRequest(Request):
    """Adds the security headers before the response starts."""

    def write(self, data: bytes) -> None:
        if not self.startedWriting:
            self._add_security_headers()
        super().write(data)

    def finish(self) -> None:
        if not self.startedWriting:
            self._add_security_headers()
        super().finish()

    def _add_security_headers(self) -> None:
        headers = self.responseHeaders
        for name, value in STATIC_HEADERS:
            if not headers.hasHeader(name):
                headers.setRawHeaders(name, [value])
        if not headers.hasHeader(b"Content-Security-Policy"):
            headers.setRawHeaders(b"Content-Security-Policy", [DEFAULT_CSP.encode()])
        if self.isSecure() and not headers.hasHeader(b"Strict-Transport-Security"):
            headers.setRawHeaders(b"Strict-Transport-Security",
                                  [b"max-age=31536000"])
