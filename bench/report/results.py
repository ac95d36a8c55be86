"""Every run's measurements, loaded once into one typed object (bench/results/*.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.paths import RESULTS


def load_json(path: Path) -> Any:
    """A results file, or None when that run has not been made."""
    return json.loads(path.read_text()) if path.exists() else None


@dataclass(frozen=True)
class Results:
    """make bench's own runs (http, micro, profile) and the other commands' latest (make soak,
    chaos, bench-instances, bench-scale, bench-detect), each None until it has run."""

    quick: bool
    http: dict[str, Any]
    micro: dict[str, Any] | None  # None where micro.json is absent (a clone before it was committed)
    profile: dict[str, Any] | None
    detection: dict[str, Any] | None
    soak: dict[str, Any] | None
    instances: dict[str, Any] | None
    scale: dict[str, Any] | None
    chaos: dict[str, Any] | None
    chaos_pooled: dict[str, Any] | None
    chaos_partition: dict[str, Any] | None
    injected: dict[str, Any] | None
    curves: dict[str, Any] | None  # make bench-curves's (bench/curves.py)
    network: dict[str, Any] | None  # make bench-network's (bench/network/)
    history: list[dict[str, Any]]  # make bench-history's and make bench's records (bench/history.py)

    @property
    def default(self) -> dict[str, Any]:
        """The endpoints with every tuning on, cache on."""
        return dict(self.http["endpoints"]["default"])

    @property
    def cold(self) -> dict[str, Any]:
        """The endpoints with CACHE_ENABLED=false (bypass is measured there)."""
        return dict(self.http["endpoints"]["cache off"])

    @property
    def cores(self) -> int:
        return int(self.http["facts"]["machine"]["cores"])

    def ablation_base(self, path: str) -> dict[str, Any]:
        """What the ablation rows are compared with: every tuning on, measured as they are (runs
        before it was measured so: the default run's)."""
        base = self.http.get("ablation_base")
        return dict(base[path]) if base else self.run(path)

    def run(self, path: str) -> dict[str, Any]:
        """A path's run: bypass from the cache-off server, every other from the default one."""
        return dict((self.cold if path == "bypass" else self.default)[path])


def load(quick: bool = False, folder: Path = RESULTS) -> Results:
    suffix = "-quick" if quick else ""
    return Results(
        quick=quick, http=json.loads((folder / f"http{suffix}.json").read_text()),
        micro=load_json(folder / f"micro{suffix}.json"),
        profile=load_json(folder / f"profile{suffix}.json"), detection=load_json(folder / "detection.json"),
        soak=load_json(folder / "soak.json"), instances=load_json(folder / "instances.json"),
        scale=load_json(folder / "scale.json"), chaos=load_json(folder / "chaos.json"),
        chaos_pooled=load_json(folder / "chaos-pooled.json"),
        chaos_partition=load_json(folder / "chaos-partition.json"), injected=load_json(folder / "injected.json"),
        curves=load_json(folder / f"curves{suffix}.json"), network=load_json(folder / f"network{suffix}.json"),
        history=[json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines() if line.strip()]
        if (folder / "history.jsonl").exists() else [])
