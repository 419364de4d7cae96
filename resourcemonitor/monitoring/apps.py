from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "resourcemonitor.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"
