"""The public-page benchmark (bench/scenarios/public_page.py) at tiny scale on PostgreSQL: it
renders every estate's page cold and cached and fills in its outcome. No timing is asserted."""

import pytest

from bench.scenarios import public_page
from billing.models import Payout
from tests.test_bench import COMMUNITIES, _filled, ctx, postgres_db  # noqa: F401  (ctx: fixture)


@pytest.mark.postgres
@postgres_db
def test_the_public_page_scenario_renders_every_estate(ctx):  # noqa: F811
    outcome = public_page.run(ctx)

    _filled(outcome, "public_page")
    assert outcome.figures["estates"] == COMMUNITIES
    assert outcome.figures["payouts_generated"] == COMMUNITIES
    assert Payout.objects.filter(period=str(ctx.period), kind="regular").count() == COMMUNITIES
    assert outcome.ratio is not None and outcome.ratio > 0
