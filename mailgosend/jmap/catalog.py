# -*- test-case-name: tests.test_jmap_core -*-
"""The one list of modules whose ``METHODS`` the JMAP endpoint serves (JMAP.md).

Adding a data type is one line in ``MODULES``.  A module not (yet) in this tree is skipped,
so each engineer's branch serves what it has; a module that exists but fails to import is an
error at start-up, never silently skipped.  A module may also export
``ACCOUNT_CAPABILITIES`` (capability URN -> the account's capability object, RFC 8620 §2),
merged into the session resource (e.g. submission's ``maxDelayedSend``).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Iterable

from mailgosend.jmap.methods import Method

__all__ = ["MODULES", "Catalog", "load"]

MODULES = (
    "mailgosend.jmap.core",
    "mailgosend.jmap.mailbox",
    "mailgosend.jmap.thread",
    "mailgosend.jmap.email_changes",
    "mailgosend.jmap.email_query",        # and SearchSnippet/get
    "mailgosend.jmap.email_get",
    "mailgosend.jmap.email_set",
    "mailgosend.jmap.identity",
    "mailgosend.jmap.submission",
    "mailgosend.jmap.vacation",
)


@dataclass
class Catalog:
    """Every method served, and the account capabilities the modules add."""

    methods: dict[str, Method] = field(default_factory=dict)
    account_capabilities: dict[str, dict[str, Any]] = field(default_factory=dict)
    modules: list[str] = field(default_factory=list)


def load(names: Iterable[str] = MODULES) -> Catalog:
    catalog = Catalog()
    for name in names:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        catalog.modules.append(name)
        for method, spec in getattr(module, "METHODS", {}).items():
            if method in catalog.methods:
                raise ValueError(f"JMAP method {method} registered twice ({name})")
            catalog.methods[method] = spec
        for urn, values in getattr(module, "ACCOUNT_CAPABILITIES", {}).items():
            catalog.account_capabilities.setdefault(urn, {}).update(values)
    return catalog
