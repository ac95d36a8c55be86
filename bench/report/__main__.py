"""python -m bench.report [--quick]: RESULTS.md (or RESULTS-quick.md) and its plots from the
results on disk; after a full run, docs/SCALING.md's measured section too."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bench.check import named_baseline
from bench.paths import PLOTS, RESULTS, RESULTS_MD
from bench.report import capacity, history, network, plots, runs, sections
from bench.report.markdown import section_span
from bench.report.results import Results, load
from service.settings import ROOT


def http_run(r: Results, lines: list[str], part: str = "endpoints") -> list[str]:
    """Sections of make bench's own run, each heading saying where it was measured if not the
    current service: the commit its part of the run (bench.load PARTS) was measured at."""
    at = (r.http.get("measured_at") or {}).get(part)
    source = {"commit": at} if at else r.http
    return [runs.titled(line, source) if line.startswith("## ") else line for line in lines]


def micro_run(r: Results, lines: list[str]) -> list[str]:
    """The microbenchmarks' section, titled with the commit pytest-benchmark recorded."""
    assert r.micro is not None
    info = r.micro.get("commit_info") or {}
    at = str(info.get("id") or "")[:7] + (" (with uncommitted changes)" if info.get("dirty") else "")
    return [runs.titled(line, {"commit": at} if info.get("id") else r.http) if line.startswith("## ") else line
            for line in lines]


def kept(title: str, document: Path) -> list[str]:
    """A section as `document` has it (heading to the next one), for a run whose results are not on
    disk: written again as it was measured, not dropped; [] where the document has none."""
    text = document.read_text() if document.exists() else ""
    span = section_span(text, title)
    if span is None:
        return []
    lines = text[span[0]:span[1]].rstrip("\n").split("\n")
    measured = re.search(r"\(measured at (\w+)", lines[0])  # titled again: service/ may have changed since
    return [runs.titled(title, {"commit": measured.group(1)}) if measured else lines[0], *lines[1:]]


def render(r: Results, plot_dir: str, target: Path = RESULTS_MD) -> list[str]:
    """RESULTS.md's sections in order, each from what its run recorded (absent runs left out)."""
    out = [*sections.header(r), "", *http_run(r, [*sections.method(r), "", *sections.targets(r)]), "",
           *http_run(r, sections.ceiling(r), "ceiling"), "", *http_run(r, sections.cpu(r))]
    if r.profile is not None:
        out += ["", *runs.profile_section(r.profile)]
    out += ["", *http_run(r, [*sections.endpoints(r, plot_dir), "", *sections.ratios(r), "", *sections.peers(r)])]
    if r.curves is not None:
        login = r.default.get("login") or {}
        login_us = (login.get("cpu_us_per_request") or {}).get("server")
        out += ["", *capacity.section(r.curves, plot_dir, login_us)]
    if r.network is not None:
        out += ["", *network.section(r.network)]
    if r.http["workers"]:
        out += ["", *http_run(r, sections.worker_counts(r, plot_dir), "workers")]
    if r.http["ablation"]:
        out += ["", *http_run(r, sections.ablation(r, plot_dir), "ablation")]
    out += ["", *http_run(r, sections.constant_rate(r, plot_dir), "constant_rate"), "",
            *http_run(r, sections.visibility(r), "visibility"), "",
            *(micro_run(r, sections.micro(r)) if r.micro is not None else kept(sections.MICRO_TITLE, target))]
    if r.soak is not None:
        out += ["", *runs.soak_section(r.soak)]
    if r.instances is not None:
        out += ["", *runs.instances_section(r.instances)]
    if r.scale is not None:
        out += ["", *runs.scale_section(r.scale, plot_dir)]
    for chaos in (r.chaos, r.chaos_pooled):
        if chaos is not None:
            out += ["", *runs.chaos_section(chaos)]
    if r.chaos_partition is not None:
        out += ["", *runs.partition_section(r.chaos_partition)]
    if r.history and not r.quick:
        out += ["", *history.section(r.history, named_baseline(), plot_dir, history.landed())]
    return [*out, "", *runs.detection_section(r.detection, r.injected), "", *sections.run_settings(r)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    r = load(args.quick)
    # The full run's plots are committed with RESULTS.md; a quick run's stay in the ignored results.
    folder = RESULTS / "quick" if args.quick else PLOTS
    images = plots.plots(r, folder)
    if r.scale is not None:
        images.append(plots.scale_plot(r.scale, folder))
    if r.curves is not None:
        images += capacity.plots(r.curves, folder)
    if r.history and not args.quick:
        images.append(history.plot(r.history, named_baseline(), folder))
    target = ROOT / "RESULTS-quick.md" if args.quick else RESULTS_MD
    target.write_text("\n".join(render(r, folder.relative_to(ROOT).as_posix(), target)) + "\n")
    if not args.quick:
        runs.publish_scaling(r.http, r.scale, r.instances)
    print(f"wrote {target.name} and {', '.join(images)}")


if __name__ == "__main__":
    main()
