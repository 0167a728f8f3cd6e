"""Run the real server (``twistd -n mailgosend``) as a child process in tests.

Used by start-up/shutdown tests now and by the durability tests later
(SIGKILL mid-delivery), so it only uses what an operator would: the command
line, the configuration file, signals, and the log.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
WAIT_LIMIT = 60.0   # a bound, not a performance assertion


LISTENERS = ("SMTP", "SUBMIT", "SMTPS", "IMAP", "IMAPS", "POP3", "POP3S", "WEB", "ADMIN", "DAV",
             "HTTP")


def quiet_env(**ports: int) -> dict[str, str]:
    """MAILGO_ variables with every listener off except the ones given (tests run in
    parallel: no test may bind a fixed port)."""
    env = {f"MAILGO_{name}_PORT": str(ports.get(name, 0)) for name in LISTENERS}
    env.update(MAILGO_BCRYPT_COST="4", MAILGO_DNSBL_ZONES="")
    return env


def child_env(extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


class ServerProcess:
    def __init__(self, args: Sequence[str], cwd: str, env: Optional[dict[str, str]] = None):
        self.args = list(args)
        self.cwd = cwd
        self.env = child_env(env)
        self.output: list[str] = []
        self._lock = threading.Lock()
        self.proc: Optional[subprocess.Popen[str]] = None

    @classmethod
    def twistd(cls, cwd: str, *plugin_args: str, env: Optional[dict[str, str]] = None,
               tac: Optional[str] = None) -> "ServerProcess":
        args = TWISTD + ["-n", "--pidfile="]
        args += ["-y", tac] if tac else ["mailgosend", *plugin_args]
        return cls(args, cwd, env)

    def start(self) -> "ServerProcess":
        self.proc = subprocess.Popen(self.args, cwd=self.cwd, env=self.env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.output.append(line)

    def text(self) -> str:
        with self._lock:
            return "".join(self.output)

    def wait_for(self, pattern: str) -> re.Match[str]:
        """Block (call it in a thread) until the output matches, the process ends, or the limit."""
        deadline = time.monotonic() + WAIT_LIMIT
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            match = regex.search(self.text())
            if match:
                return match
            if self.proc is not None and self.proc.poll() is not None:
                self._drain_output()
                match = regex.search(self.text())
                if match:
                    return match
                raise AssertionError(f"server exited ({self.proc.returncode}) before "
                                     f"{pattern!r}:\n{self.text()}")
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in server output:\n{self.text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send the signal and wait for the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(WAIT_LIMIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._drain_output()
        return code

    def _drain_output(self) -> None:
        """The process is gone: wait until its last lines are read (EOF on the pipe)."""
        thread = getattr(self, "_pump_thread", None)
        if thread is not None:
            thread.join(WAIT_LIMIT)

    def wait_exit(self) -> int:
        assert self.proc is not None
        code = self.proc.wait(WAIT_LIMIT)
        self._drain_output()
        return code
