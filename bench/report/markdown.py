"""Markdown helpers: numbers, tables, and a section of a file replaced in place."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def f0(x: float) -> str:
    return f"{x:,.0f}"


def f2(x: float) -> str:
    return f"{x:.2f}"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def heading(title: str, commit: str | None, changed_in: str | None) -> str:
    """A section's heading, saying where what it shows was measured: not recorded, or at a commit
    that service/ has changed since (`changed_in`: the last commit that changed it)."""
    if not commit:
        return f"{title} (commit not recorded)"
    if changed_in:
        return f"{title} (measured at {commit}; service/ changed since, last in {changed_in})"
    return title


def commit_of(result: Mapping[str, Any]) -> str | None:
    """The commit a run's results were measured at, wherever the run recorded it."""
    for where in (result, result.get("facts") or {}, result.get("settings") or {}):
        if isinstance(where, Mapping) and where.get("commit"):
            return str(where["commit"])
    return None


def section_span(text: str, title: str) -> tuple[int, int] | None:
    """Where the section headed by title starts and ends in text (the next '## ' heading, or the
    end), its heading found with or without what heading() adds in parentheses; None if absent."""
    found = re.search(rf"^{re.escape(title)}(?: \([^\n]*\))?\n", text, re.M)
    if found is None:
        return None
    end = text.find("\n## ", found.end() - 1)
    return found.start(), end + 1 if end >= 0 else len(text)


def replace_section(text: str, title: str, section: str) -> str:
    """text with the section headed by title replaced, or appended."""
    span = section_span(text, title)
    if span is None:
        return text.rstrip("\n") + "\n\n" + section
    start, end = span
    return text[:start] + section + ("\n" + text[end:] if end < len(text) else "")


def publish_section(path: Path, title: str, lines: list[str], empty: str = "# RESULTS\n") -> None:
    """Replace one section of a Markdown file in place (the rest is left as it was measured)."""
    text = path.read_text() if path.exists() else empty
    path.write_text(replace_section(text, title, "\n".join(lines) + "\n"))
