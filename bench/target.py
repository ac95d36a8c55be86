"""The HTTP benchmark aimed at a deployment the harness did not start (make bench-target
TARGET=http://host:port): a load balancer in front of many instances, a compose stack, a staging
service. It needs nothing of the target but the API.

Against its own data it cannot know, it measures paths it makes itself, all under tags unique to
the run: registers a user, posts (1-3 tags from a Zipf spread over 1,000 run tags), reads the
run's hottest tag (hit: cached after the first read), reads a never-used tag per request (miss:
the fill path, finding nothing), and /ping (floor). The tweets it posts stay in the target.
Results (with the target's /metrics counted around each run, when it has them) go to
results/bench-target/; RESULTS.md is about this machine and is not touched.

    python -m bench.target --url http://127.0.0.1:2080 [--seconds 10] [--connections 64]
                           [--metrics URL,URL]   (every instance's, to sum; default: the target's)
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from typing import Any

import httpx
import psutil

from bench.harness import log, wrk
from bench.scrape import between, try_scrape
from service.settings import ROOT


class Target:
    """A server the harness did not start: nothing of it runs here, so no CPU is measured."""

    def __init__(self, url: str) -> None:
        self._url = url.rstrip("/")

    @property
    def url(self) -> str:
        return self._url

    def processes(self) -> list[psutil.Process]:
        return []


def register(url: str, run: str) -> str:
    user, password = f"bench_{run}", secrets.token_urlsafe(16)
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/api/v1/register", json={"username": user, "password": password, "full_name": "bench"})
        r.raise_for_status()
        r = c.post("/api/v1/login", json={"username": user, "password": password})
        r.raise_for_status()
        return str(r.json()["access_token"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--metrics", default="", help="comma-separated URLs whose /metrics are summed")
    args = parser.parse_args()
    target = Target(args.url)
    scraped = args.metrics.split(",") if args.metrics else [target.url]
    run = secrets.token_hex(3)
    bearer = register(target.url, run)
    hot = f"bt{run}x"
    plan = [("floor", "floor", {}),
            ("post", "post", {"PREFIX": hot}),
            ("hit", "hit", {"PATHS": f"/api/v1/search-tweets?tag={hot}1&page=1&page_size=10"}),
            ("miss", "cold", {"PREFIX": f"bm{run}x", "COUNT": "100000000"})]
    results: dict[str, Any] = {"target": target.url, "run": run, "seconds": args.seconds,
                               "connections": args.connections, "measured_at": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                                time.gmtime()),
                               "paths": {}}
    for name, script, env in plan:
        # Warm-up; for the miss path on other never-used tags than the run's.
        wrk(target, script, 2, bearer, None, connections=args.connections,
            script_env={**env, "START": "50000000"} if name == "miss" else env)
        before = try_scrape(scraped)
        out = wrk(target, script, args.seconds, bearer, None, connections=args.connections, script_env=env)
        for key in ("cpu_us_per_request", "server_cpu_pct"):
            out.pop(key, None)  # not measurable from here
        out["metrics"] = between(before, try_scrape(scraped))
        results["paths"][name] = out
        log(f"  {name:<6} {out['rps']:>9.0f} req/s  p50 {out['p50_ms']:.2f} ms  p99 {out['p99_ms']:.2f} ms  "
            f"errors {out['errors']}  {out['metrics'].get('cache', '')}")
    folder = ROOT / "results" / "bench-target"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=1))
    log(f"results: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
