from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ApiConfig(AppConfig):
    name = "resourcemonitor.api"
    label = "api"
    verbose_name = "API and access"

    def ready(self) -> None:
        # Login throttling listens to Django's login signals.
        from resourcemonitor import security  # noqa: F401
        from resourcemonitor.api.roles import sync_after_migrate

        # Sent for this app after every earlier app in INSTALLED_APPS has its permissions
        # (api is listed last), so one sync sees them all.
        post_migrate.connect(sync_after_migrate, sender=self, dispatch_uid="resmon-role-groups")
