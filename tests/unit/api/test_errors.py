"""Errors are JSON everywhere under /api/, never an HTML page or a traceback."""

from __future__ import annotations

from unittest import mock


def test_unexpected_error_is_json_500(client, public, network, caplog):
    with mock.patch("resourcemonitor.api.devices.list_devices", side_effect=RuntimeError("boom")):
        response = client.get("/api/v1/devices")
    assert response.status_code == 500
    body = response.json()
    assert "boom" not in str(body)  # no internals leak to clients
    assert body["detail"].startswith("Internal server error")
    assert "boom" in caplog.text  # but the log has them


def test_unknown_api_path_is_json_404(client, public, db):
    for url in ("/api/v1/nope", "/api/v2/devices", "/api/"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json() == {"detail": "Not Found"}
