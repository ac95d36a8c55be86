"""The embedded PostgreSQL: one cluster under DATA_DIR/pg, on STACK_PG_PORT, loopback only.

Binaries come from the machine (PATH, then /usr/lib/postgresql/*/bin). PostgreSQL refuses to run
as root, so as root its cluster is owned by the `postgres` user (or `nobody`), and placed under
/var/tmp when that user cannot reach DATA_DIR (e.g. a checkout in a 0700 temporary directory);
DATA_DIR/pg then holds a symlink to it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

from ops.system import StackError, bindable, port_open, run_checked, server_user, wait_port, write_private
from service.settings import Settings

DB_NAME = "simple_twitter"
DB_USER = "simple_twitter"


def url_at(settings: Settings, port: int) -> str:
    """The embedded database's URL as reached on a port (the server's, PgBouncer's, the replica's)."""
    return f"postgresql://{DB_USER}:{password(settings)}@127.0.0.1:{port}/{DB_NAME}"


def binary(name: str) -> str:
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


def cluster_root(settings: Settings, user: str | None) -> Path:
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


def password(settings: Settings) -> str:
    """The embedded cluster's password, kept inside the cluster's folder (through the DATA_DIR/pg
    link) so that the two live and die together; empty before the first start."""
    path = settings.data_dir / "pg" / "password"
    return path.read_text().strip() if path.exists() else ""


def _complete(root: Path) -> bool:
    """Written last by _initdb: a cluster without it is half of a start that was interrupted."""
    return (root / "complete").exists() and (root / "password").exists()


def start(settings: Settings) -> None:
    user = server_user()
    link = settings.data_dir / "pg"
    existing = link.resolve() if link.is_symlink() or link.exists() else None
    old_password = settings.data_dir / "pg_password"  # where earlier versions kept it
    if existing and (existing / "data" / "PG_VERSION").exists() and old_password.exists():
        write_private(existing / "password", old_password.read_text())
        (existing / "complete").touch()
        old_password.unlink()
    if existing is None or not _complete(existing):
        if existing is not None:
            _discard_partial(existing, existing / "data", user)
        if not bindable(settings.stack_pg_port):  # checked before anything is created
            raise StackError(f"port {settings.stack_pg_port} is taken by another server: set STACK_PG_PORT")
        root = cluster_root(settings, user)
        _initdb(settings, root, root / "data", user)
    root = cluster_root(settings, user)
    data = root / "data"
    if port_open(settings.stack_pg_port):
        if (data / "postmaster.pid").exists():
            return
        raise StackError(f"port {settings.stack_pg_port} is taken by another server: set STACK_PG_PORT")
    opts = f"-p {settings.stack_pg_port}"
    run_checked([binary("pg_ctl"), "start", "-w", "-t", "60", "-D", str(data), "-l",
             str(root / "postgres.log"), "-o", opts], user)
    wait_port(settings.stack_pg_port, "PostgreSQL")


def _discard_partial(root: Path, data: Path, user: str | None) -> None:
    """Stop and remove what an interrupted first start left: a cluster nobody has the password of."""
    if (data / "postmaster.pid").exists():
        run_checked([binary("pg_ctl"), "stop", "-w", "-m", "immediate", "-D", str(data)], user, check=False)
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
        run_checked([binary("initdb"), "-D", str(data), "-U", DB_USER, f"--pwfile={pwfile}",
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
    run_checked([binary("pg_ctl"), "start", "-w", "-D", str(data), "-l", str(root / "postgres.log"),
             "-o", f"-p {settings.stack_pg_port}"], user)
    env = dict(os.environ, PGPASSWORD=password)
    subprocess.run([binary("psql"), "-h", "127.0.0.1", "-p", str(settings.stack_pg_port), "-U",
                    DB_USER, "-d", "postgres", "-qc", f"CREATE DATABASE {DB_NAME}"],
                   env=env, check=True, capture_output=True)
    write_private(root / "password", password)
    (root / "complete").touch()


def stop(settings: Settings) -> None:
    link = settings.data_dir / "pg"
    if not link.exists():
        return
    data = link.resolve() / "data"
    if (data / "postmaster.pid").exists():
        run_checked([binary("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data)], server_user(),
                    check=False)


def pid(settings: Settings) -> int | None:
    """The postmaster's process id (first line of postmaster.pid), or None when not running."""
    pidfile = settings.data_dir / "pg" / "data" / "postmaster.pid"
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None




def data_root(settings: Settings) -> Path:
    """The cluster's folder (the DATA_DIR/pg link resolved), started if need be: PgBouncer and the
    replica live beside its data."""
    if not (settings.data_dir / "pg" / "complete").exists() or not port_open(settings.stack_pg_port):
        start(settings)
    return (settings.data_dir / "pg").resolve()


def psql(settings: Settings, sql: str) -> str:
    """One statement on the embedded database, as its owner: what it printed (unaligned)."""
    env = {**os.environ, "PGPASSWORD": password(settings)}
    done = subprocess.run([binary("psql"), "-h", "127.0.0.1", "-p", str(settings.stack_pg_port), "-U",
                           DB_USER, "-d", DB_NAME, "-qtAc", sql], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise StackError(f"{sql}: {done.stderr}")
    return done.stdout.strip()


def remove(settings: Settings) -> list[str]:
    """Delete the cluster (stopped first), the folder kept under /var/tmp included."""
    stop(settings)
    removed = []
    link = settings.data_dir / "pg"
    if link.is_symlink():
        outside = link.resolve()
        link.unlink()
        if outside.exists():
            shutil.rmtree(outside.parent if outside.parent.name.startswith("simple-twitter-") else outside)
            removed.append(str(outside.parent))
    for path in (link, settings.data_dir / "pg_password"):
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(str(path))
        elif path.exists():
            path.unlink()
    return removed
