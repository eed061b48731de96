"""Import an estate workbook (community/imports.py) from the command line.

    manage.py import_estate FILE.xlsx --centre ID [--dry-run]

Prints each row's result and a summary. Every sheet or nothing: with any refused row, nothing
is written and the command exits with status 1.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from community.imports import estate_workbook_import
from community.models import Centre


def centre_option(centre_id: int | None) -> Centre:
    if centre_id is None:
        centres = list(Centre.objects.all()[:2])
        if len(centres) != 1:
            raise CommandError("Name the centre to import into with --centre ID.")
        return centres[0]
    try:
        return Centre.objects.get(pk=centre_id)
    except Centre.DoesNotExist as exc:
        raise CommandError(f"No centre with id {centre_id}.") from exc


class Command(BaseCommand):
    help = "Import an estate workbook (.xlsx): communities, buildings, households, residents…"

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--centre", type=int, help="the centre's id (needed if several)")
        parser.add_argument("--dry-run", action="store_true", help="report only, write nothing")
        parser.add_argument("--quiet-rows", action="store_true", help="print refused rows only")

    def handle(self, *args, file: Path, centre: int | None, dry_run: bool, **options):
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(str(exc)) from exc
        report = estate_workbook_import(data=data, centre=centre_option(centre), dry_run=dry_run)
        for error in report.errors:
            self.stderr.write(error)
        for sheet in report.sheets:
            for row in sheet.rows:
                if options["quiet_rows"] and not row.refused:
                    continue
                line = f"{sheet.name} {row.number}: {row.action} {row.key}"
                if row.messages:
                    line += " — " + " ".join(row.messages)
                (self.stderr if row.refused else self.stdout).write(line)
            totals = ", ".join(f"{action} {count}" for action, count in sheet.totals.items())
            self.stdout.write(f"{sheet.name}: {totals}")
        if not report.ok:
            raise CommandError(
                f"Refused: {report.refused_count} rows, {len(report.errors)} file errors. "
                "Nothing was written."
            )
        self.stdout.write(
            "Dry run: nothing was written." if dry_run else "Imported: every row is in."
        )
