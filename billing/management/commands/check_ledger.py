"""Recompute every account balance and transaction total from the postings; exit 1 on any
difference. Run it after a migration, a restore, or whenever in doubt."""

from django.core.management.base import BaseCommand, CommandError

from billing.selectors import ledger_problems


class Command(BaseCommand):
    help = "Check that every ledger transaction balances and every cached balance is right."

    def handle(self, *args, **options):
        problems = ledger_problems()
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise CommandError(f"{len(problems)} ledger problem(s) found")
        self.stdout.write(self.style.SUCCESS("Ledger is consistent."))
