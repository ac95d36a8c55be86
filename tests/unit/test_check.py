from bench.check import THRESHOLDS, failure_message, judge


def rounds(base: list[float], ratio: list[float]) -> dict[str, list[float]]:
    return {"baseline": base, "candidate": [b * r for b, r in zip(base, ratio, strict=True)]}


def test_same_speed_passes_even_when_the_machine_drifts() -> None:
    # both sides slow down together in round 3: the paired ratios are unaffected
    v = judge({"hit": rounds([1000, 1010, 600, 990, 1005], [1.01, 0.99, 1.0, 0.98, 1.02])}, THRESHOLDS)
    assert not v["hit"]["failed"] and abs(v["hit"]["ratio"] - 1.0) < 0.011


def test_a_slower_path_fails_and_only_that_path() -> None:
    v = judge({"post": rounds([500] * 5, [0.8, 0.82, 0.79, 0.95, 0.81]),
               "hit": rounds([3000] * 5, [1.0] * 5)}, THRESHOLDS)
    assert v["post"]["failed"] and abs(v["post"]["ratio"] - 0.81) < 1e-9
    assert not v["hit"]["failed"]


def test_one_bad_round_does_not_fail_the_path() -> None:
    v = judge({"miss": rounds([400] * 7, [1.0, 0.6, 1.01, 0.99, 1.0, 0.98, 1.02])}, THRESHOLDS)
    assert not v["miss"]["failed"]


def test_threshold_is_the_boundary() -> None:
    allowed = 1 - THRESHOLDS["bypass"]
    above = judge({"bypass": rounds([100.0] * 3, [allowed + 0.001] * 3)}, THRESHOLDS)["bypass"]
    below = judge({"bypass": rounds([100.0] * 3, [allowed - 0.001] * 3)}, THRESHOLDS)["bypass"]
    assert above["failed"] is False and below["failed"] is True


def test_failure_message_names_path_ratio_rounds_and_baseline() -> None:
    v = judge({"post": rounds([500] * 3, [0.8, 0.7, 0.85])}, THRESHOLDS)["post"]
    message = failure_message("post", v, "0123456789abcdef")
    assert message.startswith("post: the candidate ran at 0.80x")
    assert "between 0.70 and 0.85" in message and "0123456789ab" in message


def test_results_section_is_replaced_in_place_or_appended() -> None:
    from bench.report.markdown import replace_section

    text = "# R\n\n## A\n\na\n\n## CI check\n\nold\n\n## Z\n\nz\n"
    assert replace_section(text, "## CI check", "## CI check\n\nnew\n") == \
        "# R\n\n## A\n\na\n\n## CI check\n\nnew\n\n## Z\n\nz\n"
    assert replace_section("# R\n\n## CI check\n\nold\n", "## CI check", "## CI check\n\nnew\n") == \
        "# R\n\n## CI check\n\nnew\n"
    assert replace_section("# R\n", "## CI check", "## CI check\n\nnew\n") == "# R\n\n## CI check\n\nnew\n"
