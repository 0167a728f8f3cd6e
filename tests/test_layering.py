# -*- test-case-name: tests.test_layering -*-
"""DESIGN.md §1 and §11: front ends reach mail data only through ``mailgosend/mail/`` (and
accounts through ``mailgosend/admin.py``).  No protocol or web module imports SQLAlchemy,
the database schema or the keyring; this test keeps that true as code is added."""

from __future__ import annotations

import ast
import os

from twisted.trial import unittest

import mailgosend

FRONT_ENDS = ("imap", "pop3", "smtp", "web", "jmap", "dav")
FORBIDDEN_MODULES = ("sqlalchemy", "mailgosend.db.schema", "mailgosend.db.engine")
FORBIDDEN_NAMES = ("KeyRing",)
# DESIGN.md §1: front ends depend on mail/, never the reverse.
FRONT_END_MODULES = tuple(f"mailgosend.{name}" for name in FRONT_ENDS)


def imports_of(path: str) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, module, names) of every import in one source file."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module, tuple(a.name for a in node.names)))
    return found


def violations(package_dir: str, forbidden: tuple[str, ...] = FORBIDDEN_MODULES,
               forbidden_names: tuple[str, ...] = FORBIDDEN_NAMES) -> list[str]:
    out = []
    for directory, _, files in os.walk(package_dir):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            for line, module, names in imports_of(path):
                bad_module = any(module == m or module.startswith(m + ".")
                                 for m in forbidden)
                bad_names = [n for n in names if n in forbidden_names]
                if bad_module or bad_names:
                    shown = os.path.relpath(path, os.path.dirname(package_dir))
                    out.append(f"{shown}:{line}: {module} {', '.join(bad_names)}".rstrip())
    return out


class LayeringTests(unittest.TestCase):
    def test_front_ends_import_no_database_or_keyring(self) -> None:
        root = os.path.dirname(mailgosend.__file__)
        found = [v for package in FRONT_ENDS for v in violations(os.path.join(root, package))]
        self.assertEqual(found, [])

    def test_mail_imports_no_front_end(self) -> None:
        """mail/ is what every front end shares; a helper it needs lives in mail/ (or
        below), so that removing a front end cannot break the others."""
        root = os.path.dirname(mailgosend.__file__)
        found = violations(os.path.join(root, "mail"), FRONT_END_MODULES, ())
        self.assertEqual(found, [])

    def test_the_check_sees_a_forbidden_import(self) -> None:
        directory = self.mktemp()
        os.makedirs(os.path.join(directory, "pkg"))
        with open(os.path.join(directory, "pkg", "bad.py"), "w", encoding="utf-8") as handle:
            handle.write("from sqlalchemy import text\nfrom mailgosend.crypto import KeyRing\n")
        self.assertEqual(violations(os.path.join(directory, "pkg")),
                         ["pkg/bad.py:1: sqlalchemy", "pkg/bad.py:2: mailgosend.crypto KeyRing"])
