"""Export a centre's estates as an estate workbook, or write the empty template.

manage.py export_estate OUT.xlsx --centre ID [--community NAME ...]
manage.py export_estate --template [OUT.xlsx]   (default: docs/templates/linli-import-template.xlsx)
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from community.imports import estate_workbook_export, estate_workbook_template
from community.management.commands.import_estate import centre_option

TEMPLATE = Path(settings.BASE_DIR) / "docs" / "templates" / "linli-import-template.xlsx"


class Command(BaseCommand):
    help = "Export estates as an estate workbook (.xlsx), or write the import template."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, nargs="?")
        parser.add_argument("--centre", type=int)
        parser.add_argument("--community", action="append", help="only this estate (repeatable)")
        parser.add_argument("--template", action="store_true", help="the empty template")

    def handle(self, *args, file: Path | None, centre, community, template: bool, **options):
        if template:
            out = file or TEMPLATE
            out.write_bytes(estate_workbook_template())
        else:
            if file is None:
                self.stderr.write("Name the file to write.")
                raise SystemExit(2)
            chosen = centre_option(centre)
            communities = chosen.communities.filter(name__in=community) if community else None
            out = file
            out.write_bytes(estate_workbook_export(centre=chosen, communities=communities))
        self.stdout.write(f"Wrote {out}")
