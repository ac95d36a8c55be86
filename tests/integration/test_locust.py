"""The Locust scenarios against the real running service: headless runs, the web UI, the gates."""

import csv
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from loadtests.run import UI_LOAD, ui_command
from service.settings import ROOT
from tests.conftest import Server, free_port

LOCUSTFILE = str(ROOT / "loadtests" / "locustfile.py")
SCENARIOS = ["ReaderUser", "ColdReaderUser", "PosterUser", "RegistrarUser", "MixedUser"]


def locust(host: str, out: Path, *args: str, seconds: int = 8) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--host", host, "--headless", "-u", "10",
           "-r", "10", "-t", f"{seconds}s", "--csv", str(out / "stats"), "--only-summary", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def stats(out: Path) -> dict[str, dict[str, str]]:
    with (out / "stats_stats.csv").open() as f:
        return {f"{r['Type']} {r['Name']}": r for r in csv.DictReader(f)}


def test_every_scenario_runs_clean(server: Server, tmp_path: Path) -> None:
    result = locust(server.url, tmp_path, *SCENARIOS, seconds=10)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = stats(tmp_path)
    for endpoint in ("POST /api/v1/register", "POST /api/v1/login", "GET /api/v1/search-tweets",
                     "POST /api/v1/tweet", "GET /api/v1/me"):
        assert int(rows[endpoint]["Request Count"]) > 0, endpoint
        assert rows[endpoint]["Failure Count"] == "0", (endpoint, rows[endpoint])
    assert not any("tag=" in name for name in rows), "requests must be named by endpoint, not URL"


def test_gate_fails_on_latency_bound(server: Server, tmp_path: Path) -> None:
    result = locust(server.url, tmp_path, "--max-p95-ms", "0.001", "ReaderUser", seconds=4)
    assert result.returncode == 3
    assert "GATE FAILED" in result.stderr and "p95" in result.stderr


def test_gate_fails_on_errors(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: every request fails
    result = locust(dead, tmp_path, "ReaderUser", seconds=3)
    assert result.returncode == 3
    assert "GATE FAILED" in result.stderr and "failure ratio" in result.stderr


def test_web_ui_lists_scenarios(server: Server) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--host", server.url,
                             "--web-host", "127.0.0.1", "--web-port", str(port), "--class-picker"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        page = None
        while time.monotonic() < deadline:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert page is not None and page.status_code == 200
        for name in SCENARIOS:
            assert name in page.text, name
        assert server.url in page.text  # host preset
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def start_ui(host: str, port: int, offered: str, scenario: str = "all") -> subprocess.Popen[bytes]:
    """The UI as `make locust` opens it (loadtests/run.py's command), offering `offered`."""
    env = {**os.environ, "LOCUST_SCENARIOS": offered}
    proc = subprocess.Popen(ui_command(scenario, host, port), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the Locust UI did not start")


def test_web_ui_offers_one_scenario_ticked_and_the_shapes(server: Server) -> None:
    port = free_port()
    proc = start_ui(server.url, port, "MixedUser", "mixed")
    try:
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
        assert "MixedUser" in page and "StepLoadShape" in page
        assert not any(name in page for name in SCENARIOS if name != "MixedUser")  # nothing else ticked
        users, rate = UI_LOAD["mixed"]  # the form opens with the scenario's load, not 1 and 1
        shown = re.findall(r'"(?:num_users|spawn_rate)":\s*[0-9.]+', page)
        assert re.search(rf'"num_users":\s*{users}\b', page), shown
        assert re.search(rf'"spawn_rate":\s*{rate:g}\b', page), shown
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_stop_frees_the_ui_port(server: Server) -> None:
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", 8089)) != 0, "port 8089 is already in use"
    proc = start_ui(server.url, 8089, "all")
    try:
        stopped = subprocess.run([sys.executable, "-m", "loadtests.run", "--stop"], cwd=ROOT,
                                 capture_output=True, text=True, timeout=60, check=False)
        assert stopped.returncode == 0 and "Locust UI stopped" in stopped.stdout, stopped
        assert proc.wait(timeout=15) is not None
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", 8089)) != 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_headless_run_reports_the_targets_metrics(server: Server, tmp_path: Path) -> None:
    """make loadtest aimed at a running service: its /metrics, scraped before and after, gives the
    run's searches by cache outcome and the pool's waits."""
    result = subprocess.run([sys.executable, "-m", "loadtests.run", "--host", server.url,
                             "--scenario", "reader", "--users", "5", "--duration", "4s",
                             "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    searches = int(stats(tmp_path)["GET /api/v1/search-tweets"]["Request Count"])
    counted = json.loads((tmp_path / "metrics.json").read_text())
    # The target counted what Locust sent, and more: requests Locust's users had going when it
    # stopped them are answered by the server but not in Locust's table (about two per user here;
    # the exact counting is test_metrics.py's).
    assert searches <= sum(counted["cache"].values()) <= searches * 1.3 + 10
    # repeated searches of the seeded tags: some hit, and the ratio is the counts' own
    assert counted["cache"]["HIT"] > 0
    searches_counted = sum(counted["cache"].values())
    assert abs(counted["hit_ratio"] - counted["cache"]["HIT"] / searches_counted) < 1e-3
    assert counted["pool_acquires"] > 0
    assert "cache hit ratio" in result.stdout
