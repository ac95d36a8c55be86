"""The project's own small C programs (the open-loop generator, the delaying relay), compiled with
the machine's gcc on first use and kept under .data/bin, named by their source's hash so that a
changed source is rebuilt."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from ops.system import ensure_tool
from service.settings import ROOT

BUILT = ROOT / ".data" / "bin"


def compiled(source: Path) -> Path:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    path = BUILT / f"{source.stem}-{digest}"
    if not path.exists():
        cc = ensure_tool("gcc", "gcc", "libc6-dev")
        BUILT.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}.{os.getpid()}.part")  # two builds at once do not collide
        subprocess.run([cc, "-O2", "-Wall", "-o", str(part), str(source), "-lm"], check=True)
        part.rename(path)
    return path
