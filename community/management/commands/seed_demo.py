"""Build the pilot story's demo data. Safe to run again: it changes nothing the second time."""

import argparse
from importlib import import_module

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.module_loading import module_has_submodule

from community.periods import Period


def _period(text: str) -> Period:
    try:
        return Period.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


class Command(BaseCommand):
    help = "Create the demo estate 翰林苑 with its organisations and accounts (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--period",
            type=_period,
            default=None,
            help="The story's month, YYYY-MM (default: the last full month before today).",
        )

    def handle(self, *args, **options):
        # Each app seeds its own part in `<app>/demo.py`, in INSTALLED_APPS order (the dependency
        # order), so community never has to import the apps built on top of it.
        with transaction.atomic():
            world = None
            for config in apps.get_app_configs():
                if not module_has_submodule(config.module, "demo"):
                    continue
                demo = import_module(f"{config.name}.demo")
                if world is None:
                    world = demo.seed(None, period=options["period"])
                else:
                    world = demo.seed(world)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready: {world.community.name}, {len(world.households)} households. "
                "Accounts: centre, staff, repairer, inspector, committee, resident01…resident56."
            )
        )
