"""One service process, started and stopped by one piece of code: `python -m service start`, the
tests, the benchmarks and the chaos run all use it.

The process gets its own process group, so stopping it also reaps what Sanic started (its
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


class ServiceError(RuntimeError):
    pass


def answers(url: str) -> bool:
    """Does a service answer /ping at url?"""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=1) as r:  # noqa: S310 (our own URL)
            return bool(r.status == 200)
    except OSError:
        return False


SERVICE_RUN = (sys.executable, "-m", "service", "run")


class ServiceProcess:
    """`python -m service run` (or another command serving /ping, such as the peer stack) with
    the given environment (PORT included)."""

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
        clean = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                clean = False
                self.proc.kill()
                self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
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
