"""Three single-process instances behind a real HAProxy (ops/balancer.py), on the test stack:
a post through one instance is in every other's next search, and an instance stopped under load
loses no acknowledged post while the balancer stops sending to it."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from ops import balancer
from ops.system import port_open
from service.settings import ROOT, Settings
from tests.conftest import TEST_ENV, free_port, register_and_login, tag_ids, unique, wait_until


@pytest.fixture(scope="module")
def three(resolved: Settings) -> Iterator[balancer.Balancer]:
    settings = dataclasses.replace(resolved, port=free_port())
    ports = [free_port() for _ in range(3)]
    env = {k: v for k, v in TEST_ENV.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    with balancer.Balancer(settings, ports, env=env) as running:
        yield running


def search_ids(url: str, tag: str, auth: dict[str, str]) -> list[int]:
    r = httpx.get(f"{url}/api/v1/search-tweets", params={"tag": tag, "page_size": 100}, headers=auth,
                  timeout=10)
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["data"]]


def test_balancer_spreads_requests_over_every_instance(three: balancer.Balancer) -> None:
    assert three.server_states() == {"i1": "UP", "i2": "UP", "i3": "UP"}
    answered = set()
    for _ in range(9):  # a new connection each: HAProxy takes turns
        r = httpx.get(f"{three.url}/ping", timeout=10)
        assert r.status_code == 200
        answered.add(r.headers["x-request-id"].split("-")[0])  # the answering process's prefix
    assert len(answered) == 3


def test_a_post_through_one_instance_is_in_every_others_next_search(three: balancer.Balancer) -> None:
    urls = [p.url for p in three.instances]
    with httpx.Client(base_url=urls[0], timeout=10) as client:
        _, auth = register_and_login(client)
    tag = unique("everywhere")
    for round_ in range(5):
        for url in urls:  # every instance has the tag's page cached, in Redis and in its process
            search_ids(url, tag, auth)
            search_ids(url, tag, auth)
        writer = urls[round_ % 3]
        r = httpx.post(f"{writer}/api/v1/tweet", json={"msg": f"#{tag} round {round_}"}, headers=auth,
                       timeout=10)
        assert r.status_code == 201, r.text
        posted = r.json()["data"]["id"]
        for url in [*urls, three.url]:  # at once, with no wait: every instance and the balancer
            assert search_ids(url, tag, auth)[0] == posted, (round_, url)


def test_an_instance_stopped_under_load_loses_nothing(three: balancer.Balancer) -> None:
    with httpx.Client(base_url=three.url, timeout=10) as client:
        _, auth = register_and_login(client)
    tag = unique("drain")
    acknowledged: list[int] = []
    failures: list[str] = []
    after_stop: list[int] = []  # statuses of requests sent once the instance was gone
    stopped = threading.Event()
    done = threading.Event()

    def writer() -> None:
        with httpx.Client(base_url=three.url, timeout=10) as client:  # keep-alive through HAProxy
            while not done.is_set():
                gone = stopped.is_set()
                try:
                    r = client.post("/api/v1/tweet", json={"msg": f"#{tag} {unique()}"}, headers=auth)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if r.status_code == 201:
                    acknowledged.append(r.json()["data"]["id"])
                else:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                if gone:
                    after_stop.append(r.status_code)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acknowledged) >= 30, what="posts through all three instances")
    victim = three.instances[1]
    assert victim.stop(), "the instance did not stop by itself on SIGTERM"
    stopped.set()
    wait_until(lambda: len(after_stop) > 30, what="posts through the two instances left")
    done.set()
    for t in threads:
        t.join()
    states = three.server_states()
    assert states["i2"] != "UP" and states["i1"] == states["i3"] == "UP", states
    assert not failures, failures[:5]
    assert len(after_stop) > 20 and set(after_stop) == {201}
    # Every acknowledged post is stored and in the tag's search, through what is left.
    with httpx.Client(base_url=three.url, timeout=10) as client:
        seen = tag_ids(client, tag, auth)
    assert set(acknowledged) <= seen, len(set(acknowledged) - seen)
    assert len(acknowledged) > 50


def test_no_instance_up_gives_the_services_json_503(resolved: Settings) -> None:
    settings = dataclasses.replace(resolved, port=free_port())
    env = {k: v for k, v in TEST_ENV.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    with balancer.Balancer(settings, [free_port()], env=env) as one:
        one.instances[0].stop()
        deadline = time.monotonic() + 5
        while one.server_states()["i1"] == "UP" and time.monotonic() < deadline:
            time.sleep(0.05)
        r = httpx.get(f"{one.url}/api/v1/search-tweets", params={"tag": "x"}, timeout=10)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert r.json()["code"] == "serviceUnavailable"


def test_two_clusters_side_by_side_each_stop_their_own_balancer(resolved: Settings) -> None:
    """Each cluster keeps its files apart and stops the HAProxy it started (two clusters of one
    stack used to share a pid file, and the first one's balancer outlived it)."""
    env = {k: v for k, v in TEST_ENV.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    first, second = (balancer.Balancer(dataclasses.replace(resolved, port=free_port()), [free_port()],
                                       env=env)
                     for _ in range(2))
    try:
        first.start()
        second.start()
        pids = [first.haproxy_pid, second.haproxy_pid]
        assert first.directory != second.directory and None not in pids and pids[0] != pids[1]
        for one in (first, second):
            assert httpx.get(f"{one.url}/ping", timeout=10).status_code == 200
    finally:
        second.stop()
        first.stop()
    assert not any(psutil.pid_exists(pid) for pid in pids if pid is not None)
    assert not port_open(first.settings.port) and not port_open(second.settings.port)


def test_cluster_command_up_status_down() -> None:
    """python -m ops balancer up / status / down on the test stack, as make cluster runs it."""
    port = free_port()
    env = {**os.environ, **TEST_ENV, "PORT": str(port)}
    run = [sys.executable, "-m", "ops", "balancer"]
    up = subprocess.run([*run, "up", "--instances", "2", "--base-port", str(free_port())], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120, check=False)
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        assert f"http://127.0.0.1:{port}" in up.stdout
        status = json.loads(subprocess.run([*run, "status"], cwd=ROOT, env=env, capture_output=True,
                                           text=True, timeout=30, check=True).stdout)
        assert status["instances"] == {"i1": "UP", "i2": "UP"}
        overall = json.loads(subprocess.run([sys.executable, "-m", "ops", "status"], cwd=ROOT, env=env,
                                            capture_output=True, text=True, timeout=30, check=True).stdout)
        assert overall["balancer"] == f"http://127.0.0.1:{port}" and overall["service"].startswith("up on")
        assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=10).json() == {"ready": True}
    finally:
        down = subprocess.run([*run, "down"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                              check=False)
    assert down.returncode == 0, down.stderr
    assert "stopped HAProxy and 2 instances" in down.stdout
    assert not port_open(port)


def test_non_ascii_through_the_balancer_is_answered_as_directly(three: balancer.Balancer) -> None:
    """An encoded non-ASCII tag works through HAProxy; raw bytes outside ASCII in the request line
    get the instance's own JSON answer, not HAProxy's HTML page."""
    with httpx.Client(base_url=three.url, timeout=10) as client:
        _, auth = register_and_login(client)
        tag = f"café{unique('')}"
        assert client.post("/api/v1/tweet", json={"msg": f"#{tag} ünïcødé"}, headers=auth).status_code == 201
        assert search_ids(three.url, tag, auth)

    def raw(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall("GET /api/v1/search-tweets?tag=café HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      .encode())
            return b"".join(iter(lambda: s.recv(65536), b""))
    through, direct = raw(three.settings.port), raw(int(three.instances[0].env["PORT"]))
    assert through.split(b"\r\n")[0] == direct.split(b"\r\n")[0] and through.startswith(b"HTTP/1.1 4")
    assert json.loads(through.split(b"\r\n\r\n", 1)[1]) == json.loads(direct.split(b"\r\n\r\n", 1)[1])
