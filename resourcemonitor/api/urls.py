from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path

from resourcemonitor.api.api import api
from resourcemonitor.api.health import healthz
from resourcemonitor.api.metrics import metrics_view
from resourcemonitor.api.system import readyz


def not_found(request: HttpRequest, rest: str) -> JsonResponse:
    return JsonResponse({"detail": "Not Found"}, status=404)


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/v1/", api.urls),
    # Anything else under /api/ answers in JSON too, not with an HTML 404 page.
    re_path(r"^api/(?P<rest>.*)$", not_found),
]
