# -*- test-case-name: tests.test_admin_dash_settings -*-
"""What the admin panel changes in the running server besides the database: the
configuration file (settings page) and the TLS certificate files (TLS page).

One object, given to the panel as ``components["control"]``; every file write runs in the
worker pool (never on the reactor thread); the live part runs on the reactor thread:

- ``save_settings(changes)``: ``config.edit_file`` (the one writer: validated as at
  start-up, comments and order kept), then ``MailgosendService.apply_config`` hands the
  running Config with the new values of config_keys.LIVE_KEYS to every component that
  applies them; the other keys wait in the file for the next start.
- ``install_certificate(cert_pem, key_pem)``: checked by tls/upload.py, written over the
  TLS_CERT/TLS_KEY files atomically, then every TLS context reloads as on SIGHUP.
"""

from __future__ import annotations

from typing import Any, Mapping

from twisted.internet import defer
from twisted.logger import Logger

from mailgosend import config_keys as K
from mailgosend.config import Config, edit_file
from mailgosend.tls import upload
from mailgosend.tls.inventory import SERVICES

log = Logger()


class ServerControl:
    def __init__(self, root: Any, workers: Any, clock: Any) -> None:
        self._root = root
        self._workers = workers
        self._clock = clock

    @property
    def config(self) -> Config:
        return self._root.config  # type: ignore[no-any-return]

    @defer.inlineCallbacks
    def save_settings(self, changes: Mapping[str, str]) -> Any:
        """Write and apply; ConfigError (file unchanged) when a value is refused.  Returns
        (new Config, the changed keys that wait for a restart)."""
        new = yield self._workers.run(edit_file, self.config, dict(changes))
        # The running server takes the live keys only: a restart key (HOSTNAME, a port...)
        # must not reach half of the components before the restart.
        running = self.config.replace(**{name: new[name] for name in K.LIVE_KEYS})
        self._root.apply_config(running)
        later = sorted(name for name in changes if name not in K.LIVE_KEYS)
        log.info("settings: {keys} saved from the admin panel{later}",
                 keys=", ".join(sorted(changes)),
                 later=f"; at the next restart: {', '.join(later)}" if later else "")
        return new, later

    @defer.inlineCallbacks
    def install_certificate(self, cert_pem: bytes, key_pem: bytes) -> Any:
        """Check, install and reload; upload.UploadError (nothing changed) when refused.
        Returns the installed certificate's description (tls/upload.py Checked)."""
        checked = yield self._workers.run(upload.install, self.config, cert_pem, key_pem,
                                          self._clock.seconds())
        reloaded = []
        for service, key in SERVICES:
            tls = self._root.components.get(key)
            if tls is None:
                continue
            warnings = yield self._workers.run(tls.reload)
            reloaded.append(service)
            for warning in warnings:
                log.warn("TLS: {warning}", warning=warning)
        log.info("TLS: certificate for {names} installed from the admin panel; reloaded "
                 "{services}", names=", ".join(checked.names), services=", ".join(reloaded))
        return checked
