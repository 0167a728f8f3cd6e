"""Packaging.  Metadata and dependencies live in setup.cfg; this file adds
the twistd plugin: twisted/plugins is a namespace shared with Twisted itself,
so it is listed explicitly and must not get an __init__.py."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["mailgosend", "mailgosend.*"]) + ["twisted.plugins"],
)
