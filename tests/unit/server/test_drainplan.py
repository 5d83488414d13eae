"""The drain planner: order, placement by free resources and architecture, groups, skip reasons."""

from __future__ import annotations

import pytest

from dockmesh.server.drainplan import Candidate, PlanError, StackNeed, groups, plan

GB = 1 << 30


def host(name: str, **kw: object) -> Candidate:
    values: dict = {"memory_free": 8 * GB, "disk_free": 100 * GB, "arch": "amd64"}
    values.update(kw)
    return Candidate(name, name, **values)


def where(p) -> dict[str, str | None]:
    return {s.stack: s.destination for s in p.steps}


def test_smallest_first_orders_by_volume_then_memory_then_name():
    stacks = [
        StackNeed("c", volume_bytes=30),
        StackNeed("a", volume_bytes=10, memory_bytes=5),
        StackNeed("b", volume_bytes=10, memory_bytes=1),
        StackNeed("d", volume_bytes=10, memory_bytes=1),
    ]
    p = plan("src", stacks, [host("h1")], "smallest")
    assert [s.stack for s in p.steps] == ["b", "d", "a", "c"]
    assert [s.position for s in p.steps] == [0, 1, 2, 3]


def test_largest_first_keeps_names_ascending_among_equals():
    stacks = [
        StackNeed("b", volume_bytes=10),
        StackNeed("a", volume_bytes=10),
        StackNeed("z", volume_bytes=99),
    ]
    p = plan("src", stacks, [host("h1")], "largest")
    assert [s.stack for s in p.steps] == ["z", "a", "b"]


def test_unknown_order_is_refused():
    with pytest.raises(PlanError, match="smallest, largest, deps"):
        plan("src", [], [host("h1")], "random")


def test_places_on_host_with_most_memory_left_and_spreads():
    stacks = [StackNeed(n, memory_bytes=3 * GB) for n in ("a", "b", "c")]
    p = plan("src", stacks, [host("h1", memory_free=8 * GB), host("h2", memory_free=7 * GB)], "smallest")
    # a → h1 (8 free), then b → h2 (7 > 5), then c → h1 (5 > 4)
    assert where(p) == {"a": "h1", "b": "h2", "c": "h1"}


def test_reservations_never_promise_the_same_memory_twice():
    stacks = [StackNeed("a", memory_bytes=6 * GB), StackNeed("b", memory_bytes=6 * GB)]
    p = plan("src", stacks, [host("h1", memory_free=8 * GB)], "smallest")
    assert where(p) == {"a": "h1", "b": None}
    step = p.steps[1]
    assert step.skip_code == "no_memory"
    assert str(2 * GB) in (step.skip_message or "")


def test_disk_for_volumes_is_checked():
    p = plan("src", [StackNeed("a", volume_bytes=5 * GB)], [host("h1", disk_free=GB)], "smallest")
    assert p.steps[0].skip_code == "no_disk"
    assert p.bytes_total == 0


def test_architecture_must_match():
    stacks = [StackNeed("arm", arch="arm64"), StackNeed("any")]
    p = plan("src", stacks, [host("x86", arch="amd64"), host("pi", arch="arm64", memory_free=GB)], "smallest")
    assert where(p) == {"any": "x86", "arm": "pi"}


def test_architecture_mismatch_reason_when_no_host_fits():
    p = plan("src", [StackNeed("arm", arch="arm64")], [host("x86")], "smallest")
    assert p.steps[0].skip_code == "arch_mismatch"
    assert "arm64" in (p.steps[0].skip_message or "")


def test_host_of_unknown_arch_is_not_trusted_with_an_arch_bound_stack():
    p = plan("src", [StackNeed("arm", arch="arm64")], [host("h", arch=None)], "smallest")
    assert p.steps[0].skip_code == "arch_mismatch"


def test_offline_and_cordoned_hosts_are_never_chosen():
    cands = [host("off", online=False, memory_free=99 * GB), host("cord", cordoned=True, memory_free=99 * GB)]
    p = plan("src", [StackNeed("a")], cands, "smallest")
    assert p.steps[0].destination is None
    assert p.steps[0].skip_code in {"destination_offline", "destination_cordoned"}
    assert "off" in (p.steps[0].skip_message or "")
    assert "cord" in (p.steps[0].skip_message or "")


def test_source_is_never_a_destination():
    p = plan("h1", [StackNeed("a")], [host("h1"), host("h2", memory_free=GB)], "smallest")
    assert where(p) == {"a": "h2"}
    assert [c.id for c in p.destinations] == ["h2"]


def test_no_destination_at_all():
    p = plan("src", [StackNeed("a")], [], "smallest")
    assert p.steps[0].skip_code == "no_destination"


