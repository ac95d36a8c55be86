"""JSON encoding: orjson, or the standard library when USE_ORJSON is off (for measuring it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Codec:
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes | str], Any]


def _std_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


ORJSON = Codec(orjson.dumps, orjson.loads)
STDLIB = Codec(_std_dumps, json.loads)


def codec(use_orjson: bool) -> Codec:
    return ORJSON if use_orjson else STDLIB
