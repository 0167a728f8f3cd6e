"""twistd plugin: ``twistd -n mailgosend --config app_config.conf``."""

from __future__ import annotations

from typing import Any

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer


class Options(usage.Options):
    synopsis = "[--config PATH] [--profile standard|local]"
    longdesc = ("Run the mailgosend mail server. The configuration file is created with "
                "every key documented on first run; missing keys are appended later.")
    optParameters = [
        ["config", "c", "app_config.conf", "Configuration file (created if missing)."],
        ["profile", None, None,
         "Defaults for a newly generated file: standard (ports 25, 587, ...) or local "
         "(loopback, unprivileged ports, for running as a normal user)."],
    ]

    def postOptions(self) -> None:
        if self["profile"] not in (None, "standard", "local"):
            raise usage.UsageError("--profile must be standard or local")


@implementer(IServiceMaker, IPlugin)
class MailgosendServiceMaker:
    tapname = "mailgosend"
    description = "Self-hosted all-in-one mail server."
    options = Options

    def makeService(self, options: Options) -> Any:
        from twisted.internet import reactor

        import sys

        from mailgosend.config import ConfigError, load, new_file_notice
        from mailgosend.errors import StartupError
        from mailgosend.log import make_observer
        from mailgosend.service import (
            chown_data_dir,
            install_signal_handlers,
            install_startup_excepthook,
            makeService,
        )

        install_startup_excepthook()
        try:
            config = load(options["config"], profile=options["profile"])
        except ConfigError as exc:
            raise StartupError(f"configuration {options['config']}:\n  "
                               + "\n  ".join(exc.problems)) from None
        parent = getattr(options, "parent", None) or {}
        explicit_log = any(parent.get(k) for k in ("logfile", "logger", "syslog"))
        observer = None if explicit_log else make_observer(config)
        log_on_terminal = not explicit_log and not config["LOG_FILE"] and parent.get("nodaemon")
        if config.created and not log_on_terminal:
            # The log (which gets it too) is a file or syslog: the terminal must hear it as well.
            sys.stderr.write(f"mailgosend: {new_file_notice(config)}\n")
        root = makeService(config, reactor=reactor, observer=observer)
        chown_data_dir(config, parent.get("uid"), parent.get("gid"))
        reactor.callWhenRunning(install_signal_handlers, root, reactor)
        return root


serviceMaker = MailgosendServiceMaker()
