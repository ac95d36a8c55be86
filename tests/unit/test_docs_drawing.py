"""docs/architecture.svg is drawn from docs/architecture.dot (make docs): every box and arrow label
of the source is in the picture, and every module the picture names exists."""

from __future__ import annotations

import html
import re

from service.settings import ROOT

DOCS = ROOT / "docs"


def test_the_picture_shows_what_its_source_says() -> None:
    source = (DOCS / "architecture.dot").read_text()
    svg = html.unescape((DOCS / "architecture.svg").read_text())
    texts = {" ".join(t.split()) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)}
    labels = re.findall(r'label="([^"]*)"', source)
    lines = [" ".join(line.split()) for label in labels for line in label.split("\\n")]
    assert len(lines) > 20
    for line in lines:
        assert line in texts, f"{line!r} is in architecture.dot, not in the svg: make docs"


def test_every_module_the_picture_names_exists() -> None:
    source = (DOCS / "architecture.dot").read_text()
    named = set(re.findall(r"(service/[a-z_/]+(?:\.py|/))", source))
    assert named
    for path in named:
        assert (ROOT / path).exists(), path
    for module in re.findall(r"\b([a-z_]+\.py)\b", source.replace("\\n", " ")):
        assert list(ROOT.glob(f"service/**/{module}")) or list(ROOT.glob(f"ops/{module}")), module
