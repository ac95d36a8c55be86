"""Sanic's worker manager (the main process) made to stop cleanly, whenever the stop comes.

- Told to stop (SIGTERM, Ctrl-C) while its workers start, Sanic's manager hangs or leaves a worker
  serving (sanic-org/sanic#2997; a fix proposed in #3063): it goes on waiting for the workers'
  word that they started, re-reading its own stop message, until a second signal; and a worker
  that gets its stop (SIGINT) before it handles signals, then says it started, overwrites the
  TERMINATED its manager wrote and serves on. This manager ends that wait on a stop, and stops
  again any worker that says it started after the stop; a worker also looks for that word while
  it starts (service/app.py, stop_when_told).
- Sanic's signal handler stops the workers there and then, writing their states into the dict the
  workers share through a multiprocessing manager. A signal that lands while the main loop is
  inside a call on that dict (it reads every worker's state ten times a second) sends a second
  request on the same connection mid-reply: the stop fails with a TypeError and a traceback in the
  log (seen in a CI run, where the fuzz gate failed on it). This handler only notes the stop; the
  main loop acts on it between two calls.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import sanic.mixins.startup
from sanic.log import logger
from sanic.worker.constants import ProcessState
from sanic.worker.manager import MonitorCycle, WorkerManager


class StoppableManager(WorkerManager):
    _stop_signal = 0  # the stop signal received, not yet acted on

    def shutdown_signal(self, signum: int, frame: Any) -> None:
        if self._shutting_down:  # a signal after the stop began: Sanic's own (kill)
            super().shutdown_signal(signum, frame)  # type: ignore[no-untyped-call]
            return
        self._stop_signal = self._stop_signal or signum

    def _poll_monitor(self) -> MonitorCycle | None:
        if self._stop_signal and not self._shutting_down:
            logger.info("Received signal %s. Shutting down.", signal.Signals(self._stop_signal).name)
            self.shutdown()  # type: ignore[no-untyped-call]
            return MonitorCycle.BREAK
        return super()._poll_monitor()

    def _all_workers_ack(self) -> bool:
        return bool(self._shutting_down or self._stop_signal) or bool(super()._all_workers_ack())  # type: ignore[no-untyped-call]

    def join(self) -> None:
        while self._shutting_down and any(p.is_alive() for p in self.processes):
            for p in self.processes:
                if p.is_alive() and self.worker_state.get(p.name, {}).get("state") == "ACKED":
                    p.set_state(ProcessState.TERMINATED, force=True)
                    os.kill(p.pid, signal.SIGINT)
            time.sleep(0.1)
        super().join()  # type: ignore[no-untyped-call]


def install() -> None:
    """Sanic.serve makes its manager from this name."""
    sanic.mixins.startup.WorkerManager = StoppableManager  # type: ignore[attr-defined]
