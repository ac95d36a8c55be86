import collections
import xml.etree.ElementTree as ET

from bench.profile import part, short
from bench.report.flame import WIDTH, svg

NS = "{http://www.w3.org/2000/svg}"


def boxes(doc: str) -> dict[str, float]:
    """Each drawn frame's name (from its tooltip) and width in pixels."""
    root = ET.fromstring(doc)  # noqa: S314 (our own SVG)
    out = {}
    for g in root.iter(f"{NS}g"):
        title = g.find(f"{NS}title")
        rect = g.find(f"{NS}rect")
        assert title is not None and title.text and rect is not None
        out[title.text.split(":")[0]] = float(rect.attrib["width"])
    return out


def test_a_frame_is_as_wide_as_its_share_of_the_samples_and_slivers_are_left_out() -> None:
    stacks: collections.Counter[tuple[str, ...]] = collections.Counter({
        ("serve (sanic/app.py:1)", "handler (/work/service/api/search.py:10)"): 1200,
        ("serve (sanic/app.py:1)", "fetch (asyncpg/connection.py:5)"): 799,
        ("serve (sanic/app.py:1)", "tiny <&> (other.py:1)"): 1,
    })
    drawn = boxes(svg(stacks, "hit <test>", short, part))
    assert abs(drawn["serve (sanic/app.py)"] - WIDTH + 0.5) < 1
    handler, fetch = drawn["handler (/work/service/api/search.py)"], drawn["fetch (asyncpg/connection.py)"]
    assert abs(handler / fetch - 1200 / 799) < 0.01
    assert not any("tiny" in name for name in drawn)  # 0.05% of the samples: not drawn


def test_frames_are_coloured_by_their_part_of_the_code() -> None:
    stacks: collections.Counter[tuple[str, ...]] = collections.Counter(
        {("fetch (asyncpg/connection.py:5)",): 10, ("get (redis/client.py:3)",): 10})
    doc = svg(stacks, "t", short, part)
    assert 'fill="#7fbf7f"' in doc and 'fill="#e8837c"' in doc
