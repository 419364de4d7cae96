from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "resourcemonitor.alerts"
    label = "alerts"
    verbose_name = "Alerts"
