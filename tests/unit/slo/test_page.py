"""/slo/ and /slo.csv: the first paint, the nav link, the export, bad input, queries."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from resourcemonitor.inventory.models import Device
from tests.unit.slo.helpers import created, write


@pytest.fixture
def public(settings):
    settings.RESMON_PUBLIC_DASHBOARD = True
    return settings


@pytest.fixture
def checked(network):
    now = timezone.now().replace(second=0, microsecond=0)
    Device.objects.filter(pk=network.access.pk).update(check_interval_s=60.0, name="acc <b>1</b>")
    created(network.access, now - timedelta(hours=2))
    write(network.access, [(now - timedelta(minutes=i), i % 4 != 0) for i in range(1, 121)])
    return network


def test_page_lists_devices_worst_first(client, public, checked, django_assert_max_num_queries):
    with django_assert_max_num_queries(28):
        response = client.get("/slo/", {"window": "24h"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'aria-current="page">SLOs</a>' in html
    # The device name is escaped, never markup; it is the first row (its budget is spent).
    first_row = html.index('data-kind="device"')
    assert html.index("acc &lt;b&gt;1&lt;/b&gt;") > first_row
    assert html.index("acc &lt;b&gt;1&lt;/b&gt;") < html.index("lon-core-1")
    assert "75.000 %" in html
    assert 'data-budget="spent"' in html
    assert "<script>" not in html  # no inline scripts (CSP)


def test_csv_export(client, public, checked):
    response = client.get("/slo.csv", {"window": "24h"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 6
    first = rows[0]
    assert first["name"] == "acc <b>1</b>"
    assert (first["checks"], first["failed"], first["window"]) == ("120", "30", "24h")
    assert float(first["sli"]) == pytest.approx(75.0)
    assert rows[-1]["sli"] == ""  # not measured: an empty cell, never 0


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        ("/slo/", {"window": "2w"}, "window"),
        ("/slo.csv", {"window": "2w"}, "window"),
        ("/slo/", {"group": "planet:mars"}, "group"),
        ("/slo.csv", {"group": "site"}, "group"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client, public, network, url, params, field):
    response = client.get(url, params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_group_filter_on_the_page(client, public, checked):
    html = client.get("/slo/", {"group": "kind:switch"}).content.decode()
    assert "lon-dist-1" in html and "lon-core-1" not in html
    assert 'data-kind="group"' in html


def test_needs_a_login_when_not_public(client, network):
    assert client.get("/slo/").status_code == 302
    assert client.get("/slo.csv").status_code == 302
