"""DKIM verification by implementations other than dkimpy, against the test DNS server.

* ``verify_with_mailauth``: the npm package mailauth (tests/support/js/dkimverify.mjs) on
  Node.js; knows rsa-sha256 and ed25519-sha256 (RFC 8463).
* ``verify_with_perl``: Perl's Mail::DKIM (tests/support/dkimverify.pl); Debian bookworm's
  libmail-dkim-perl knows rsa-sha256 only.

Both run the verifier as a child process and return a Deferred firing with one
``(result, domain, selector, algorithm, detail)`` tuple per DKIM-Signature, top first.
They must not block: keys are looked up in the test DNS server
(tests.support.dnsserver), which answers from the reactor thread.

A missing tool is a failure (AssertionError saying how to install it), never a skip.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from twisted.internet import defer
from twisted.internet.utils import getProcessOutputAndValue

Verdict = tuple[str, str, str, str, str]

SUPPORT = os.path.dirname(os.path.abspath(__file__))
JS_DIR = os.path.join(SUPPORT, "js")
MAILAUTH_SCRIPT = os.path.join(JS_DIR, "dkimverify.mjs")
PERL_SCRIPT = os.path.join(SUPPORT, "dkimverify.pl")

MAILAUTH_INSTALL = ("install it with: apt-get install -y nodejs npm (if node/npm are missing), "
                    "then, at the top of the repository: npm ci --prefix tests/support/js "
                    "(bash .ci/run does both)")
PERL_INSTALL = "install it with: apt-get install -y perl libmail-dkim-perl"


def _parse(out: bytes) -> list[Verdict]:
    verdicts = []
    for line in out.decode("utf-8", errors="replace").splitlines():
        fields = (line.split("\t") + [""] * 5)[:5]
        verdicts.append((fields[0], fields[1], fields[2], fields[3], fields[4]))
    return verdicts


@defer.inlineCallbacks
def _run(executable: str, args: list[str], message: bytes, name: str, install: str) -> Any:
    out, err, code = yield getProcessOutputAndValue(
        executable, args, env=dict(os.environ), stdinBytes=message)
    if code != 0:
        raise AssertionError(f"{name} exited {code}: {err.decode(errors='replace')}\n"
                             f"(a broken install? {install})")
    return out


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise AssertionError(f"node is missing, needed to verify DKIM with mailauth: "
                             f"{MAILAUTH_INSTALL}")
    if not os.path.exists(os.path.join(JS_DIR, "node_modules", "mailauth", "package.json")):
        raise AssertionError("the npm package mailauth is not installed in "
                             f"{JS_DIR}/node_modules: {MAILAUTH_INSTALL}")
    return node


def verify_with_mailauth(message: bytes, dns_port: int) -> defer.Deferred[list[Verdict]]:
    """mailauth's verdicts; result is pass, fail, neutral (e.g. "body hash did not
    verify"), temperror, policy, or one ("none", "", "", "", ...) for an unsigned
    message.  Raises AssertionError at once if node or mailauth is missing."""
    node = _node()
    d = _run(node, [MAILAUTH_SCRIPT, str(dns_port)], message, "dkimverify.mjs",
             MAILAUTH_INSTALL)
    d.addCallback(_parse)
    return d


def verify_with_perl(message: bytes, dns_port: int
                     ) -> defer.Deferred[tuple[list[Verdict], bool]]:
    """Mail::DKIM's verdicts (pass, fail, invalid, none, ...) and whether the installed
    Mail::DKIM knows ed25519-sha256.  Raises AssertionError at once if perl is missing."""
    perl = shutil.which("perl")
    if perl is None:
        raise AssertionError(f"perl is missing, needed to verify DKIM with Mail::DKIM: "
                             f"{PERL_INSTALL}")

    def split(out: bytes) -> tuple[list[Verdict], bool]:
        verdicts = _parse(out)
        if not verdicts or verdicts[0][0] != "ed25519-support":
            raise AssertionError(f"dkimverify.pl printed no ed25519-support line: {out!r}")
        return verdicts[1:], verdicts[0][1] == "yes"

    d = _run(perl, [PERL_SCRIPT, str(dns_port)], message, "dkimverify.pl", PERL_INSTALL)
    d.addCallback(split)
    return d
