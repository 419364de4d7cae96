from django.contrib import admin
from django.urls import include, path

from resourcemonitor import security

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", security.login, name="login"),
    path("", include("resourcemonitor.api.urls")),
    path("", include("resourcemonitor.alerts.urls")),
    path("", include("resourcemonitor.dashboard.urls")),
]
