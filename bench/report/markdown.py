"""Markdown helpers: numbers, tables, and a section of a file replaced in place."""

from __future__ import annotations

from pathlib import Path


def f0(x: float) -> str:
    return f"{x:,.0f}"


def f2(x: float) -> str:
    return f"{x:.2f}"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def replace_section(text: str, title: str, section: str) -> str:
    """text with the section headed by title (up to the next '## ' heading) replaced, or appended."""
    start = text.find(title + "\n")
    if start < 0:
        return text.rstrip("\n") + "\n\n" + section
    end = text.find("\n## ", start + len(title))
    return text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")


def publish_section(path: Path, title: str, lines: list[str], empty: str = "# RESULTS\n") -> None:
    """Replace one section of a Markdown file in place (the rest is left as it was measured)."""
    text = path.read_text() if path.exists() else empty
    path.write_text(replace_section(text, title, "\n".join(lines) + "\n"))
