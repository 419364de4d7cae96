from django.urls import path

from resourcemonitor.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.index, name="index"),
    path("status.css", views.status_css, name="status-css"),
]
