import subprocess

from bench.check import THRESHOLDS, failure_message, judge
from service.settings import ROOT


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
    stale = "# R\n\n## Soak (measured at abc; service/ changed since, last in def)\n\nold\n\n## Z\n"
    assert replace_section(stale, "## Soak", "## Soak\n\nnew\n") == "# R\n\n## Soak\n\nnew\n\n## Z\n"
    assert replace_section("## Soaked\n\nx\n", "## Soak", "## Soak\n") == "## Soaked\n\nx\n\n## Soak\n"


def test_a_heading_says_when_its_section_was_measured_before_the_service_changed() -> None:
    from bench.facts import changed_since
    from bench.report.markdown import commit_of, heading

    assert heading("## Soak", "abc1234", None) == "## Soak"
    assert heading("## Soak", None, None) == "## Soak (commit not recorded)"
    assert heading("## Soak", "abc1234", "def5678") == \
        "## Soak (measured at abc1234; service/ changed since, last in def5678)"
    assert commit_of({"facts": {"commit": "a1"}}) == "a1"
    assert commit_of({"settings": {"commit": "b2"}}) == "b2"
    assert commit_of({"commit": "c3"}) == "c3" and commit_of({}) is None
    first = subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()[0]
    last = subprocess.run(["git", "log", "-1", "--format=%h", "--", "service"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert changed_since(first[:7]) == last  # the first commit: service/ changed since, last in its last
    assert changed_since(last) is None and changed_since(f"{last} (with uncommitted changes)") is None
    assert changed_since(None) is None and changed_since("0000000") is None  # not in this history
