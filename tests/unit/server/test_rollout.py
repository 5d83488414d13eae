"""The rollout planner (waves by selector and cumulative percentage) and its decision function."""

from __future__ import annotations

import pytest

from dockmesh.server.rollout import Candidate, PlanError, decide, expire, parse_step, parse_steps, plan


def hosts(n: int, canary: tuple[int, ...] = ()) -> list[Candidate]:
    return [Candidate(f"id{i}", f"h{i:02d}", ("canary",) if i in canary else ()) for i in range(n)]


def names(waves: list[list[Candidate]]) -> list[list[str]]:
    return [[h.name for h in w] for w in waves]


def test_percentages_are_cumulative_and_round_up() -> None:
    waves = plan(hosts(10), parse_steps(["25%", "50%", "100%"]))
    assert [len(w) for w in waves] == [3, 2, 5]
    assert names(waves)[0] == ["h00", "h01", "h02"]


def test_a_small_percentage_takes_at_least_one_host() -> None:
    assert [len(w) for w in plan(hosts(3), parse_steps(["1%", "100%"]))] == [1, 2]


def test_a_percentage_already_reached_is_an_empty_wave() -> None:
    waves = plan(hosts(4, canary=(0, 1, 2)), parse_steps(["tag:canary", "50%", "100%"]))
    assert names(waves) == [["h00", "h01", "h02"], [], ["h03"]]


def test_tag_wave_takes_matching_hosts_not_taken_before() -> None:
    waves = plan(hosts(6, canary=(1, 4)), parse_steps(["tag:canary", "50%", "100%"]))
    assert names(waves) == [["h01", "h04"], ["h00"], ["h02", "h03", "h05"]]


def test_any_selector_is_a_step() -> None:
    waves = plan(hosts(4, canary=(3,)), parse_steps(["name:h02 or canary", "100%"]))
    assert names(waves) == [["h02", "h03"], ["h00", "h01"]]


def test_hosts_no_step_reaches_are_left_out() -> None:
    waves = plan(hosts(4), parse_steps(["50%"]))
    assert names(waves) == [["h00", "h01"]]


def test_plan_is_deterministic_whatever_the_input_order() -> None:
    fleet = hosts(7, canary=(5,))
    steps = parse_steps(["tag:canary", "30%", "100%"])
    assert plan(fleet, steps) == plan(list(reversed(fleet)), steps)
    same_name = [Candidate("b", "x"), Candidate("a", "x")]
    assert [h.id for h in plan(same_name, parse_steps(["50%"]))[0]] == ["a"]


def test_no_hosts_gives_empty_waves() -> None:
    assert plan([], parse_steps(["10%", "100%"])) == [[], []]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0%", "1%-100%"),
        ("101%", "1%-100%"),
        ("1000%", "not a percentage"),
        ("-5%", "not a percentage"),
        ("", "empty"),
        ("tag:Bad", "bad tag"),
        ("weird:x", "unknown selector"),
        ("(a", "missing ')'"),
    ],
)
def test_bad_steps_say_which_wave_and_why(text: str, fragment: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_steps(["10%", text])
    assert info.value.index == 1
    assert info.value.message.startswith("wave 2")
    assert fragment in info.value.message


def test_step_count_is_bounded() -> None:
    with pytest.raises(PlanError, match="1 to 10"):
        parse_steps([])
    with pytest.raises(PlanError, match="1 to 10"):
        parse_steps(["100%"] * 11)


def test_step_kinds() -> None:
    assert parse_step(" 50% ").percent == 50
    step = parse_step("tag:canary")
    assert step.percent is None
    assert step.selector is not None
    assert step.text == "tag:canary"


# --- the decision ---------------------------------------------------------------------------


def test_wave_waits_while_hosts_are_open() -> None:
    assert decide(["done", "offered"], 0).outcome == "wait"
    assert decide(["pending", "done"], 0).outcome == "wait"


def test_wave_is_healthy_when_all_settled_without_failures() -> None:
    assert decide(["done", "done", "current", "skipped"], 0).outcome == "next"
    assert decide([], 0).outcome == "next"


@pytest.mark.parametrize("failed", ["failed", "rolled_back", "refused"])
def test_any_failure_halts_at_default_rate_without_waiting(failed: str) -> None:
    verdict = decide([failed, "offered", "offered"], 0)
    assert verdict.outcome == "halt"
    assert "1 of 3" in verdict.reason


def test_failures_within_the_rate_go_on() -> None:
    assert decide(["failed", "done", "done", "done"], 0.25).outcome == "next"
    assert decide(["failed", "offered", "offered", "offered"], 0.25).outcome == "wait"
    assert decide(["failed", "failed", "done", "done"], 0.25).outcome == "halt"


def test_rate_one_never_halts() -> None:
    assert decide(["failed", "refused"], 1.0).outcome == "next"


def test_skipped_current_and_pending_are_not_attempts() -> None:
    # 1 failure of 2 offered = 50%: skipped/current/pending hosts do not dilute the rate
    states = ["failed", "done", "skipped", "current", "current", "skipped"]
    assert decide(states, 0.4).outcome == "halt"
    assert decide(states, 0.5).outcome == "next"


def test_deadline_skips_offline_and_fails_unsettled() -> None:
    assert expire("pending")[0] == "skipped"
    assert expire("offered") == ("failed", "no outcome before the wave's deadline")
    assert expire("done") == ("done", None)
    assert expire("rolled_back") == ("rolled_back", None)
