"""GET /healthz."""

from __future__ import annotations

from unittest import mock

from django.db.utils import OperationalError


def test_healthy(client, db):
    # No login and no public setting needed: load balancers call it.
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["database"] == "ok"
    assert "version" in body
    assert "no-cache" in response["Cache-Control"]


def test_database_down_is_503_json(client, db):
    with mock.patch(
        "django.db.backends.utils.CursorWrapper.execute",
        side_effect=OperationalError("unable to open database file"),
    ):
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    assert body["database"] == "error"
    assert "unable to open database file" in body["error"]


def test_only_get(client, db):
    assert client.post("/healthz").status_code == 405
