#!/usr/bin/env python3
"""ACME_DNS_HOOK for tests: ``acme_dns_hook.py add|remove FQDN VALUE`` sets or clears the TXT
record through pebble-challtestsrv's management API (URL in CHALLTESTSRV_API)."""

import json
import os
import sys
import urllib.request


def main() -> int:
    action, fqdn, value = sys.argv[1:4]
    api = os.environ["CHALLTESTSRV_API"]
    path = {"add": "/set-txt", "remove": "/clear-txt"}[action]
    body = {"host": fqdn.rstrip(".") + "."}
    if action == "add":
        body["value"] = value
    request = urllib.request.Request(api + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as reply:
        reply.read()
    print(f"{action} {fqdn}: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
