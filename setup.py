"""Packaging.  Metadata and dependencies live in setup.cfg; this file adds
the twistd plugin: twisted/plugins is a namespace shared with Twisted itself,
so it is listed explicitly and must not get an __init__.py.

The web pages' templates/ and static/ (built CSS, committed) sit beside the package in a
checkout and are installed under <prefix>/share/mailgosend/ (mailgosend/web/assets.py looks
in both places), so an installed copy needs no Node and no build step."""

import os

from setuptools import find_packages, setup


def tree(top: str) -> list[tuple[str, list[str]]]:
    found = []
    for directory, _dirs, files in sorted(os.walk(top)):
        if files:
            found.append((os.path.join("share", "mailgosend", directory),
                          sorted(os.path.join(directory, name) for name in files)))
    return found


setup(
    packages=find_packages(include=["mailgosend", "mailgosend.*"]) + ["twisted.plugins"],
    data_files=tree("templates") + tree("static"),
)
