from bench.check import compare

BASELINE = {"metrics": {"hit/floor": 0.9, "normalise tag / reference": 0.02},
            "thresholds": {"hit/floor": 0.12, "normalise tag / reference": 0.15}}


def test_passes_within_noise() -> None:
    assert compare({"hit/floor": 0.85, "normalise tag / reference": 0.022}, BASELINE) == []


def test_fails_naming_the_metric_that_fell() -> None:
    failures = compare({"hit/floor": 0.72, "normalise tag / reference": 0.02}, BASELINE)
    assert len(failures) == 1 and failures[0].startswith("hit/floor fell 20%")


def test_slower_microbenchmark_fails() -> None:
    # time / reference is lower-is-better: 30% more time is a 23% drop in speed
    failures = compare({"hit/floor": 0.9, "normalise tag / reference": 0.026}, BASELINE)
    assert len(failures) == 1 and failures[0].startswith("normalise tag / reference")


def test_missing_metric_fails() -> None:
    assert compare({"hit/floor": 0.9}, BASELINE) == ["normalise tag / reference: not measured"]
