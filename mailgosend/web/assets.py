# -*- test-case-name: tests.test_web_static -*-
"""Where the templates and static files are, in a checkout and in an installed copy.

In a checkout they sit next to the package (``templates/``, ``static/``); ``pip install .``
installs them as data files under ``<prefix>/share/mailgosend/`` (setup.py).
"""

from __future__ import annotations

import os
import sys

import mailgosend

_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(mailgosend.__file__)))


def asset_dir(name: str) -> str:
    """The directory ``templates`` or ``static``; OSError when neither place has it."""
    for base in (_CHECKOUT, os.path.join(sys.prefix, "share", "mailgosend")):
        path = os.path.join(base, name)
        if os.path.isdir(path):
            return path
    raise OSError(f"mailgosend's {name}/ directory is missing (looked next to the package "
                  f"and in {sys.prefix}/share/mailgosend); reinstall mailgosend")
