from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "resourcemonitor.inventory"
    label = "inventory"
    verbose_name = "Inventory"
