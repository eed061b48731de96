"""bench/results.json as committed: each scenario carries its name, goal, limit, measured and
met, and each of its targets the same, so a reader (and this check) sees which goals are met.
The verdicts must follow from the figures: a "met" written by hand over a missed target fails
here."""

import json

import pytest

from bench.core import COMPARISONS, PROJECT_ROOT
from bench.scenarios import SCENARIOS

RESULTS = json.loads((PROJECT_ROOT / "bench" / "results.json").read_text())
ENTRIES = RESULTS["scenarios"]


def _id(entry: dict) -> str:
    return f"{entry['name']}@{entry['households']}"


def test_every_scenario_has_a_result():
    assert {entry["name"] for entry in ENTRIES} == set(SCENARIOS)


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_a_result_says_what_was_measured_against_what(entry):
    for key in ("name", "goal", "limit", "measured", "met", "targets"):
        assert key in entry, key
    assert entry["goal"] and entry["targets"]
    assert entry["measured"] == {target["name"]: target["measured"] for target in entry["targets"]}


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_a_verdict_follows_from_the_figures(entry):
    for target in entry["targets"]:
        op, goal = target["goal"].split(" ", 1)
        follows = target["measured"] is not None and COMPARISONS[op](
            target["measured"], float(goal)
        )
        assert target["met"] == follows, target
    assert entry["met"] == all(target["met"] for target in entry["targets"])
    assert not any(entry["checks"].values()), entry["checks"]
