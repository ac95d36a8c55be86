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
    from service.http.sanic_side import SanicProtocol


def migrate(settings: Settings) -> list[str]:
    """Apply pending sql/ migrations (directly to PostgreSQL, never through a pooler)."""
    from service.db.migrate import migrate as run_migrations

    return asyncio.run(run_migrations(settings.db.migrate_database_url or settings.db.database_url))


def serve(settings: Settings) -> None:
    """Migrate (MIGRATE_ON_START) and serve on HOST:PORT with settings resolved once and handed to
    every worker (and to any worker restarted later)."""
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from service import manager
    from service.app import create_app, internals, metrics_folder
    from service.http import sanic_side

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
    manager.install()  # stops cleanly whenever the stop comes (service/manager.py)
    settings = internals(settings)
    loader = AppLoader(factory=partial(create_app, settings, served_by_front=sanic_side.supported()))
    app = loader.load()
    app.prepare(host=settings.host, port=settings.port, workers=settings.workers,
                access_log=settings.http.access_log, motd=False, backlog=1024, protocol=protocol(settings))
    Sanic.serve(primary=app, app_loader=loader)


def protocol(settings: Settings) -> type[SanicProtocol]:
    """The front's protocol (service/http/protocol.py: the request deadline, the connection bound and
    what the route table answers), or, under a Sanic it was not written for, Sanic's own
    (internals() turned the front off and said so)."""
    from service.http import sanic_side
    from service.http.protocol import FrontProtocol

    return FrontProtocol if sanic_side.supported() else sanic_side.SanicProtocol


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("command", choices=["run", "migrate"],
                        help="run: migrate (MIGRATE_ON_START), then serve; migrate: apply pending migrations")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings().with_secret()
        if args.command == "migrate":
            if not (settings.db.migrate_database_url or settings.db.database_url):
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
