"""The month's scorecard for every community, through the real code: alliance.tasks
.refresh_scorecard (what the daily refresh_drafts job queues for each community, called here
in-process), which computes the figures from the month's service ratings, spot checks and
tickets (alliance.selectors.scorecard_figures) and writes the draft.

Inputs (bench.datagen.scorecard_inputs, untimed): ratings by one household in five, two spot
checks and 30 tickets per community. Goal: linear, measured as in bench.scenarios.payouts (a
first third of the communities against the next two thirds); 1,000 communities under 30 s.
"""

from __future__ import annotations

from dataclasses import replace

from django.db import connection

from alliance.models import Scorecard
from alliance.tasks import refresh_scorecard
from bench import datagen
from bench.core import Context, Outcome, Target, profiled, stopwatch, targets_met

GOAL = "2N communities ≤ 2.2× the time of N; 1,000 communities < 30 s"
MAX_GROWTH = 2.2
MAX_SECONDS_FOR_1000 = 30.0


def _score(ctx: Context, community_ids: list[int]) -> None:
    for community_id in community_ids:
        refresh_scorecard(community_id, str(ctx.period))


def run(ctx: Context) -> Outcome:
    inputs = datagen.scorecard_inputs(ctx)
    ids = datagen.city(ctx).community_ids
    third = max(1, (len(ids) - 1) // 3)
    small, large = ids[:third], ids[third : 3 * third]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    with stopwatch() as n_time:
        _score(ctx, small)
    with stopwatch() as two_n_time:
        _score(ctx, large)
    growth = two_n_time.seconds / n_time.seconds if n_time.seconds else None
    per_community = (n_time.seconds + two_n_time.seconds) / (len(small) + len(large))
    measured_1000 = len(ids) >= 1000
    seconds_1000 = per_community * len(ids) if measured_1000 else per_community * 1000
    misses = []
    if growth is not None and growth > MAX_GROWTH:
        misses.append(f"2N took {growth:.2f}× N (goal ≤ {MAX_GROWTH}×)")
    if seconds_1000 >= MAX_SECONDS_FOR_1000:
        misses.append(f"1,000 communities take {seconds_1000:.1f} s (goal < 30 s)")
    profile_ctx = ctx if misses and not ctx.tiny else replace(ctx, profile=False)
    with profiled(profile_ctx, "scorecards") as written:
        _score(ctx, ids[3 * third :])
    cards = Scorecard.objects.filter(period=str(ctx.period), is_current=True)
    scored = cards.filter(score__isnull=False).count()
    figures = {
        "communities_n": len(small),
        "seconds_n": round(n_time.seconds, 3),
        "communities_2n": len(large),
        "seconds_2n": round(two_n_time.seconds, 3),
        "ms_per_community": round(per_community * 1000, 1),
        "seconds_for_1000" + ("" if measured_1000 else "_projected"): round(seconds_1000, 1),
        "scorecards": cards.count(),
        "scored": scored,
        **{f"{name}_in_month": count for name, count in inputs.items()},
    }
    if scored != len(ids):
        misses.append(f"{scored} scored cards for {len(ids)} communities")
    explanation = "" if measured_1000 else "1,000-community time projected from ms per community."
    if misses:
        explanation = "; ".join(misses) + ". " + explanation
    if written:
        explanation += f" Profile of the last communities: {written[0]}."
    targets = [
        Target("2N communities' seconds ÷ N's", "<=", MAX_GROWTH, growth),
        Target(
            "seconds for 1,000 communities" + ("" if measured_1000 else " (projected)"),
            "<",
            MAX_SECONDS_FOR_1000,
            round(seconds_1000, 1),
        ),
        Target("scored cards ÷ communities", "==", 1, scored / len(ids) if ids else None),
    ]
    return Outcome(
        scenario="scorecards",
        goal=GOAL,
        limit="",
        figures=figures,
        ratio=growth,
        met=targets_met(targets),
        explanation=explanation.strip(),
        targets=targets,
    )
