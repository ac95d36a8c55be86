"""What every server the operations start needs from this machine: a free port, a listening one,
a private file, the unprivileged user PostgreSQL and its neighbours run as, and a missing tool
installed from Debian's packages."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


class StackError(RuntimeError):
    """A server of the stack could not be started, reached or stopped."""


def server_user() -> str | None:
    """The user PostgreSQL (and PgBouncer, the replica) runs as: ourselves, or an unprivileged one
    when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise StackError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def give_to_server_user(path: Path) -> None:
    """Owned by server_user() (when we are root), so the servers can read it."""
    user = server_user()
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def write_private(path: Path, text: str) -> None:
    """Create a file readable by its owner only, atomically (never briefly world-readable)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def run_checked(args: list[str], user: str | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A server's command-line tool (pg_ctl, initdb...) as user; StackError with its output."""
    result = subprocess.run(args, user=user, capture_output=True, text=True, check=False, cwd="/")
    if check and result.returncode != 0:
        raise StackError(f"{' '.join(args[:2])} failed:\n{result.stdout}{result.stderr}")
    return result


def port_open(port: int) -> bool:
    """Does something listen on 127.0.0.1:port?"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def bindable(port: int) -> bool:
    """Can a server listen on 127.0.0.1:port now? False when one listens there, and when a
    connection's local end holds the port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_port(port: int, what: str, seconds: float = 30) -> None:
    """Wait until a server listens on port; StackError naming it otherwise."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.05)
    raise StackError(f"{what} did not start listening on 127.0.0.1:{port}")


def ensure_tool(command: str, *packages: str) -> str:
    """A command on PATH (HAProxy, PgBouncer, wrk...), installed from Debian's packages (as root)
    when it is missing, like the project's other servers."""
    found = shutil.which(command)
    if found:
        return found
    print(f"installing {command} (Debian packages: {' '.join(packages)})", file=sys.stderr, flush=True)
    if apt_install(*packages) and (found := shutil.which(command)):
        return found
    raise StackError(f"{command} is not installed and could not be installed "
                     f"(apt-get install {' '.join(packages)})")


def apt_install(*packages: str) -> bool:
    """Debian's packages installed (as root; the package lists refreshed once if the first try
    fails): did apt-get succeed? False where we are not root or have no apt-get."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in ("install", "update-then-install"):
        if attempt == "update-then-install":
            subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=False,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if done.returncode == 0:
            return True
    return False
