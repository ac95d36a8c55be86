"""python -m service run | migrate | start | stop | cluster up|down|status | stack up|down|status|destroy"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys

from service import stack
from service.process import answers
from service.settings import Settings, SettingsError, load_settings


def migrate(settings: Settings) -> list[str]:
    from service.db.migrate import migrate as run_migrations

    return asyncio.run(run_migrations(settings.migrate_database_url or stack.urls(settings)[0]))


def run(settings: Settings) -> None:
    """The composition root: the stack up, migrations applied, settings resolved once and handed
    to every worker (and to any worker restarted later)."""
    from functools import partial

    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from service.app import create_app, metrics_folder

    if stack.embedded(settings):
        stack.up(settings)
    settings = stack.resolve(settings)
    # Every worker writes its metrics there and any of them serves the sum (service/metrics.py):
    # emptied, so no earlier run's counts remain.
    shutil.rmtree(metrics_folder(settings), ignore_errors=True)
    applied = migrate(settings) if settings.migrate_on_start else []
    if applied:
        print(f"migrations applied: {', '.join(applied)}", flush=True)
    url = f"http://{settings.host}:{settings.port}"
    print(f"Simple Twitter on {url} ({settings.workers} worker{'s' if settings.workers > 1 else ''}): "
          f"Swagger UI {url}/swagger, OpenAPI {url}/openapi.json; Ctrl-C stops it", flush=True)
    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    app.prepare(host=settings.host, port=settings.port, workers=settings.workers,
                access_log=settings.access_log, motd=False, backlog=1024)
    Sanic.serve(primary=app, app_loader=loader)


def start(settings: Settings) -> str:
    """Run the service in the background (for make locust / loadtest); returns its URL."""
    from service.process import ServiceError, ServiceProcess

    url = f"http://{settings.host}:{settings.port}"
    if answers(url):
        return url
    service = ServiceProcess({"PORT": str(settings.port)}, settings.data_dir / "service.log",
                             host=settings.host)
    try:
        service.start(append_log=True)
    except ServiceError as exc:
        raise stack.StackError(str(exc)) from None
    (settings.data_dir / "service.pid").write_text(str(service.pid))
    return url


def stop(settings: Settings) -> str:
    """Stop a service started by `start`: SIGTERM to its process group, SIGKILL if it is still
    there after 30 s. Says which happened."""
    import os
    import signal
    import time

    pidfile = settings.data_dir / "service.pid"
    if not pidfile.exists():
        return "not running"

    def gone(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False

    try:
        pid = int(pidfile.read_text())
        os.killpg(pid, signal.SIGTERM)
    except (ValueError, ProcessLookupError):
        pidfile.unlink(missing_ok=True)
        return "not running"
    result = "stopped"
    if not gone(30):
        os.killpg(pid, signal.SIGKILL)
        result = "killed (it did not stop within 30 s of SIGTERM)" if gone(5) else \
            f"STILL RUNNING: process group {pid} survived SIGKILL"
    if not result.startswith("STILL"):
        pidfile.unlink(missing_ok=True)
    return result


def status(settings: Settings) -> dict[str, object]:
    """The background service (or make cluster's balancer and instances), the Locust UI and the
    run stack, as one line of JSON."""
    from service import cluster

    url = f"http://{settings.host}:{settings.port}"
    return {"service": f"up on {url}" if answers(url) else "down", **cluster.status(settings),
            "locust_ui": "up on http://127.0.0.1:8089" if stack.port_open(8089) else "down",
            **stack.status(settings)}


def reset(settings: Settings, yes: bool) -> int:
    """Delete the embedded run stack's data; the next start begins empty."""
    if settings.database_url or settings.redis_url:
        print("reset manages only the embedded stack: with DATABASE_URL / REDIS_URL set, reset those "
              "servers yourself", file=sys.stderr)
        return 2
    if not yes:
        if not sys.stdin.isatty():
            print("reset deletes every user and tweet of the dev stack: `make reset YES=1`", file=sys.stderr)
            return 2
        answer = input(f"delete every user, tweet and cached page under {settings.data_dir}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    stop(settings)
    removed = stack.destroy(settings)
    print(f"deleted the dev stack ({', '.join(removed) or 'nothing was there'}); "
          "`make run` starts an empty one")
    return 0


def stack_action(settings: Settings, action: str) -> dict[str, object]:
    if action == "up":
        stack.up(settings)
    elif action == "down":
        stack.down(settings)
    elif action == "destroy":
        return {"removed": stack.destroy(settings)}
    return dict(stack.status(settings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start the stack if needed, migrate, serve on HOST:PORT")
    sub.add_parser("migrate", help="apply pending sql/ migrations")
    sub.add_parser("start", help="run the service in the background (pid and log in DATA_DIR)")
    sub.add_parser("stop", help="stop the service started by `start`")
    sub.add_parser("status", help="the background service, the Locust UI and the embedded stack")
    reset_cmd = sub.add_parser("reset", help="delete the embedded stack's data (asks first)")
    reset_cmd.add_argument("--yes", action="store_true", help="do not ask")
    cluster_cmd = sub.add_parser("cluster", help="N single-process instances behind HAProxy on HOST:PORT")
    cluster_cmd.add_argument("action", choices=["up", "down", "status"])
    cluster_cmd.add_argument("--instances", type=int, default=2, help="how many instances (default 2)")
    cluster_cmd.add_argument("--base-port", type=int, default=0,
                             help="the first instance's port; the others follow (default PORT + 100)")
    cluster_cmd.add_argument("--pooler", action="store_true",
                             help="through PgBouncer in transaction mode (started beside the embedded stack)")
    cluster_cmd.add_argument("--replica", action="store_true",
                             help="searches that miss the cache may read a streaming replica (started too)")
    cluster_cmd.add_argument("--redis-cluster", action="store_true",
                             help="the cache on a Redis Cluster of three masters (started too)")
    stack_cmd = sub.add_parser("stack", help="the embedded PostgreSQL and Redis")
    stack_cmd.add_argument("action", choices=["up", "down", "status", "destroy"],
                           help="destroy: stop it and delete all it created (make clean)")
    stack_cmd.add_argument("--name", default="run", choices=["run", *stack.NAMED_STACKS, "all"],
                           help="which stack (default: the run stack of the settings; all: every one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "run":
            run(settings)
        elif args.command == "start":
            print(start(settings))
        elif args.command == "stop":
            result = stop(settings)
            print(result)
            if result.startswith("STILL"):
                return 1
        elif args.command == "status":
            print(json.dumps(status(settings)))
        elif args.command == "cluster":
            from service import cluster

            if args.action == "up":
                if not 1 <= args.instances <= 64:
                    print("--instances must be 1 to 64", file=sys.stderr)
                    return 2
                up = cluster.up(settings, args.instances, args.base_port, args.pooler, args.replica,
                                args.redis_cluster)
                ports = ", ".join(map(str, up.ports))
                print(f"Simple Twitter on {up.url}: HAProxy in front of {args.instances} instances on ports "
                      f"{ports} (logs in {up.directory}); make stop stops them", flush=True)
            elif args.action == "down":
                print(cluster.down(settings))
            else:
                print(json.dumps(cluster.status(settings)))
        elif args.command == "reset":
            return reset(settings, args.yes)
        elif args.command == "migrate":
            if stack.embedded(settings):
                stack.up(settings)
            print(json.dumps({"applied": migrate(settings)}))
        else:
            names = ["run", *stack.NAMED_STACKS] if args.name == "all" else [args.name]
            for name in names:
                chosen = settings if name == "run" else stack.named(settings, name)
                print(json.dumps({"stack": name, **stack_action(chosen, args.action)}))
    except stack.StackError as exc:
        print(f"stack error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
