"""The Jinja2 environment of the web pages: autoescape always on, static URLs with hashes."""

from __future__ import annotations

import jinja2

from mailgosend.web.assets import asset_dir
from mailgosend.web.static import StaticFiles


def make_environment(static: StaticFiles) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(asset_dir("templates")),
        autoescape=True,            # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        auto_reload=False,          # no stat() on the reactor per page: templates are fixed
        trim_blocks=True, lstrip_blocks=True)
    env.globals["static"] = static.url
    return env
