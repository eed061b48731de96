from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"
    verbose_name = _("Billing")

    def ready(self) -> None:
        # Adds the opening-arrears and meter-reading sheets to the estate workbook.
        from billing import imports  # noqa: F401
