"""The configuration reference in README.rst, generated from config_keys.KEYS.

``mailgosend config reference`` prints it; tests/test_config_docs.py fails
when README.rst and the table disagree, so the documentation cannot drift.
"""

from __future__ import annotations

from mailgosend import config_keys as K

START = ".. config-reference-start"
END = ".. config-reference-end"


def _default(key: K.Key) -> str:
    if key.generate is not None:
        return "generated"
    text = key.default if key.default else "(empty)"
    local = dict(key.profile_defaults).get("local")
    if local is not None and local != key.default:
        text += f" (local: {local})"
    return text


def reference_rst() -> str:
    out = [START, ""]
    for section, title in K.SECTIONS:
        keys = [k for k in K.KEYS if k.section == section]
        # Level 2 under "Configuration reference", named apart from the README's own
        # sections ("TLS", "Web and admin ports") so that links to those stay unique.
        heading = f"Keys: {title}"
        out += [heading, "-" * len(heading), ""]
        for key in keys:
            doc = key.doc
            if key.choices:
                doc += " One of: " + ", ".join(f"``{c}``" for c in key.choices) + "."
            if key.aliases:
                doc += " Also accepted as " + ", ".join(f"``{a}``" for a in key.aliases) + "."
            if key.pending:
                doc += f" *({key.pending[0].upper() + key.pending[1:]}.)*"
            out += [f"``{key.name}`` = ``{_default(key)}``", f"    {doc}", ""]
    out += [END]
    return "\n".join(out) + "\n"


def readme_section(readme_text: str) -> str:
    start = readme_text.index(START)
    end = readme_text.index(END) + len(END)
    return readme_text[start:end] + "\n"


def update_readme(path: str) -> bool:
    """Rewrite README.rst's reference section in place; True when it changed."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    start = text.index(START)
    end = text.index(END) + len(END)
    new = text[:start] + reference_rst().rstrip("\n") + text[end:]
    if new != text:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(new)
    return new != text
