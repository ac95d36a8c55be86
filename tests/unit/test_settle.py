"""A worker about to serve moves what its start-up made out of the garbage collector's generations
(USE_GC_FREEZE), so a full collection walks only what requests made since."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import gc, sys
import service.app  # the service's modules, as a worker has them once started
from service.resources import settle
from service.settings import Settings
before = len(gc.get_objects())
settle(Settings.from_env({"USE_GC_FREEZE": sys.argv[1]}))
print(before, len(gc.get_objects()), gc.get_freeze_count())
"""


@pytest.mark.parametrize("on", [True, False])
def test_a_full_collection_walks_start_ups_objects_only_with_the_freeze_off(on: bool) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, "true" if on else "false"], capture_output=True,
                         text=True, check=True).stdout  # its own process: pytest's objects stay as they are
    before, walked, frozen = map(int, out.split())
    assert before > 10_000  # the modules' functions, classes and dicts
    if on:
        assert frozen >= before * 0.9 and walked < 100
    else:
        assert frozen == 0 and walked > before * 0.9
