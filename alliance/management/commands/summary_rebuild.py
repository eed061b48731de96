"""Recount the dashboards' per-estate, per-month summary from the bills and tickets
(alliance.summary). With --check, change nothing: list the rows that differ, exit 1 if any."""

from django.core.management.base import BaseCommand, CommandError

from alliance.summary import summary_problems, summary_rebuild


class Command(BaseCommand):
    help = "Recount the dashboards' summary of bills and tickets per estate and month."

    def add_arguments(self, parser):
        parser.add_argument(
            "--check", action="store_true", help="Only report rows that differ from a recount."
        )

    def handle(self, *args, **options):
        if options["check"]:
            problems = summary_problems()
            for problem in problems:
                self.stderr.write(problem)
            if problems:
                raise CommandError(f"{len(problems)} summary row(s) differ from a recount")
            self.stdout.write(self.style.SUCCESS("The summary equals a recount."))
            return
        rows = summary_rebuild()
        self.stdout.write(self.style.SUCCESS(f"{rows} summary rows recounted."))
