"""The plots beside RESULTS.md, drawn from the loaded results (matplotlib, no screen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bench.report.results import Results

SCALE_PATHS = ("hit", "miss", "bypass", "post", "deep_offset", "deep_keyset")


def save(fig: Figure, folder: Path, name: str) -> str:
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / name, dpi=110)
    plt.close(fig)
    return name


def throughput(results: Results, folder: Path) -> str:
    names = ["floor", "hit", "miss", "bypass", "post", "deep_offset", "deep_keyset", "login"]
    values = [results.run(name)["rps"] for name in names]
    fig, ax = plt.subplots(figsize=(8.5, 3.5))
    ax.bar(names, values, color="#4c72b0")
    ax.set_ylabel("requests/s (1 worker)")
    ax.set_title("Throughput by endpoint")
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    return save(fig, folder, "throughput.png")


def ablation(results: Results, folder: Path) -> str:
    rows = results.http["ablation"]
    labels = ["all tunings on", *rows.keys()]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.21
    for j, endpoint in enumerate(["hit", "miss", "bypass", "post"]):
        ys = [results.ablation_base(endpoint)["rps"]] + [row.get(endpoint, {}).get("rps", 0) for row in rows.values()]
        ax.barh([i + j * width for i in range(len(labels))], ys, height=width, label=endpoint)
    ax.set_yticks([i + 1.5 * width for i in range(len(labels))], labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("requests/s (1 worker)")
    ax.set_title("Each tuning switched off in turn")
    ax.legend()
    return save(fig, folder, "ablation.png")


def latency(results: Results, folder: Path) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    pcts = ["p50_ms", "p90_ms", "p99_ms", "p999_ms"]
    for endpoint, r in results.http["constant_rate"].items():
        ax.plot(["p50", "p90", "p99", "p99.9"], [r[p] for p in pcts], marker="o",
                label=f"{endpoint} @ {r['target_rps']:,.0f} req/s")
    ax.set_yscale("log")
    ax.set_ylabel("latency ms (log)")
    ax.set_title("Latency at 50% of each endpoint's maximum (constant rate)")
    ax.legend(fontsize=8)
    return save(fig, folder, "latency.png")


def workers(results: Results, folder: Path) -> str:
    by_count = results.http["workers"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    counts = sorted(by_count, key=int)
    for j, endpoint in enumerate(["floor", "hit", "bypass", "post"]):
        ax.bar([int(w) + (j - 1.5) * 0.2 for w in counts],
               [by_count[w][endpoint]["rps"] for w in counts], width=0.2, label=endpoint)
    ax.set_xticks([int(w) for w in counts], [f"{w} worker(s)" for w in counts])
    ax.set_ylabel("requests/s")
    ax.set_title(f"Worker scaling ({results.cores} CPUs in all)")
    ax.legend(fontsize=8)
    return save(fig, folder, "workers.png")


def plots(results: Results, folder: Path) -> list[str]:
    """Draw make bench's plots into folder; returns their file names."""
    made = [throughput(results, folder)]
    if results.http["ablation"]:
        made.append(ablation(results, folder))
    made.append(latency(results, folder))
    if results.http["workers"]:
        made.append(workers(results, folder))
    return made


def scale_plot(result: dict[str, Any], folder: Path) -> str:
    """make bench-scale's plot: req/s and p99 of each path by the number of tweets."""
    sizes = [s["tweets"] for s in result["sizes"]]
    paths = [p for p in SCALE_PATHS if p in result["sizes"][0]["paths"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for path in paths:
        left.plot(sizes, [s["paths"][path]["rps"] for s in result["sizes"]], marker="o", label=path)
        right.plot(sizes, [s["paths"][path]["p99_ms"] for s in result["sizes"]], marker="o", label=path)
    for ax, label in ((left, "requests/s (1 worker)"), (right, "p99 latency ms (log)")):
        ax.set_xscale("log")
        ax.set_xlabel("tweets in the database (log)")
        ax.set_ylabel(label)
    right.set_yscale("log")
    left.legend(fontsize=7)
    fig.suptitle("Cost versus data size")
    return save(fig, folder, "scale.png")
