"""python -m ops: the developer's commands around the service.

    run                   the embedded stack up, settings resolved, migrations applied, serve
    migrate               the embedded stack up, migrations applied
    start | stop          the service in the background (pid and log in DATA_DIR)
    status                the background service, the balancer, the Locust UI and the stack
    reset [--yes]         delete the embedded stack's data
    balancer up|down|status [--instances N --pooler --replica --redis-cluster]
    stack up|down|status|destroy [--name run|test|bench|chaos|all]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from ops import balancer, stack
from ops.background import LOCUST_UI_PORT, start, stop
from ops.process import answers
from ops.system import StackError, port_open
from service.__main__ import migrate, serve
from service.settings import Settings, SettingsError, load_settings

Command = Callable[[Settings, argparse.Namespace], int]


def resolved(settings: Settings) -> Settings:
    """The embedded stack up where it is used, and the settings the service runs with."""
    if stack.embedded(settings):
        stack.up(settings)
    return stack.resolve(settings)


def status(settings: Settings) -> dict[str, object]:
    url = f"http://{settings.host}:{settings.port}"
    return {"service": f"up on {url}" if answers(url) else "down", **balancer.status(settings),
            "locust_ui": f"up on http://127.0.0.1:{LOCUST_UI_PORT}" if port_open(LOCUST_UI_PORT) else "down",
            **stack.status(settings)}


def reset(settings: Settings, yes: bool) -> int:
    """Delete the embedded run stack's data; the next start begins empty."""
    if settings.db.database_url or settings.cache.redis_url:
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


def run_command(settings: Settings, args: argparse.Namespace) -> int:
    serve(resolved(settings))
    return 0


def migrate_command(settings: Settings, args: argparse.Namespace) -> int:
    print(json.dumps({"applied": migrate(resolved(settings))}))
    return 0


def start_command(settings: Settings, args: argparse.Namespace) -> int:
    print(start(settings))
    return 0


def stop_command(settings: Settings, args: argparse.Namespace) -> int:
    result = stop(settings)
    print(result)
    return 1 if result.startswith("STILL") else 0


def status_command(settings: Settings, args: argparse.Namespace) -> int:
    print(json.dumps(status(settings)))
    return 0


def reset_command(settings: Settings, args: argparse.Namespace) -> int:
    return reset(settings, args.yes)


def balancer_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "down":
        print(balancer.down(settings))
    elif args.action == "status":
        print(json.dumps(balancer.status(settings)))
    elif not 1 <= args.instances <= 64:
        print("--instances must be 1 to 64", file=sys.stderr)
        return 2
    else:
        up = balancer.up(settings, args.instances, args.base_port, args.pooler, args.replica,
                         args.redis_cluster)
        print(f"Simple Twitter on {up.url}: HAProxy in front of {args.instances} instances on ports "
              f"{', '.join(map(str, up.ports))} (logs in {up.directory}); make stop stops them", flush=True)
    return 0


def stack_command(settings: Settings, args: argparse.Namespace) -> int:
    for name in ["run", *stack.NAMED_STACKS] if args.name == "all" else [args.name]:
        chosen = settings if name == "run" else stack.named(settings, name)
        if args.action == "up":
            stack.up(chosen)
        elif args.action == "down":
            stack.down(chosen)
        shown = {"removed": stack.destroy(chosen)} if args.action == "destroy" else stack.status(chosen)
        print(json.dumps({"stack": name, **shown}))
    return 0


COMMANDS: dict[str, tuple[Command, str]] = {
    "run": (run_command, "start the stack if needed, migrate, serve on HOST:PORT"),
    "migrate": (migrate_command, "apply pending sql/ migrations"),
    "start": (start_command, "run the service in the background (pid and log in DATA_DIR)"),
    "stop": (stop_command, "stop the service started by `start`"),
    "status": (status_command, "the background service, the balancer, the Locust UI and the embedded stack"),
    "reset": (reset_command, "delete the embedded stack's data (asks first)"),
    "balancer": (balancer_command, "N single-process instances behind HAProxy on HOST:PORT"),
    "stack": (stack_command, "the embedded PostgreSQL and Redis (and the tiers beside them)"),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m ops", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    commands = {name: sub.add_parser(name, help=text) for name, (_, text) in COMMANDS.items()}
    commands["reset"].add_argument("--yes", action="store_true", help="do not ask")
    lb = commands["balancer"]
    lb.add_argument("action", choices=["up", "down", "status"])
    lb.add_argument("--instances", type=int, default=2, help="how many instances (default 2)")
    lb.add_argument("--base-port", type=int, default=0,
                    help="the first instance's port; the others follow (default PORT + 100)")
    lb.add_argument("--pooler", action="store_true",
                    help="through PgBouncer in transaction mode (started beside the embedded stack)")
    lb.add_argument("--replica", action="store_true",
                    help="searches that miss the cache may read a streaming replica (started too)")
    lb.add_argument("--redis-cluster", action="store_true",
                    help="the cache on a Redis Cluster of three masters (started too)")
    commands["stack"].add_argument("action", choices=["up", "down", "status", "destroy"],
                                   help="destroy: stop it and delete all it created (make clean)")
    commands["stack"].add_argument("--name", default="run", choices=["run", *stack.NAMED_STACKS, "all"],
                                   help="which stack (default: the settings' run stack; all: every one)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command][0](settings, args)
    except StackError as exc:
        print(f"stack error: {exc}", file=sys.stderr)
        return 1
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
