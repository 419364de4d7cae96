from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "resourcemonitor.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"
