"""The role groups viewer, operator and admin, with their Django permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_role_groups(apps, schema_editor):
    from resourcemonitor.api.roles import sync_role_groups

    # Permissions are normally made after migrate; make them now so the groups get them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_role_groups(
        group_model=apps.get_model("auth", "Group"),
        permission_model=apps.get_model("auth", "Permission"),
    )


def remove_role_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["viewer", "operator", "admin"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_tokens_and_login_throttle"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("inventory", "0002_alter_device_check_method_maintenancewindow"),
        ("monitoring", "0002_event_processed_at"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
