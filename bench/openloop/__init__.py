"""The open-loop load generator (openloop.c, built here on first use): requests due on a Poisson
schedule that does not wait for the server, latency counted from when each was due.

    offer(port, stream, rate, seconds) -> what was scheduled, answered, and how fast

A stream is the requests to send, in order and over again: one request for a single path, or a
mix written out in the proportions wanted (bench/curves.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from bench.native import compiled

SOURCE = Path(__file__).with_name("openloop.c")
CONNECTIONS = 128  # enough that a request waits for a connection only when the server is behind


def binary() -> Path:
    return compiled(SOURCE)


def write_stream(path: Path, requests: list[bytes]) -> Path:
    """The requests as the generator reads them: each as a 4-byte little-endian length, then its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(len(r).to_bytes(4, "little") + r for r in requests))
    return path


def offer(port: int, stream: Path, rate: float, seconds: float, *, warmup: float = 1.0,
          connections: int = CONNECTIONS, cpu: str | None = None, poisson: bool = True,
          seed: int = 1) -> dict[str, Any]:
    """The stream offered to 127.0.0.1:port at `rate` requests a second for `seconds` (after
    `warmup` seconds not counted), the generator pinned to `cpu`. Its JSON report, as a dict."""
    cmd = (["taskset", "-c", cpu] if cpu else []) + [
        str(binary()), str(port), str(stream), f"{rate:.3f}", f"{seconds:.3f}", str(connections),
        f"{warmup:.3f}", "1" if poisson else "0", str(seed)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=warmup + seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"openloop failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
