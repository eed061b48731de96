"""The benchmark scenarios, in the order `python -m bench.run` runs them.

Each module exposes `run(ctx: bench.core.Context) -> bench.core.Outcome`.
"""

import importlib

SCENARIOS = [
    "bill_run",
    "payment_rush",
    "payouts",
    "scorecards",
    "points_awards",
    "ticket_queue",
    "dashboard",
    "estate_import",
    "public_page",
]


def load(name: str):
    """The scenario module called `name` (imported only when it runs)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")
    return importlib.import_module(f"bench.scenarios.{name}")
