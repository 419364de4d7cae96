from django.urls import path

from resourcemonitor.alerts import views

app_name = "alerts"

urlpatterns = [
    path("incidents/", views.incidents, name="incidents"),
    path("channels/", views.channels, name="channels"),
    path("channels/<int:channel_id>/edit", views.channel_edit, name="channel-edit"),
    path("channels/<int:channel_id>/test", views.channel_test, name="channel-test"),
    path("channels/<int:channel_id>/delete", views.channel_delete, name="channel-delete"),
]
