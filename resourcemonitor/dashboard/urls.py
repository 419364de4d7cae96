from django.urls import path

from resourcemonitor.dashboard import views, views_manage, views_slo, views_system

app_name = "dashboard"

urlpatterns = [
    path("", views.index, name="index"),
    path("system/", views_system.system, name="system"),
    path("slo/", views_slo.slo_page, name="slo"),
    path("slo.csv", views_slo.slo_csv, name="slo-csv"),
    path("status.css", views.status_css, name="status-css"),
    path("favicon.svg", views.favicon, name="favicon"),
    path("devices/new", views_manage.device_add, name="device-add"),
    path("devices/<int:device_id>/edit", views_manage.device_edit, name="device-edit"),
    path("devices/<int:device_id>/pause", views_manage.device_pause, name="device-pause"),
    path("devices/<int:device_id>/delete", views_manage.device_delete, name="device-delete"),
    path("maintenance/", views_manage.maintenance_list, name="maintenance"),
    path("maintenance/new", views_manage.maintenance_add, name="maintenance-add"),
    path(
        "maintenance/<int:window_id>/edit", views_manage.maintenance_edit, name="maintenance-edit"
    ),
    path(
        "maintenance/<int:window_id>/delete",
        views_manage.maintenance_delete,
        name="maintenance-delete",
    ),
]
