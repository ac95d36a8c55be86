"""The worker manager's stop signal: noted by the handler, acted on by the main loop."""

from __future__ import annotations

import signal
from typing import Any

from sanic.worker.manager import MonitorCycle

from service.manager import StoppableManager


class Process:
    """A worker process whose state lives in the shared dict: touching it from the signal handler
    is what breaks a call on that dict in progress."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.name, self.pid = "Sanic-Server-0-0", 12345

    def is_alive(self) -> bool:
        return True

    def terminate(self) -> None:
        self.calls.append("terminate")


def manager(calls: list[str]) -> Any:
    m: Any = object.__new__(StoppableManager)  # only what the stop uses
    m.transient, m.durable = {"Server-0": type("W", (), {"processes": [Process(calls)]})()}, {}
    m._shutting_down = False
    return m


def test_the_handler_touches_no_worker_and_the_loop_stops_them() -> None:
    calls: list[str] = []
    m = manager(calls)
    m.shutdown_signal(signal.SIGTERM, None)
    assert calls == []  # nothing from inside the handler
    assert m._all_workers_ack()  # a wait for the workers to start ends
    assert m._poll_monitor() is MonitorCycle.BREAK
    assert calls == ["terminate"] and m._shutting_down


def test_a_signal_after_the_stop_began_is_sanics_kill() -> None:
    killed: list[bool] = []
    m = manager([])
    m.kill = lambda: killed.append(True)
    m.shutdown_signal(signal.SIGTERM, None)
    m.shutdown_signal(signal.SIGTERM, None)  # before the loop acted: the same stop
    assert killed == []
    assert m._poll_monitor() is MonitorCycle.BREAK
    m.shutdown_signal(signal.SIGINT, None)
    assert killed == [True]
