"""DirtyWorkers: each worker's byte in one shared file, any set seen by every worker at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cache.generations import DirtyWorkers
from service.resources import worker_number


@pytest.mark.parametrize("workers", [2, 12])
def test_any_worker_dirty_is_seen_by_every_worker(tmp_path: Path, workers: int) -> None:
    path = tmp_path / "dirty-workers"
    board = [DirtyWorkers(path, i, workers) for i in range(workers)]
    assert not any(b.any() for b in board)
    for i in range(workers):
        board[i].set(True)
        assert all(b.any() for b in board), i
        board[(i + 1) % workers].set(False)  # another worker's repair done: this one is still dirty
        assert all(b.any() for b in board), i
        board[i].set(False)
        assert not any(b.any() for b in board), i


def test_a_restarted_worker_clears_only_its_own_byte(tmp_path: Path) -> None:
    path = tmp_path / "dirty-workers"
    first, second = DirtyWorkers(path, 0, 2), DirtyWorkers(path, 1, 2)
    first.set(True)
    second.set(True)
    again = DirtyWorkers(path, 1, 2)  # worker 1 started again
    assert again.any() and first.any()
    first.set(False)
    assert not again.any()


@pytest.mark.parametrize(("name", "number"), [("Sanic-Server-0-0", 0), ("Sanic-Server-3-1", 3),
                                              ("Sanic-Server-12-4", 12), ("", 0), ("Sanic-Main", 0)])
def test_worker_number_from_sanics_worker_name(monkeypatch: pytest.MonkeyPatch, name: str,
                                               number: int) -> None:
    monkeypatch.setenv("SANIC_WORKER_NAME", name)
    assert worker_number() == number
