from bench.soak import slope_per_10min


def test_slope_is_growth_per_ten_minutes() -> None:
    ts = [0.0, 60.0, 120.0, 180.0]
    assert abs(slope_per_10min(ts, [100.0, 101.0, 102.0, 103.0]) - 10.0) < 1e-9  # 1 MB a minute
    assert slope_per_10min(ts, [5.0, 5.0, 5.0, 5.0]) == 0.0
    assert slope_per_10min([0.0], [1.0]) == 0.0
