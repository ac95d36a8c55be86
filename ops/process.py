"""Processes started and stopped by one piece of code each: `terminate` stops any process or
process group (the servers of the stack, HAProxy, a background service, Locust), and
ServiceProcess starts one service process (`python -m ops start`, the tests, the benchmarks, the
chaos run and the balancer's instances all use it).

A service process gets its own process group, so stopping it also reaps what Sanic started (its
shared-state manager outlives a main process that was killed).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from service.settings import ROOT


def _alive(pid: int, group: bool) -> bool:
    """Is the process (or any of its group) still there? Reaps it first when it is our child."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_pid(pidfile: Path) -> int | None:
    """The process id on a pid file's first line, or None."""
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_gone(pid: int, seconds: float, *, group: bool = False) -> bool:
    """Wait until the process (or its whole group) has gone: True if it did within seconds."""
    deadline = time.monotonic() + seconds
    while _alive(pid, group):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def terminate(pid: int | None, *, group: bool = False, grace: float = 30) -> str:
    """Stop a process (or its process group): SIGTERM, wait up to grace seconds, then SIGKILL,
    and reap it when it is our child. Returns "not running", "stopped", "killed" or "survived".
    A missing or non-positive pid signals nothing: os.kill(0, ...) would stop our own group."""
    if pid is None or pid <= 0:
        return "not running"
    send = os.killpg if group else os.kill
    try:
        send(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "not running"
    if wait_gone(pid, grace, group=group):
        return "stopped"
    try:
        send(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    return "killed" if wait_gone(pid, 5, group=group) else "survived"


def sweep_group(pgid: int) -> None:
    """SIGKILL whatever of a process group is left (Sanic's manager after its main process)."""
    if pgid <= 0:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class ServiceError(RuntimeError):
    pass


def answers(url: str) -> bool:
    """Does a service answer /ping at url?"""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=1) as r:  # noqa: S310 (our own URL)
            return bool(r.status == 200)
    except OSError:
        return False


# The embedded stack up, settings resolved, then the service (the tests, the benchmarks, `start`).
SERVICE_RUN = (sys.executable, "-m", "ops", "run")
# The service alone, on the URLs and secret in its environment: what the image runs, and what
# bench/check.py runs in every tree it compares (a baseline commit may predate ops/).
SERVICE_ONLY = (sys.executable, "-m", "service", "run")


class ServiceProcess:
    """`python -m ops run` (or another command serving /ping, such as a peer stack) with the given
    environment (PORT included)."""

    def __init__(self, env: Mapping[str, str], log_path: Path, *, cwd: Path = ROOT,
                 cpus: str | None = None, host: str = "127.0.0.1",
                 command: tuple[str, ...] | list[str] = SERVICE_RUN) -> None:
        self.env = dict(env)
        self.command = list(command)
        self.log_path = log_path
        self.cwd = cwd
        self.cpus = cpus  # taskset CPU list, when given and taskset exists
        self.url = f"http://{host}:{self.env['PORT']}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60, append_log: bool = False) -> ServiceProcess:
        """Start and wait until /ping answers; ServiceError (with the log's tail) otherwise."""
        pin = ["taskset", "-c", self.cpus] if self.cpus and shutil.which("taskset") else []
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A file, not a pipe: a pipe nobody reads fills up and blocks the server's next log line.
        with self.log_path.open("ab" if append_log else "wb") as log:
            self.proc = subprocess.Popen([*pin, *self.command], cwd=self.cwd,
                                         env={**os.environ, **self.env}, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(f"the service exited: {self.log_tail()}")
            if answers(self.url):
                return self
            time.sleep(0.1)
        self.stop()
        raise ServiceError(f"no answer on {self.url} within {timeout:g} s: {self.log_tail()}")

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM (Sanic drains and stops its workers), SIGKILL after the timeout, then whatever
        of the process group is left. True if it stopped by itself."""
        if self.proc is None:
            return True
        pid = self.proc.pid
        clean = self.proc.poll() is not None or terminate(pid, grace=timeout) in ("stopped", "not running")
        self.proc.wait()
        sweep_group(pid)
        self.proc = None
        return clean

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
