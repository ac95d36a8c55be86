from typing import Any

from bench.report.runs import soak_section
from bench.soak import bounds, slope_per_10min
from service.settings import Settings


def test_slope_is_growth_per_ten_minutes() -> None:
    ts = [0.0, 60.0, 120.0, 180.0]
    assert abs(slope_per_10min(ts, [100.0, 101.0, 102.0, 103.0]) - 10.0) < 1e-9  # 1 MB a minute
    assert slope_per_10min(ts, [5.0, 5.0, 5.0, 5.0]) == 0.0
    assert slope_per_10min([0.0], [1.0]) == 0.0


def soak(rss_end: float, pg_max: float, failures: int = 0) -> dict[str, Any]:
    worker = {"rss_mb": {"start": 90.0, "end": rss_end, "max": rss_end, "slope_per_10min": 0.1},
              "fds": {"start": 30, "end": 30, "max": 31, "slope_per_10min": 0.0},
              "pg_conns": {"start": 2, "end": 2, "max": pg_max, "slope_per_10min": 0.0},
              "redis_conns": {"start": 3, "end": 3, "max": 4, "slope_per_10min": 0.0}}
    return {"measured_at": "2026-12-06 11:00 UTC", "commit": "abc1234", "users": 30, "minutes": 30,
            "sample_s": 5, "warmup_s": 60, "requests": 1000, "rps": 100.0, "failures": failures,
            "p95_ms": 9.0, "per_worker": {"1": worker, "2": worker},
            "redis_mb": {"start": 40.0, "end": 50.0, "slope_per_10min": 1.0},
            "bounds": bounds(Settings().replaced(workers=2))}


def test_the_soak_is_judged_against_the_services_own_bounds() -> None:
    b = bounds(Settings().replaced(workers=2))
    assert b == {"rss_growth_mb": 32.0, "pg_conns": 40.0, "redis_mb": 256.0}  # 80 // 2 - 1 + the notices' 1
    text = "\n".join(soak_section(soak(rss_end=95.0, pg_max=12)))
    assert text.count("| met |") == 4 and "missed" not in text
    text = "\n".join(soak_section(soak(rss_end=130.0, pg_max=41, failures=2)))
    assert "| at most +40.0 MB | **missed** |" in text and "| at most 41 | **missed** |" in text
    assert "| 2 failures | **missed** |" in text
