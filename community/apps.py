from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class CommunityConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "community"
    verbose_name = _("Community")

    def ready(self) -> None:
        from community import audit
        from community.permissions import sync_role_groups
        from config import security  # noqa: F401 (registers its deploy check)

        audit.connect()

        # Permissions exist only after migrate has run, so the groups are synced then.
        post_migrate.connect(sync_role_groups, dispatch_uid="community.sync_role_groups")
