"""python -m service run | migrate: the application on the settings in its environment (what the
image runs). DATABASE_URL, REDIS_URL and, in production, TOKEN_SECRET are given; the developer's
embedded stack is `python -m ops`'s job (ops/__main__.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
from functools import partial
from typing import TYPE_CHECKING

from service.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from sanic.server.protocols.http_protocol import HttpProtocol


def migrate(settings: Settings) -> list[str]:
    """Apply pending sql/ migrations (directly to PostgreSQL, never through a pooler)."""
    from service.db.migrate import migrate as run_migrations

    return asyncio.run(run_migrations(settings.migrate_database_url or settings.database_url))


def serve(settings: Settings) -> None:
    """Migrate (MIGRATE_ON_START) and serve on HOST:PORT with settings resolved once and handed to
    every worker (and to any worker restarted later)."""
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from service.app import create_app, metrics_folder

    settings.require_resolved()
    # Every worker writes its metrics there and any of them serves the sum (service/metrics.py):
    # emptied, so no earlier run's counts remain.
    shutil.rmtree(metrics_folder(settings), ignore_errors=True)
    applied = migrate(settings) if settings.migrate_on_start else []
    if applied:
        print(f"migrations applied: {', '.join(applied)}", flush=True)
    url = f"http://{settings.host}:{settings.port}"
    print(f"Simple Twitter on {url} ({settings.workers} worker{'s' if settings.workers > 1 else ''}): "
          f"Swagger UI {url}/swagger, OpenAPI {url}/openapi.json; Ctrl-C stops it", flush=True)
    stop_ends_the_wait_for_workers()
    loader = AppLoader(factory=partial(create_app, settings, served_by_guarded_protocol=True))
    app = loader.load()
    app.prepare(host=settings.host, port=settings.port, workers=settings.workers,
                access_log=settings.access_log, motd=False, backlog=1024, protocol=protocol(settings))
    Sanic.serve(primary=app, app_loader=loader)


def stop_ends_the_wait_for_workers() -> None:
    """Sanic's main process, told to stop (SIGTERM, Ctrl-C) while its workers start, hangs or
    leaves a worker serving (sanic-org/sanic#2997; a fix proposed in #3063): it goes on waiting
    for the workers' word that they started, re-reading its own stop message, until a second
    signal; and a worker that gets its stop (SIGINT) before it handles signals, then says it
    started, overwrites the TERMINATED its manager wrote and serves on. Its manager is made to
    end that wait on a stop, and to stop again any worker that says it started after the stop;
    a worker also looks for that word while it starts (service/app.py, stop_when_told)."""
    import os
    import signal
    import time

    import sanic.mixins.startup
    from sanic.worker.constants import ProcessState
    from sanic.worker.manager import WorkerManager

    class StoppableManager(WorkerManager):
        def _all_workers_ack(self) -> bool:
            return bool(self._shutting_down) or bool(super()._all_workers_ack())  # type: ignore[no-untyped-call]

        def join(self) -> None:
            while self._shutting_down and any(p.is_alive() for p in self.processes):
                for p in self.processes:
                    if p.is_alive() and self.worker_state.get(p.name, {}).get("state") == "ACKED":
                        p.set_state(ProcessState.TERMINATED, force=True)
                        os.kill(p.pid, signal.SIGINT)
                time.sleep(0.1)
            super().join()  # type: ignore[no-untyped-call]

    sanic.mixins.startup.WorkerManager = StoppableManager  # type: ignore[attr-defined]


def protocol(settings: Settings) -> type[HttpProtocol]:
    """Sanic's HTTP/1.1 protocol with a whole-request deadline and a connection bound
    (service/connections.py), or that one answering searches itself (service/fastpath.py): cached
    ones (USE_FAST_HITS, with the cache and the in-process pages on) and the others (USE_LEAN_SEARCH),
    and posts (USE_LEAN_POST);
    only where it can answer some (it would only cost every search a look), and not with the
    access log on, which it would not write."""
    from service.connections import GuardedProtocol
    from service.fastpath import FastHitProtocol

    fast = settings.fast_hits or settings.use_lean_search or settings.use_lean_post
    return FastHitProtocol if fast and not settings.access_log else GuardedProtocol


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("command", choices=["run", "migrate"],
                        help="run: migrate (MIGRATE_ON_START), then serve; migrate: apply pending migrations")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings().with_secret()
        if args.command == "migrate":
            if not (settings.migrate_database_url or settings.database_url):
                raise SettingsError("DATABASE_URL not set")
            print(json.dumps({"applied": migrate(settings)}))
        else:
            serve(settings)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
