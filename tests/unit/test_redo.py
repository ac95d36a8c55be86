"""make bench SECTION=<name>: one part measured again, the others kept, each section's heading
naming the commit its own part was measured at."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.load import PARTS, measured_at
from bench.redo import REPORT, SECTIONS, commands
from bench.report.__main__ import http_run, kept
from service.settings import ROOT

OLD = "5473dd5"  # a commit service/ has changed since (the check's first baseline)


def test_every_part_of_the_load_run_and_every_other_run_of_make_bench_can_be_redone() -> None:
    assert {p.replace("_", "-") for p in PARTS} <= set(SECTIONS)
    makefile = (ROOT / "Makefile").read_text()
    for module in ("bench.instances", "bench.curves", "bench.network", "bench.profile", "bench.history"):
        assert f"-m {module}" in makefile  # make bench runs it, so a section can redo it
        assert any(module in step for steps in SECTIONS.values() for step in steps), module
    for section in SECTIONS:
        assert commands(section)[-1] == REPORT  # RESULTS.md written again from every result kept
    with pytest.raises(KeyError, match="one of endpoints"):
        commands("nope")


def test_a_part_measured_again_takes_the_commit_of_now_and_the_others_keep_theirs() -> None:
    earlier: dict[str, Any] = {"facts": {"commit": "aaaaaaa"}}
    first = measured_at(earlier, ["ablation"], "bbbbbbb")
    assert first["ablation"] == "bbbbbbb" and first["endpoints"] == "aaaaaaa" and set(first) == set(PARTS)
    again = measured_at({"measured_at": first, "facts": {"commit": "bbbbbbb"}}, ["ceiling"], "ccccccc")
    assert again == {**first, "ceiling": "ccccccc"}


def test_each_section_is_titled_with_its_own_parts_commit() -> None:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    r = SimpleNamespace(http={"facts": {"commit": OLD}, "measured_at": {**dict.fromkeys(PARTS, OLD),
                                                                        "ablation": head}})
    old = http_run(r, ["## Endpoints", "text"], "endpoints")  # type: ignore[arg-type]
    assert old[0].startswith(f"## Endpoints (measured at {OLD}; service/ changed since, last in ")
    assert old[1] == "text"
    assert http_run(r, ["## Ablation"], "ablation") == ["## Ablation"]  # type: ignore[arg-type]
    recorded_before_parts = SimpleNamespace(http={"facts": {"commit": OLD}})
    assert f"measured at {OLD}" in http_run(recorded_before_parts, ["## Ablation"], "ablation")[0]  # type: ignore[arg-type]


def test_a_section_whose_results_are_absent_is_written_again_as_it_was(tmp_path: Path) -> None:
    document = tmp_path / "RESULTS.md"
    document.write_text(f"# RESULTS\n\n## Endpoints\n\nnew\n\n## Microbenchmarks (x) (measured at {OLD}; "
                        "service/ changed since, last in 0000000)\n\n| a | b |\n\n## Soak\n\nkept too\n")
    micro = kept("## Microbenchmarks (x)", document)
    assert micro[1:] == ["", "| a | b |"]
    assert micro[0].startswith(f"## Microbenchmarks (x) (measured at {OLD}; service/ changed since, last in ")
    assert "0000000" not in micro[0]  # titled again against the history as it is now
    assert kept("## Soak", document) == ["## Soak", "", "kept too"]
    assert kept("## Absent", document) == [] and kept("## Soak", tmp_path / "none.md") == []
