"""The incidents and channels pages; channel validation and the send-test button."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from resourcemonitor.alerts.models import Channel

pytestmark = pytest.mark.django_db


def test_incidents_page_renders_quality(client, alice, network):
    client.force_login(alice)
    response = client.get("/incidents/")
    assert response.status_code == 200
    assert b'data-testid="alert-quality"' in response.content
    assert b"<script>" not in response.content  # no inline scripts (CSP)
    assert b'href="/incidents/"' in client.get("/").content  # the nav link


def test_incidents_page_needs_login_unless_public(client, settings):
    settings.RESMON_PUBLIC_DASHBOARD = False
    assert client.get("/incidents/").status_code == 302
    settings.RESMON_PUBLIC_DASHBOARD = True
    assert client.get("/incidents/").status_code == 200


def test_channels_page_needs_operator(client, bob):
    assert client.get("/channels/").status_code == 302
    client.force_login(bob)
    assert client.get("/channels/").status_code == 403


def test_add_channel_with_routing(client, alice, network):
    client.force_login(alice)
    response = client.post(
        "/channels/",
        {
            "name": "noc-hook",
            "kind": "apprise",
            "target": "json://127.0.0.1:9000/hook",
            "enabled": "on",
            "severities": ["critical"],
            "device_kinds": ["router", "switch"],
            "sites": [network.london.pk],
        },
    )
    assert response.status_code == 302
    channel = Channel.objects.get(name="noc-hook")
    assert channel.severities == ["critical"]
    assert list(channel.sites.all()) == [network.london]


@pytest.mark.parametrize(
    ("kind", "target", "message"),
    [
        ("apprise", "notaurl", "apprise"),
        ("apprise", "bogus://nowhere", "apprise"),
        ("email", "not-an-address", "Not an email address"),
    ],
)
def test_bad_target_is_a_field_error_and_nothing_saved(
    client, alice, network, kind, target, message
):
    client.force_login(alice)
    response = client.post(
        "/channels/",
        {"name": "bad", "kind": kind, "target": target, "sites": [network.london.pk]},
    )
    assert response.status_code == 422
    errors = response.context["form"].errors
    assert list(errors) == ["target"]
    assert message in errors["target"][0]
    assert b'data-testid="error-target"' in response.content
    assert not Channel.objects.filter(name="bad").exists()


def test_model_clean_rejects_invalid_url():
    with pytest.raises(ValidationError) as info:
        Channel(name="x", target="http//broken").full_clean()
    assert "target" in info.value.message_dict


def test_send_test_button(client, alice, receiver):
    channel = Channel.objects.create(name="hook", target=receiver.url("/test"))
    client.force_login(alice)
    response = client.post(f"/channels/{channel.pk}/test", follow=True)
    assert b"Test sent to" in response.content
    assert receiver.titles() == ["Resource Monitor test notification"]
    receiver.fail_first = 99
    response = client.post(f"/channels/{channel.pk}/test", follow=True)
    assert b"failed" in response.content


def test_send_test_needs_post_and_csrf(alice, receiver):
    from django.test import Client

    channel = Channel.objects.create(name="hook", target=receiver.url("/test"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get(f"/channels/{channel.pk}/test").status_code == 405
    assert client.post(f"/channels/{channel.pk}/test").status_code == 403
    assert receiver.posts == []


def test_email_test_goes_through_django_mail(client, alice, mailoutbox):
    channel = Channel.objects.create(name="mail", kind="email", target="noc@example.org")
    client.force_login(alice)
    client.post(f"/channels/{channel.pk}/test")
    assert [m.to for m in mailoutbox] == [["noc@example.org"]]


def test_pages_query_counts_do_not_grow(client, alice, network, django_assert_max_num_queries):
    from django.utils import timezone

    from resourcemonitor.alerts.services import open_incident

    for device in (network.core, network.dist, network.access, network.pc, network.server):
        open_incident(device=device, problem="down", message="x", now=timezone.now())
    for i in range(5):
        channel = Channel.objects.create(name=f"c{i}", target="json://127.0.0.1:9/x")
        channel.sites.add(network.london)
    client.force_login(alice)
    with django_assert_max_num_queries(8):
        assert client.get("/incidents/").status_code == 200
    with django_assert_max_num_queries(12):
        assert client.get("/channels/").status_code == 200


SECRET_HOOK = "json://noc:hunter2@127.0.0.1:9000/hook"


def test_channel_list_never_shows_a_target_secret(client, alice):
    Channel.objects.create(name="hook", target=SECRET_HOOK)
    client.force_login(alice)
    body = client.get("/channels/").content.decode()
    assert "hunter2" not in body
    assert "json://noc:****@127.0.0.1:9000/hook" in body


def test_admin_edits_a_channel_target_and_routing(client, alice, network):
    channel = Channel.objects.create(name="hook", target=SECRET_HOOK)
    client.force_login(alice)
    assert "hunter2" in client.get(f"/channels/{channel.pk}/edit").content.decode()
    response = client.post(
        f"/channels/{channel.pk}/edit",
        {
            "name": "noc-hook",
            "kind": "apprise",
            "target": "json://127.0.0.1:9001/other",
            "severities": ["critical"],
            "sites": [network.paris.pk],
        },
    )
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.target, channel.enabled) == (
        "noc-hook",
        "json://127.0.0.1:9001/other",
        False,
    )
    assert channel.severities == ["critical"]
    assert list(channel.sites.all()) == [network.paris]


def test_operator_edits_routing_but_neither_sees_nor_changes_the_target(client, carol):
    channel = Channel.objects.create(name="hook", target=SECRET_HOOK)
    client.force_login(carol)
    page = client.get(f"/channels/{channel.pk}/edit").content.decode()
    assert "hunter2" not in page and 'name="target"' not in page
    response = client.post(
        f"/channels/{channel.pk}/edit",
        {"name": "hook", "kind": "apprise", "target": "json://evil/", "enabled": "on"},
    )
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.target == SECRET_HOOK


def test_a_bad_edit_is_a_field_error_and_nothing_changes(client, alice):
    channel = Channel.objects.create(name="hook", target=SECRET_HOOK)
    client.force_login(alice)
    response = client.post(
        f"/channels/{channel.pk}/edit",
        {"name": "renamed", "kind": "apprise", "target": "bogus://nowhere", "enabled": "on"},
    )
    assert response.status_code == 422
    assert b'data-testid="error-target"' in response.content
    channel.refresh_from_db()
    assert (channel.name, channel.target) == ("hook", SECRET_HOOK)


def test_editing_a_channel_needs_operator(client, bob):
    channel = Channel.objects.create(name="hook", target=SECRET_HOOK)
    assert client.get(f"/channels/{channel.pk}/edit").status_code == 302
    client.force_login(bob)
    assert client.get(f"/channels/{channel.pk}/edit").status_code == 403
    assert client.get("/channels/999/edit").status_code == 403
