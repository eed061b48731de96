import importlib

import pytest
from django.apps import apps as django_apps

DEFAULT_RULES = importlib.import_module("points.migrations.0003_default_rules")


@pytest.fixture(autouse=True)
def _default_rules(request):
    """The default earning rules, as the data migration makes them. A transactional test on
    PostgreSQL empties every table when it ends (the race tests of any app), so the rules are
    put back here for each test that uses the database rather than trusted to survive."""
    uses_db = {"db", "transactional_db"} & set(request.fixturenames) or (
        request.node.get_closest_marker("django_db")
    )
    if uses_db:
        DEFAULT_RULES.forwards(django_apps, None)
