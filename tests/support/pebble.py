"""Debian's ``pebble`` (a test ACME CA) and ``pebble-challtestsrv`` (its DNS and management API),
started per test on loopback ports from free_ports (research/library-notes.md §3).

challtestsrv answers every A query with 127.0.0.1, so any name a test asks a certificate for
resolves to our listeners; TXT records are set through its management API (``set_txt``), which is
what tests/support/acme_dns_hook.py calls for the hook provider.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from typing import Optional, Sequence

from tests.support.certs import make_ca, make_cert
from tests.support.net import free_ports

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"
CHALLTESTSRV = shutil.which("pebble-challtestsrv") or "/usr/bin/pebble-challtestsrv"
HOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "acme_dns_hook.py")


def available() -> bool:
    return os.path.exists(PEBBLE) and os.path.exists(CHALLTESTSRV)


def _wait_port(port: int, process: subprocess.Popen[bytes], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{process.args[0]} did not listen on {port}")


class Pebble:
    """One pebble and one challtestsrv; ``http_port`` is where pebble's VA fetches HTTP-01
    tokens (our HTTP_PORT), ``nonce_reject`` the percentage of valid nonces it refuses."""

    def __init__(self, directory: str, http_port: int, nonce_reject: int = 0,
                 taken: Sequence[int] = ()) -> None:
        """``taken``: the ports the test chose for its own listeners (chosen in another
        call, so free_ports could hand them out again); pebble's never include them."""
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.http_port = http_port
        self.nonce_reject = nonce_reject
        avoid = {http_port, *taken}
        ports = free_ports(5)
        while avoid & set(ports):
            ports = free_ports(5)
        self.acme_port, self.mgmt_port, self.dns_port, self.api_port, self.tls_port = ports
        self.processes: list[subprocess.Popen[bytes]] = []
        self.log_paths: list[str] = []

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.acme_port}/dir"

    @property
    def dns(self) -> str:
        return f"127.0.0.1:{self.dns_port}"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _spawn(self, name: str, args: list[str], env: Optional[dict[str, str]] = None) -> None:
        path = os.path.join(self.directory, f"{name}.log")
        self.log_paths.append(path)
        with open(path, "wb") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=self.directory,
                                       env={**os.environ, **(env or {})})
        self.processes.append(process)

    def start(self) -> "Pebble":
        pki = os.path.join(self.directory, "pki")
        self.ca = make_ca(pki, name="pebble-listener-ca")
        cert, key = make_cert(pki, ["localhost", "127.0.0.1"], ca=self.ca, name="pebble")
        self.ca_file = self.ca.cert_path
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.acme_port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": cert, "privateKey": key,
            "httpPort": self.http_port, "tlsPort": self.tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}
        config_path = os.path.join(self.directory, "pebble-config.json")
        with open(config_path, "w", encoding="utf-8") as handle:
            json.dump(config, handle)
        self._spawn("challtestsrv", [
            CHALLTESTSRV, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
            "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
            "-tlsalpn01", "", "-management", f"127.0.0.1:{self.api_port}"])
        _wait_port(self.api_port, self.processes[-1])
        self._spawn("pebble", [PEBBLE, "-config", config_path, "-dnsserver", self.dns],
                    env={"PEBBLE_VA_NOSLEEP": "1",
                         "PEBBLE_WFE_NONCEREJECT": str(self.nonce_reject),
                         "PEBBLE_AUTHZREUSE": "0"})
        _wait_port(self.acme_port, self.processes[-1])
        _wait_port(self.mgmt_port, self.processes[-1])
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes = []

    def logs(self) -> str:
        text = []
        for path in self.log_paths:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text.append(handle.read())
        return "\n".join(text)

    def roots_pem(self) -> str:
        """The root that signed the certificates this pebble issues (new at every start)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        with urllib.request.urlopen(f"https://127.0.0.1:{self.mgmt_port}/roots/0",
                                    context=context, timeout=10) as reply:
            return reply.read().decode("ascii")

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts what this pebble issues, hostname checking on."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=self.roots_pem())
        return context
