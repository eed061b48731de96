"""Recompute every points balance from the entries, and check every redemption's debit and
refund; exit 1 on any difference. Run it after a migration, a restore, or whenever in doubt."""

from django.core.management.base import BaseCommand, CommandError

from points.selectors import points_problems


class Command(BaseCommand):
    help = "Check that every points balance equals the sum of its entries."

    def handle(self, *args, **options):
        problems = points_problems()
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise CommandError(f"{len(problems)} points problem(s) found")
        self.stdout.write(self.style.SUCCESS("Points are consistent."))
