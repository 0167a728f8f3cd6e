"""mailgosend.web: the HTTP listeners (DESIGN.md §5, §12).

Implemented:
- site.py: one twisted.web Site per listener (web port, admin port), Klein apps bound to
  instances; request.py: the Request that refuses unknown Host headers (421), bodies over
  the route's limit (413), banned addresses (403) and too many changes (429, ratelimit.py),
  and reads the client behind TRUSTED_PROXIES (proxy.py); headers.py: the security headers
  on every response (CSP, HSTS under HTTPS, nosniff, Referrer-Policy, Permissions-Policy,
  COOP, frame-ancestors).
- sessions.py over store/sessions.py: database sessions with hashed tokens, HttpOnly
  SameSite=Strict cookies (``__Host-`` and Secure under HTTPS), lifetime and idle timeout,
  a new token at every privilege change; csrf.py: tokens HMAC-bound to the session, and the
  Origin check.
- login.py: sign-in through the one Portal as a state machine with pluggable second steps;
  account.py: the sign-in, sign-out and account pages (session list) on both ports and
  ``/healthz`` (health.py) on the admin port; static.py and templates.py: hashed static files
  and the autoescaping Jinja2 environment.
- totp_step.py: TOTP (or a recovery code) as the sign-in second step on both ports;
  mfa_pages.py: enrolment (inline SVG QR code), recovery codes, disabling, under
  /account/mfa/; apppasswords_pages.py: app passwords (create, list, revoke) under
  /account/app-passwords/ on the web port.
- passkeys.py over auth/passkeys.py and store/passkeys.py: passkeys and security keys
  (WebAuthn) added, listed and removed at /passkeys, and the sign-in step "Use your passkey"
  (static/js/passkeys.js is the browser side).
- settings_pages.py: the account settings page on the web port (display name, password
  change ending the other sessions, aliases, mail-client settings from mailclients.py);
  setup.py: the first administrator on the admin port with a one-time token from the log;
  sections.py mounts both beside the account pages.
- The admin panel under /admin on the admin port: admin_guard.py (router of page groups,
  the guard asking AccountAdmin.rights on every request, the layout's navigation);
  admin_dashboard.py (counters.py's numbers, charts by static/js/admin-dashboard.js with the
  vendored uPlot), admin_settings.py (config.edit_file, live keys), admin_tls.py
  (certificates in use, upload through tls/upload.py, the ACME hook), admin_logs.py (log
  lines from logring.py, live tail over server-sent events), admin_audit.py (the audit
  log); admin_metrics.py: /metrics (Prometheus) and /readyz.
  The management pages (admin_domains.py, admin_users.py, admin_queue.py,
  admin_security.py through admin_ops.py) call admin.py, store/ and doctor.py.
- The JMAP endpoint (mailgosend/jmap/) is mounted by build_site at /jmap/ and
  /.well-known/jmap on the web port, with its own body limits and rate limit; client
  autoconfiguration and MTA-STS (autoconfig.py) share /.well-known/.
- webmail.py: the webmail page at /mail (static/js/webmail/: a JMAP client of ES modules)
  and the routes JMAP has no place for: message bodies sanitised by webmail_body.py (nh3,
  tinycss2) in a sandboxed frame with their own CSP, view source, remote content per
  message or per sender.
Not yet: webmail writing, actions and search (issue 13 items 3-5, 7), passkeys as the only
factor (usernameless sign-in) and DAV.
"""
