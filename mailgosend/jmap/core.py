# -*- test-case-name: tests.test_jmap_core -*-
"""The Core capability's own method (RFC 8620 §4): Core/echo."""

from __future__ import annotations

from typing import Any

from mailgosend.jmap.methods import CORE, Call, Method

__all__ = ["METHODS"]


async def echo(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    """RFC 8620 §4: the arguments back, unchanged (a client's connectivity test)."""
    return args


METHODS: dict[str, Method] = {"Core/echo": Method(CORE, echo)}
