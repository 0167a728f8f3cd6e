# twistd -ny mailgosend.tac  -- for people who prefer a .tac file.
# The configuration file is $MAILGO_CONFIG, or app_config.conf in the current directory.
import os

from twisted.application import service
from twisted.internet import reactor

from mailgosend.config import ConfigError, load
from mailgosend.errors import StartupError
from mailgosend.log import make_observer
from mailgosend.service import install_signal_handlers, install_startup_excepthook, makeService

install_startup_excepthook()
_path = os.environ.get("MAILGO_CONFIG", "app_config.conf")
try:
    _config = load(_path)
except ConfigError as _exc:
    raise StartupError(f"configuration {_path}:\n  " + "\n  ".join(_exc.problems)) from None

application = service.Application("mailgosend")
_root = makeService(_config, reactor=reactor, observer=make_observer(_config))
_root.setServiceParent(application)
reactor.callWhenRunning(install_signal_handlers, _root, reactor)
