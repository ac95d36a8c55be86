"""A flame graph (SVG) of one path's py-spy samples (bench/profile.py's collapsed stacks): the
widest frames are where the worker spends its CPU, coloured by the part of the code they belong
to (the same parts as RESULTS.md's profile table), so a frame that shrank between two runs shows."""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

WIDTH, ROW, FONT_PX = 1200, 16, 11
MIN_SHARE = 0.001  # frames under 0.1% of the samples are left out (invisible at this width)
# The parts of bench/profile.py's PARTS, in its order.
COLOURS = {"database driver (asyncpg)": "#7fbf7f", "Redis client (redis-py, hiredis)": "#e8837c",
           "event loop (uvloop) and asyncio": "#b8b8b8", "web framework (sanic, httptools)": "#86a8d8",
           "service code": "#f2b15c", "other": "#e0d7b8"}


@dataclass
class Node:
    samples: int = 0
    part: str = "other"
    children: dict[str, Node] = field(default_factory=dict)


Namer = Callable[[str], str]  # a raw py-spy frame -> its short name, or its part of the code


def tree(stacks: collections.Counter[tuple[str, ...]], short: Namer, part: Namer) -> Node:
    root = Node()
    for stack, n in stacks.items():
        root.samples += n
        node = root
        for frame in stack:
            name = short(frame)
            child = node.children.get(name)
            if child is None:
                child = node.children[name] = Node(part=part(frame))
            child.samples += n
            node = child
    return root


def depth(node: Node, total: int) -> int:
    kids = [c for c in node.children.values() if c.samples / total >= MIN_SHARE]
    return 1 + max((depth(c, total) for c in kids), default=0)


def fitted(name: str, width: float) -> str:
    """The frame's name as far as it fits in the box (6.5 px a character)."""
    room = int(width / 6.5)
    if room >= len(name):
        return name
    return name[: room - 2] + ".." if room >= 5 else ""


def boxes(node: Node, total: int, x: float, level: int, out: list[str], height: int) -> None:
    for name, child in sorted(node.children.items()):
        share = child.samples / total
        if share < MIN_SHARE:
            x += share * WIDTH
            continue
        w = share * WIDTH
        y = height - (level + 1) * ROW
        label = escape(fitted(name, w))
        out.append(f'<g><title>{escape(name)}: {child.samples} samples, {share:.1%} ({escape(child.part)})</title>'
                   f'<rect x="{x:.1f}" y="{y}" width="{max(w - 0.5, 0.5):.1f}" height="{ROW - 1}" '
                   f'fill="{COLOURS.get(child.part, "#dddddd")}"/>'
                   f'<text x="{x + 3:.1f}" y="{y + ROW - 4}">{label}</text></g>')
        boxes(child, total, x, level + 1, out, height)
        x += w


def svg(stacks: collections.Counter[tuple[str, ...]], title: str, short: Namer, part: Namer) -> str:
    root = tree(stacks, short, part)
    total = root.samples or 1
    legend_y = 2 * ROW
    height = legend_y + (depth(root, total) + 1) * ROW
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="monospace" font-size="{FONT_PX}px">',
           f'<rect width="100%" height="100%" fill="white"/><text x="4" y="{ROW - 3}" font-weight="bold">'
           f'{escape(title)} ({root.samples} samples; width = share of the worker\'s CPU; hover for figures)</text>']
    x = 4.0
    for name in COLOURS:
        out.append(f'<rect x="{x:.0f}" y="{ROW + 2}" width="10" height="10" fill="{COLOURS[name]}"/>'
                   f'<text x="{x + 14:.0f}" y="{ROW + 11}">{escape(name)}</text>')
        x += 14 + 7 * len(name) + 16
    boxes(root, total, 0.0, 0, out, height)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(stacks: collections.Counter[tuple[str, ...]], title: str, path: Path, short: Namer, part: Namer) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg(stacks, title, short, part))
    return path
