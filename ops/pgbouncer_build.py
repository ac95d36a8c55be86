"""A PgBouncer that keeps protocol-level prepared statements in transaction mode (1.21 and newer,
max_prepared_statements): the one on PATH when it is new enough, else built once from Debian's
source of a newer release into .tools/ (Debian 12's package is 1.18, which forgets a client's
prepared statement as soon as its transaction ends)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from ops.system import StackError, apt_install, ensure_tool
from service.settings import ROOT

PREPARED_SINCE = (1, 21)  # the first release with max_prepared_statements
RELEASE = "1.24.1"  # Debian 13's
SOURCE = f"http://deb.debian.org/debian/pool/main/p/pgbouncer/pgbouncer_{RELEASE}.orig.tar.gz"
SHA256 = "da72a3aba13072876d055a3e58dd4aba4a5de4ed6148e73033185245598fd3e0"  # Debian's Sources list
TOOLS = ROOT / ".tools"
BUILT = TOOLS / f"pgbouncer-{RELEASE}" / "bin" / "pgbouncer"
# What building it needs from Debian's packages (command, package) beyond the C compiler.
BUILD_TOOLS = [("make", "make"), ("gcc", "gcc"), ("pkg-config", "pkg-config")]
BUILD_LIBS = ["libevent-dev", "libssl-dev"]
WITHOUT = ["--without-cares", "--without-pam", "--without-systemd"]  # none of them used here


def version(binary: str) -> tuple[int, ...]:
    """(major, minor, patch) as `pgbouncer --version` prints it; () when it does not run."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return ()
    found = re.search(r"PgBouncer (\d+)\.(\d+)(?:\.(\d+))?", out.stdout + out.stderr)
    return tuple(int(x or 0) for x in found.groups()) if found else ()


def binary() -> str:
    """A PgBouncer of PREPARED_SINCE or newer: on PATH, already built, or built now (about 20 s)."""
    on_path = shutil.which("pgbouncer")
    if on_path and version(on_path) >= PREPARED_SINCE:
        return on_path
    TOOLS.mkdir(exist_ok=True)
    with open(TOOLS / "pgbouncer.lock", "w") as lock:  # one build at a time, the others wait for it
        fcntl.flock(lock, fcntl.LOCK_EX)
        if version(str(BUILT)) < PREPARED_SINCE:
            build()
    return str(BUILT)


def build() -> None:
    """RELEASE from Debian's source tarball (checked against SHA256) into BUILT's prefix."""
    for command, package in BUILD_TOOLS:
        ensure_tool(command, package)
    install_libraries()
    prefix = BUILT.parent.parent
    print(f"building PgBouncer {RELEASE} from Debian's source into {prefix}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=TOOLS) as work:
        tarball = Path(work) / "source.tar.gz"
        try:
            with urllib.request.urlopen(SOURCE, timeout=60) as response:
                tarball.write_bytes(response.read())
        except OSError as exc:
            raise StackError(f"PgBouncer's source could not be fetched from {SOURCE}: {exc}") from exc
        digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
        if digest != SHA256:
            raise StackError(f"PgBouncer's source from {SOURCE} has sha256 {digest}, not {SHA256}")
        with tarfile.open(tarball) as archive:
            archive.extractall(work, filter="data")
        source = Path(work) / f"pgbouncer-{RELEASE}"
        staged = Path(work) / "prefix"
        configure = ["./configure", f"--prefix={staged}", *WITHOUT]
        steps = [configure, ["make", f"-j{os.cpu_count() or 1}"], ["make", "install"]]
        for step in steps:
            done = subprocess.run(step, cwd=source, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise StackError(f"building PgBouncer {RELEASE}: {' '.join(step[:2])} failed:\n"
                                 f"{(done.stdout + done.stderr)[-3000:]}")
        shutil.rmtree(prefix, ignore_errors=True)
        staged.rename(prefix)


def install_libraries() -> None:
    """The headers PgBouncer compiles against, from Debian's packages (as root)."""
    missing = [p for p in BUILD_LIBS if subprocess.run(["dpkg", "-s", p], capture_output=True,
                                                       check=False).returncode != 0]
    if missing and not apt_install(*missing):
        raise StackError(f"building PgBouncer needs {' '.join(missing)} (apt-get install), or a "
                         f"PgBouncer {'.'.join(map(str, PREPARED_SINCE))}+ on PATH")
