"""The estate-import benchmark (bench/scenarios/estate_import.py) at tiny scale: it runs for
real, imports every row and re-imports them unchanged. No timing is asserted."""

import pytest

from bench.core import Context
from bench.scenarios import estate_import
from community.models import Community, Household, Residency
from community.periods import Period
from tests.test_bench import assert_targets


@pytest.mark.django_db
def test_the_estate_import_scenario_imports_and_reimports_a_tiny_estate(tmp_path):
    ctx = Context(
        database_url="",
        households=estate_import.TINY_HOUSEHOLDS,
        communities=1,
        tiny=True,
        workdir=tmp_path,
        period=Period.current().previous(),
    )
    outcome = estate_import.run(ctx)
    assert outcome.scenario == "estate_import"
    assert outcome.ratio is not None
    assert_targets(outcome)
    households = estate_import.TINY_HOUSEHOLDS
    # 1 community, 1 building, the households, their owners, arrears for every tenth.
    assert outcome.figures["rows"] == 1 + 1 + households * 2 + households // 10
    assert outcome.figures["rerun_unchanged_rows"] == outcome.figures["rows"]
    community = Community.objects.get(name=estate_import.ESTATE)
    assert Household.objects.filter(building__community=community).count() == households
    assert Residency.objects.filter(household__building__community=community).count() == households
    assert not Community.objects.filter(name="limit").exists()  # the limit is rolled back
