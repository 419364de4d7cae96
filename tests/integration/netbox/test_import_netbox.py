"""``resmon devices import-netbox`` against a local HTTP server speaking NetBox's REST API.

The server is real (http.server on 127.0.0.1, in a thread) and pynetbox talks to it over
a socket: ``/api/status/``, and ``/api/dcim/devices/`` and ``/api/dcim/cables/`` paginated
as NetBox does (``{"count", "next", "previous", "results"}``, ``limit``/``offset``),
with token authentication (403 otherwise).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from resourcemonitor.inventory.models import CheckMethod, Device, Kind

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

TOKEN = "0123456789abcdef0123456789abcdef01234567"
PAGE = 2  # NetBox's default is 50; small, so that every list needs several pages


def ref(pk: int, name: str) -> dict[str, Any]:
    return {"id": pk, "url": f"/api/dcim/devices/{pk}/", "display": name, "name": name}


def device(
    pk: int, name: str | None, role: str, ip: str | None, tags: list[str], *, v3: bool = False
) -> dict[str, Any]:
    role_obj = {"id": pk, "name": role.title(), "slug": role}
    return {
        "id": pk,
        "url": f"/api/dcim/devices/{pk}/",
        "display": name or f"device {pk}",
        "name": name,
        # NetBox 3.x calls the role "device_role"; 4.x "role".
        ("device_role" if v3 else "role"): role_obj,
        "site": {"id": 1, "url": "/api/dcim/sites/1/", "name": "London", "slug": "london"},
        "status": {"value": "active", "label": "Active"},
        "primary_ip": {"id": pk, "address": ip, "family": 4} if ip else None,
        "primary_ip4": {"id": pk, "address": ip, "family": 4} if ip else None,
        "primary_ip6": None,
        "tags": [{"id": i, "name": tag.title(), "slug": tag} for i, tag in enumerate(tags)],
    }


def interface(device_pk: int, name: str) -> dict[str, Any]:
    return {
        "object_type": "dcim.interface",
        "object_id": device_pk * 100,
        "object": {
            "id": device_pk * 100,
            "name": "eth0",
            "device": ref(device_pk, name),
            "cable": None,
        },
    }


DEVICES = [
    device(1, "core-1", "router", "10.0.0.1/24", ["core"]),
    device(2, "dist-1", "distribution-switch", "10.0.0.2/24", []),
    device(3, "acc-1", "access-switch", "10.0.0.3/24", ["access", "floor-2"]),
    device(4, "ap-1", "wireless-ap", "10.0.0.4/24", [], v3=True),
    device(5, "no-ip-1", "server", None, []),
    device(6, "srv-1", "hypervisor", "10.0.1.6/24", []),
    device(7, None, "server", "10.0.1.7/24", []),
]
CABLES = [
    # a/b order says nothing about direction: the rank of the ends does.
    {
        "id": 1,
        "a_terminations": [interface(2, "dist-1")],
        "b_terminations": [interface(1, "core-1")],
    },
    {
        "id": 2,
        "a_terminations": [interface(2, "dist-1")],
        "b_terminations": [interface(3, "acc-1")],
    },
    {"id": 3, "a_terminations": [interface(4, "ap-1")], "b_terminations": [interface(3, "acc-1")]},
    {
        "id": 4,
        "a_terminations": [
            {"object_type": "circuits.circuittermination", "object_id": 9, "object": {"id": 9}}
        ],
        "b_terminations": [interface(1, "core-1")],
    },
]


class NetboxHandler(BaseHTTPRequestHandler):
    mode = "netbox"  # or "html", "not-netbox-json"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("API-Version", "4.2")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.mode == "html":
            data = b"<html><body>Welcome to nginx!</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if self.headers.get("Authorization") != f"Token {TOKEN}":
            self.send_json(403, {"detail": "Invalid token"})
            return
        url = urlsplit(self.path)
        if url.path == "/api/status/":
            body = (
                {"django-version": "5.0"}
                if self.mode == "not-netbox-json"
                else {
                    "netbox-version": "4.2.0",
                    "python-version": "3.12.0",
                }
            )
            self.send_json(200, body)
            return
        devices = DEVICES
        if self.mode == "bad-tag":
            devices = [*DEVICES, device(8, "weird-1", "server", "10.0.1.8/24", ["no spaces!"])]
        objects = {"/api/dcim/devices/": devices, "/api/dcim/cables/": CABLES}.get(url.path)
        if objects is None:
            self.send_json(404, {"detail": "Not found."})
            return
        query = parse_qs(url.query)
        limit = int(query.get("limit", [PAGE])[0]) or len(objects)
        offset = int(query.get("offset", ["0"])[0])
        host = f"http://{self.headers['Host']}"
        following = offset + limit
        self.send_json(
            200,
            {
                "count": len(objects),
                "next": f"{host}{url.path}?limit={limit}&offset={following}"
                if following < len(objects)
                else None,
                "previous": None,
                "results": objects[offset:following],
            },
        )


def serve(mode: str) -> Iterator[str]:
    handler = type("Handler", (NetboxHandler,), {"mode": mode})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def netbox() -> Iterator[str]:
    yield from serve("netbox")


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("devices", "import-netbox", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def failure(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        call_command("devices", "import-netbox", *args, stdout=io.StringIO(), stderr=io.StringIO())
    return str(caught.value)


def test_import_maps_name_ip_site_role_tags_and_parents_from_cabling(netbox: str) -> None:
    out, err = run(netbox, "--token", TOKEN)
    assert out.strip() == "imported 5 devices (5 created, 0 updated, 0 unchanged)"
    assert err.splitlines() == [
        f"{netbox}: skipped device 'no-ip-1': no primary IP in NetBox",
        f"{netbox}: skipped device id 7: no name in NetBox",
    ]
    rows = {
        d.name: (
            d.address,
            d.kind,
            d.site.name if d.site else None,
            d.parent.name if d.parent else None,
        )
        for d in Device.objects.select_related("site", "parent")
    }
    assert rows == {
        "core-1": ("10.0.0.1", Kind.ROUTER, "London", None),
        "dist-1": ("10.0.0.2", Kind.SWITCH, "London", "core-1"),
        "acc-1": ("10.0.0.3", Kind.SWITCH, "London", "dist-1"),
        "ap-1": ("10.0.0.4", Kind.ACCESS_POINT, "London", "acc-1"),
        "srv-1": ("10.0.1.6", Kind.SERVER, "London", None),
    }
    acc = Device.objects.get(name="acc-1")
    assert sorted(acc.tags.values_list("name", flat=True)) == ["access", "floor-2"]
    assert acc.check_method == CheckMethod.ICMP
    # A second run finds nothing to do.
    assert run(netbox, "--token", TOKEN)[0].strip().endswith("(0 created, 0 updated, 5 unchanged)")


def test_existing_devices_keep_their_checks(netbox: str) -> None:
    Device.objects.create(
        name="core-1", address="192.0.2.1", check_method=CheckMethod.HTTP, check_port=8443
    )
    out, _ = run(netbox, "--token", TOKEN, "--dry-run")
    assert (
        "update core-1: address '192.0.2.1' -> '10.0.0.1', kind 'other' -> 'router',"
        " site null -> 'London', tags [] -> [core]"
    ) in out.splitlines()
    assert Device.objects.get(name="core-1").address == "192.0.2.1"  # dry run
    run(netbox + "/api/", "--token", TOKEN)
    core = Device.objects.get(name="core-1")
    assert (core.address, core.check_method, core.check_port) == ("10.0.0.1", "http", 8443)


def test_json_summary(netbox: str) -> None:
    out, _ = run(netbox, "--token", TOKEN, "--dry-run", "--json")
    summary = json.loads(out)
    assert summary["devices"]["created"] == 5
    assert summary["dry_run"] is True
    assert not Device.objects.exists()


def test_a_wrong_token_is_one_line(netbox: str) -> None:
    assert failure(netbox, "--token", "wrong") == f"{netbox}: access denied (403): check the token"
    assert not Device.objects.exists()


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("html", "not a NetBox API (the answer is not JSON)"),
        ("not-netbox-json", "not a NetBox API (/api/status/ has no netbox-version)"),
    ],
)
def test_a_server_that_is_not_netbox_is_one_line(mode: str, message: str) -> None:
    for url in serve(mode):
        assert failure(url, "--token", TOKEN) == f"{url}: {message}"


def test_a_device_netbox_has_but_resmon_cannot_take_is_named_and_nothing_is_written() -> None:
    for url in serve("bad-tag"):
        message = failure(url, "--token", TOKEN)
        assert message.startswith(f"{url}: device 'weird-1': field 'tags': tag 'no spaces!': ")
    assert not Device.objects.exists()


def test_a_bad_timeout_is_one_line(netbox: str) -> None:
    assert failure(netbox, "--token", TOKEN, "--timeout", "0") == (
        "--timeout must be a positive number of seconds (got 0.0)"
    )


def test_bad_urls_are_one_line() -> None:
    assert failure("netbox.example", "--token", TOKEN) == (
        "netbox.example: not a URL (expected http:// or https://)"
    )
    # A port nothing listens on (bound then closed).
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    message = failure(f"http://127.0.0.1:{port}", "--token", TOKEN)
    assert message.startswith(f"http://127.0.0.1:{port}: cannot connect: ")
    assert "\n" not in message


def test_the_console_script_exits_non_zero_without_a_traceback(tmp_path: Path) -> None:
    resmon = str(Path(sys.executable).with_name("resmon"))
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["RESMON_DATA_DIR"] = str(tmp_path)
    for url in serve("netbox"):
        result = subprocess.run(
            [resmon, "devices", "import-netbox", url, "--token", "wrong"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        assert result.stdout == ""
        assert result.stderr.strip() == f"CommandError: {url}: access denied (403): check the token"


@pytest.mark.parametrize(
    ("slug", "kind"),
    [
        ("router", "router"),
        ("core-switch", "switch"),
        ("wireless-ap", "access_point"),
        ("edge-firewall", "firewall"),
        ("hypervisor", "server"),
        ("pdu", "other"),
        (None, "other"),
    ],
)
def test_roles_map_to_kinds(slug: str | None, kind: str) -> None:
    from resourcemonitor.inventory.netbox import role_kind

    assert role_kind(slug) == kind


def test_a_server_that_never_answers_times_out_in_one_line() -> None:
    import socket

    with socket.socket() as sock:  # listens (the kernel completes the handshake), never replies
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        assert (
            failure(url, "--token", TOKEN, "--timeout", "0.5") == f"{url}: no answer within 0.5 s"
        )
