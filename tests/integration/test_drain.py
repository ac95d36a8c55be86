"""A stopping worker behind a load balancer keeps taking requests until the balancer has heard
/ready answer 503, however slowly it checks; with no balancer asking, it stops after its drain."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.conftest import start_server


def answered(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ping", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_a_slow_balancers_check_is_waited_for_before_the_listener_closes(
        urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_server(urls, tmp_path_factory, SHUTDOWN_DRAIN_SECONDS="0.3")
    interval = 1.5  # HAProxy checks every 250 ms; a loaded one can be this late
    heard: list[tuple[float, int]] = []  # (when, status) of each check once SIGTERM was sent
    stop_checking = threading.Event()
    signalled = threading.Event()

    def balancer() -> None:
        while not stop_checking.wait(interval):
            try:
                status = httpx.get(f"{server.url}/ready", timeout=5).status_code
            except httpx.TransportError:
                status = 0  # refused: the listener closed before the balancer heard anything
            if signalled.is_set():
                heard.append((time.monotonic(), status))
                if status != 200:
                    return

    checker = threading.Thread(target=balancer)
    try:
        assert answered(server.url)
        checker.start()
        time.sleep(interval + 0.2)  # the balancer has asked at least once
        assert server.proc is not None
        server.proc.send_signal(15)
        signalled.set()
        refused_at = None
        deadline = time.monotonic() + 10
        while refused_at is None and time.monotonic() < deadline:
            if not answered(server.url):  # a new connection each time, as a balancer's would be
                refused_at = time.monotonic()
            time.sleep(0.02)
        checker.join(10)
        told = [when for when, status in heard if status == 503]
        assert told, f"the balancer never heard 503 from /ready: {heard}"
        assert refused_at is not None and refused_at > told[0], \
            "the worker stopped taking connections before the balancer heard it was stopping"
    finally:
        stop_checking.set()
        server.stop()


def test_with_no_balancer_asking_the_drain_is_its_setting_and_no_stop_is_lost(
        urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """SIGTERM as soon as the first answer arrives, while the worker may still be starting: Sanic
    alone hung here (its main process waiting for the worker's start-up word, or the worker
    missing the stop) until a second signal or its 30 s kill, in about half of the tries."""
    for _ in range(4):
        server = start_server(urls, tmp_path_factory, SHUTDOWN_DRAIN_SECONDS="0.3")
        try:
            assert answered(server.url)
            assert server.proc is not None
            sent = time.monotonic()
            server.proc.send_signal(15)
            server.proc.wait(timeout=30)
            # Well under the 5 s a balancer would be waited for: nothing asked /ready.
            assert time.monotonic() - sent < 4, "the worker waited for a balancer nobody runs"
        finally:
            server.stop()