def test_known_problem_skips_before_placement_and_takes_nothing():
    stacks = [
        StackNeed("bad", memory_bytes=7 * GB, problem=("no_record", "gone")),
        StackNeed("ok", memory_bytes=7 * GB),
    ]
    p = plan("src", stacks, [host("h1")], "smallest")
    assert where(p) == {"ok": "h1", "bad": None}
    assert p.steps[-1].skip_code == "no_record"


def test_groups_join_transitively():
    stacks = [
        StackNeed("a", shared=frozenset({"vol:x"})),
        StackNeed("b", shared=frozenset({"vol:x", "net:y"})),
        StackNeed("c", shared=frozenset({"net:y"})),
        StackNeed("d"),
    ]
    assert sorted([s.name for s in g] for g in groups(stacks)) == [["a", "b", "c"], ["d"]]


def test_deps_order_moves_a_group_together_to_one_host():
    stacks = [
        StackNeed("web", memory_bytes=2 * GB, shared=frozenset({"net:app"})),
        StackNeed("db", memory_bytes=2 * GB, volume_bytes=10, shared=frozenset({"net:app"})),
        StackNeed("solo", memory_bytes=GB),
    ]
    p = plan("src", stacks, [host("h1", memory_free=5 * GB), host("h2", memory_free=4 * GB)], "deps")
    assert [s.stack for s in p.steps] == ["solo", "db", "web"]
    d = where(p)
    assert d["db"] == d["web"]
    assert p.steps[1].group == p.steps[2].group != p.steps[0].group


def test_deps_group_too_big_for_any_one_host_is_skipped_whole():
    stacks = [
        StackNeed("a", memory_bytes=3 * GB, shared=frozenset({"vol:v"})),
        StackNeed("b", memory_bytes=3 * GB, shared=frozenset({"vol:v"})),
    ]
    p = plan("src", stacks, [host("h1", memory_free=4 * GB), host("h2", memory_free=4 * GB)], "deps")
    assert where(p) == {"a": None, "b": None}
    assert {s.skip_code for s in p.steps} == {"no_memory"}


def test_deps_group_with_conflicting_arch_is_skipped():
    stacks = [
        StackNeed("a", arch="arm64", shared=frozenset({"net:n"})),
        StackNeed("b", arch="amd64", shared=frozenset({"net:n"})),
    ]
    p = plan("src", stacks, [host("h1")], "deps")
    assert {s.skip_code for s in p.steps} == {"arch_mismatch"}


def test_same_inputs_same_plan():
    stacks = [StackNeed(n, memory_bytes=GB) for n in "edcba"]
    cands = [host("h2"), host("h1")]
    assert plan("s", stacks, cands, "smallest") == plan(
        "s", list(reversed(stacks)), list(reversed(cands)), "smallest"
    )


def test_ties_between_equal_hosts_go_to_the_first_name():
    p = plan("src", [StackNeed("a")], [host("b-host"), host("a-host")], "smallest")
    assert where(p) == {"a": "a-host"}


def test_plan_totals():
    stacks = [StackNeed("a", volume_bytes=10), StackNeed("b", volume_bytes=20, arch="s390x")]
    p = plan("src", stacks, [host("h1")], "largest")
    assert [s.stack for s in p.moving] == ["a"]
    assert [s.stack for s in p.skipped] == ["b"]
    assert p.bytes_total == 10


def test_unknown_free_resources_do_not_refuse_but_rank_last():
    unknown = Candidate("u", "u", arch="amd64")
    p = plan("src", [StackNeed("a", volume_bytes=GB, memory_bytes=GB)], [unknown], "smallest")
    assert where(p) == {"a": "u"}
    p = plan("src", [StackNeed("a", memory_bytes=GB)], [unknown, host("z", memory_free=2 * GB)], "smallest")
    assert where(p) == {"a": "z"}


def test_stacks_without_limits_spread_over_nearly_equal_hosts():
    stacks = [StackNeed(n) for n in ("a", "b", "c", "d")]
    cands = [host("h1", memory_free=8 * GB + (1 << 20)), host("h2", memory_free=8 * GB)]
    p = plan("src", stacks, cands, "smallest")
    assert sorted(where(p).values()) == ["h1", "h1", "h2", "h2"]


def test_hosts_without_metrics_share_the_stacks_by_count():
    stacks = [StackNeed(n) for n in ("a", "b", "c")]
    p = plan("src", stacks, [Candidate("u1", "u1"), Candidate("u2", "u2")], "smallest")
    assert where(p) == {"a": "u1", "b": "u2", "c": "u1"}
