from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "resourcemonitor.api"
    label = "api"
    verbose_name = "Api"
