"""`dockmesh upgrades rollout`: the failure-rate argument and how a rollout is printed."""

from __future__ import annotations

import argparse

import pytest

from dockmesh.cli.main import parser
from dockmesh.cli.upgrades import _rate, show


@pytest.mark.parametrize(("text", "value"), [("0", 0.0), ("0.25", 0.25), ("25%", 0.25), ("100%", 1.0)])
def test_rate_takes_a_fraction_or_a_percentage(text: str, value: float) -> None:
    assert _rate(text) == value


@pytest.mark.parametrize("text", ["1.5", "-1", "150%", "lots"])
def test_bad_rate_says_what_to_give(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="0"):
        _rate(text)


def test_waves_are_kept_in_order() -> None:
    args = parser().parse_args(["upgrades", "rollout", "--wave", "tag:canary", "--wave", "50%", "--no-wait"])
    assert args.wave == ["tag:canary", "50%"]
    assert args.max_failure_rate == 0.0
    assert args.no_wait


def test_show_marks_the_current_wave_and_each_host() -> None:
    rollout = {
        "id": "r1",
        "version": "0.2.0",
        "hosts": "all",
        "status": "running",
        "max_failure_rate": 0.25,
        "reason": None,
        "wave": 1,
        "waves": [
            {
                "index": 0,
                "step": "tag:canary",
                "counts": {"done": 1},
                "hosts": [{"name": "a", "state": "done"}],
            },
            {
                "index": 1,
                "step": "100%",
                "counts": {"offered": 1},
                "hosts": [{"name": "b", "state": "offered"}],
            },
        ],
    }
    lines = show(rollout).splitlines()
    assert "running" in lines[0]
    assert "25%" in lines[0]
    assert lines[1] == "  wave 1 tag:canary: 1 done  a:done"
    assert lines[2] == "> wave 2 100%: 1 offered  b:offered"
