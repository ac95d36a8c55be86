"""Which PgBouncer the stack runs: one that keeps prepared statements (1.21+), else one built."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ops import pgbouncer_build


def fake(directory: Path, says: str) -> Path:
    """A `pgbouncer` on PATH whose --version prints `says`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "pgbouncer"
    path.write_text(f"#!/bin/sh\necho '{says}'\n")
    path.chmod(0o755)
    return path


def test_versions_are_read_as_pgbouncer_prints_them(tmp_path: Path) -> None:
    assert pgbouncer_build.version(str(fake(tmp_path / "a", "PgBouncer 1.18.0\nlibevent 2.1.12-stable"))) \
        == (1, 18, 0)
    assert pgbouncer_build.version(str(fake(tmp_path / "b", "PgBouncer 1.21"))) == (1, 21, 0)
    assert pgbouncer_build.version(str(fake(tmp_path / "c", "something else"))) == ()
    assert pgbouncer_build.version(str(tmp_path / "missing")) == ()


def test_one_on_path_is_used_only_when_it_keeps_prepared_statements(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    new = fake(tmp_path / "new", "PgBouncer 1.25.1")
    monkeypatch.setenv("PATH", f"{new.parent}{os.pathsep}{os.environ['PATH']}")
    assert pgbouncer_build.binary() == str(new)
    old = fake(tmp_path / "old", "PgBouncer 1.18.0")
    built = fake(tmp_path / "tools" / "bin", f"PgBouncer {pgbouncer_build.RELEASE}")
    monkeypatch.setenv("PATH", f"{old.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(pgbouncer_build, "BUILT", built)
    monkeypatch.setattr(pgbouncer_build, "TOOLS", tmp_path / "tools")

    def refuse() -> None:
        raise AssertionError("built again although a build is there")
    monkeypatch.setattr(pgbouncer_build, "build", refuse)
    assert pgbouncer_build.binary() == str(built)
