"""The scenario schema's descriptions (schema.py): the rows and paragraphs of
docs/scenario-format.md, by key."""

from __future__ import annotations

import re

from tcplab.format.schema_blocks import Schema

# Top-level keys the docs describe only in their example's comments, or not at all.
_FALLBACK = {
    "timeout": "the whole run is stopped after this long (default 60 s)",
    "settle": "keep observing this long after both apps finished (default 1 s)",
    "$schema": "for editors; ignored by tcplab",
}


def _plain(markdown: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)  # [text](link) -> text
    return text.replace("\\|", "|").replace("`", "").strip()


def doc_descriptions(text: str) -> dict[str, str]:
    """Descriptions by key: each table row's first-cell keys (`drop: NAME` -> drop, with
    its other cells as the description; the first row naming a key wins), each `## key`
    section's first paragraph (unless it only leads into a table, ending in ':'), and the
    comments of the format example (`scenario: x  # name`). Keys the docs give in several
    forms (the segment table) all get the row. A row is also filed under its table's
    first header cell, `step:keepalive` apart from `name:keepalive` (a segment)."""
    found: dict[str, str] = {}
    header: list[str] = []
    scope = ""
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) < 2:
            scope = ""
            continue
        if all(set(c) <= set("-: ") for c in cells):  # the separator under the header
            scope = header[0].lower() if header else ""
            continue
        header = cells
        described = " — ".join(_plain(c) for c in cells[1:])
        for token in re.findall(r"`([^`]+)`", cells[0]):
            key = re.split(r"[:\s]", token.strip(), maxsplit=1)[0]
            found.setdefault(key, described)
            if scope:
                found.setdefault(f"{scope}:{key}", described)
    for name, body in re.findall(r"^## (\S+)\n+((?:.+\n)+)", text, re.M):
        if not body.rstrip().endswith(":"):
            found.setdefault(name.lower(), _plain(" ".join(body.split())))
    for key, comment in re.findall(r"^([a-z$]+):[^#\n]*#\s*(.+)$", text, re.M):
        found.setdefault(key, _plain(comment))
    return found


def described(schema: Schema, docs: dict[str, str], key: str, scope: str = "") -> Schema:
    """`schema` with the docs' description of `key` (in the table headed `scope`)."""
    text = docs.get(f"{scope}:{key}" if scope else key) or _FALLBACK.get(key)
    return {"description": text, **schema} if text else schema
