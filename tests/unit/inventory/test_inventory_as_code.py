"""Inventory as code: SNMP settings and maintenance windows round-trip, --prune, --json,
and progress bars that only ever go to a terminal's stderr."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import call_command

from resourcemonitor.inventory.models import (
    CheckMethod,
    Device,
    Kind,
    MaintenanceWindow,
    Recurrence,
    Site,
    Tag,
)
from tests.conftest import Network
from tests.unit.inventory.test_devices_command import (
    add_feed_device,
    export,
    run,
    run_failing,
    write,
)

pytestmark = pytest.mark.django_db


def add_snmp_and_maintenance(network: Network) -> None:
    Device.objects.create(
        name="lon-snmp-v3",
        address="127.20.0.9",
        kind=Kind.SWITCH,
        parent=network.core,
        check_method=CheckMethod.SNMP,
        check_port=1161,
        snmp_version="3",
        snmp_community="",
        snmp_v3_user="monitor",
        snmp_v3_auth_protocol="sha256",
        snmp_v3_auth_key="auth-key-123",
        snmp_v3_priv_protocol="des",
        snmp_v3_priv_key="priv: key #1",
        snmp_v3_context="ctx",
    )
    Device.objects.create(
        name="lon-snmp-v2",
        address="127.20.0.10",
        check_method=CheckMethod.SNMP,
        snmp_community="s3cret",
    )
    Device.objects.create(name="push-1", address="127.20.0.11", check_method=CheckMethod.PUSH)
    weekly = MaintenanceWindow.objects.create(
        name="core upgrade",
        reason="IOS 17.9: reboot",
        starts_at=datetime(2026, 11, 28, 2, 0, tzinfo=UTC),
        ends_at=datetime(2026, 11, 28, 4, 30, 15, 250000, tzinfo=UTC),
        recurrence=Recurrence.WEEKLY,
        until=datetime(2027, 1, 1, tzinfo=UTC),
        kinds=["switch", "router"],
    )
    weekly.devices.add(network.core, network.dist)
    weekly.sites.add(network.paris)
    weekly.tags.add(Tag.objects.get(name="voice"))
    MaintenanceWindow.objects.create(
        name="once",
        starts_at=datetime(2026, 12, 1, 0, 0, tzinfo=UTC),
        ends_at=datetime(2026, 12, 1, 1, 0, tzinfo=UTC),
    )


def wipe() -> None:
    MaintenanceWindow.objects.all().delete()
    Device.objects.all().delete()
    Site.objects.all().delete()
    Tag.objects.all().delete()


def test_snmp_settings_and_maintenance_round_trip_exactly(tmp_path: Path, network: Network) -> None:
    add_snmp_and_maintenance(network)
    first = export()
    v3 = first[first.index("  - name: lon-snmp-v3\n") :].split("\n  - ")[0]
    assert (
        "    snmp: {version: '3', community: '', v3_user: monitor, v3_auth_protocol: sha256,"
        " v3_auth_key: auth-key-123, v3_priv_protocol: des, v3_priv_key: 'priv: key #1',"
        " v3_context: ctx}"
    ) in v3
    # Devices with the SNMP defaults and no SNMP check carry no snmp group.
    core = first[first.index("  - name: lon-core-1\n") :].split("\n  - ")[0]
    assert "snmp" not in core
    assert first.endswith(
        "maintenance:\n"
        "  - name: core upgrade\n"
        "    reason: 'IOS 17.9: reboot'\n"
        "    starts_at: '2026-11-28T02:00:00Z'\n"
        "    ends_at: '2026-11-28T04:30:15.250000Z'\n"
        "    recurrence: weekly\n"
        "    until: '2027-01-01T00:00:00Z'\n"
        "    devices: [lon-core-1, lon-dist-1]\n"
        "    sites: [Paris]\n"
        "    tags: [voice]\n"
        "    kinds: [router, switch]\n"
        "  - name: once\n"
        "    reason: ''\n"
        "    starts_at: '2026-12-01T00:00:00Z'\n"
        "    ends_at: '2026-12-01T01:00:00Z'\n"
        "    recurrence: ''\n"
        "    until: null\n"
        "    devices: []\n"
        "    sites: []\n"
        "    tags: []\n"
        "    kinds: []\n"
    )
    path = tmp_path / "inventory.yaml"
    path.write_text(first)

    wipe()
    out, _ = run("import", str(path))
    assert out.strip() == (
        "imported 9 devices (9 created, 0 updated, 0 unchanged),"
        " 2 maintenance windows (2 created, 0 updated, 0 unchanged)"
    )
    assert export() == first
    device = Device.objects.get(name="lon-snmp-v3")
    assert (device.snmp_v3_priv_key, device.snmp_v3_auth_protocol) == ("priv: key #1", "sha256")
    window = MaintenanceWindow.objects.get(name="core upgrade")
    assert window.is_active(datetime(2026, 12, 5, 3, 0, tzinfo=UTC))
    assert sorted(window.devices.values_list("name", flat=True)) == ["lon-core-1", "lon-dist-1"]
    again, _ = run("import", str(path))
    assert again.strip().endswith("(0 created, 0 updated, 2 unchanged)")


def test_csv_round_trips_snmp_settings(tmp_path: Path, network: Network) -> None:
    add_snmp_and_maintenance(network)
    first = export("csv")
    assert first.splitlines()[0].endswith(
        "snmp_version,snmp_community,snmp_v3_user,snmp_v3_auth_protocol,snmp_v3_auth_key,"
        "snmp_v3_priv_protocol,snmp_v3_priv_key,snmp_v3_context,feed,external_id"
    )
    path = tmp_path / "inventory.csv"
    path.write_text(first)
    MaintenanceWindow.objects.all().delete()
    Device.objects.all().delete()
    run("import", str(path))
    assert export("csv") == first


def test_snmp_version_may_be_written_as_a_number(tmp_path: Path, db: None) -> None:
    path = write(
        tmp_path,
        "snmp.yaml",
        "devices:\n  - {name: a, address: x, check: {method: snmp},"
        " snmp: {version: 3, v3_user: u, v3_auth_key: 12345678}}\n",
    )
    run("import", path)
    assert Device.objects.get(name="a").snmp_version == "3"


MAINTENANCE = """\
    devices:
      - {name: a, address: 127.0.0.1, check: {method: icmp}}
    maintenance:
      - name: nightly
        starts_at: 2026-11-28T01:00:00+01:00
        ends_at: '2026-11-28T01:00:00Z'
        recurrence: daily
        devices: [a]
        sites: [Lab]
        tags: [backup]
        kinds: [server]
    """


def test_maintenance_import_converts_to_utc_and_creates_sites_and_tags(
    tmp_path: Path, db: None
) -> None:
    run("import", write(tmp_path, "m.yaml", MAINTENANCE))
    window = MaintenanceWindow.objects.get(name="nightly")
    assert window.starts_at == datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
    assert (window.recurrence, window.kinds) == ("daily", ["server"])
    assert list(window.sites.values_list("name", flat=True)) == ["Lab"]
    assert list(window.tags.values_list("name", flat=True)) == ["backup"]
    assert list(window.devices.values_list("name", flat=True)) == ["a"]


def test_dry_run_shows_maintenance_changes(tmp_path: Path, db: None) -> None:
    run("import", write(tmp_path, "m.yaml", MAINTENANCE))
    changed = MAINTENANCE.replace("01:00:00Z", "02:00:00Z").replace("[backup]", "[]")
    out, _ = run("import", write(tmp_path, "m2.yaml", changed), "--dry-run")
    assert out.splitlines() == [
        "update maintenance nightly: ends_at 2026-11-28T01:00:00Z -> 2026-11-28T02:00:00Z,"
        " tags [backup] -> []",
        "dry run: would import 1 device (0 created, 0 updated, 1 unchanged),"
        " 1 maintenance window (0 created, 1 updated, 0 unchanged); nothing was written",
    ]
    window = MaintenanceWindow.objects.get(name="nightly")
    assert window.ends_at == datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    assert window.tags.count() == 1
    run("import", str(tmp_path / "m2.yaml"))
    window.refresh_from_db()
    assert (window.ends_at.hour, window.tags.count()) == (2, 0)


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (
            "{name: w, starts_at: '2026-11-28T01:00:00', ends_at: '2026-11-28T02:00:00Z'}",
            "{f}:4: field 'starts_at': needs a time zone, like 2026-11-28T02:00:00Z"
            " (got '2026-11-28T01:00:00')",
        ),
        (
            "{name: w, starts_at: soon, ends_at: '2026-11-28T02:00:00Z'}",
            "{f}:4: field 'starts_at': not an ISO 8601 time (got 'soon')",
        ),
        (
            "{name: w, starts_at: '2026-11-28T03:00:00Z', ends_at: '2026-11-28T02:00:00Z'}",
            "{f}:4: field 'ends_at': The window must end after it starts.",
        ),
        (
            "{name: w, starts_at: '2026-11-28T01:00:00Z', ends_at: '2026-11-28T02:00:00Z',"
            " devices: [ghost]}",
            "{f}:4: field 'devices': unknown device ghost",
        ),
        (
            "{name: w, starts_at: '2026-11-28T01:00:00Z', ends_at: '2026-11-28T02:00:00Z',"
            " recurrence: hourly}",
            "{f}:4: field 'recurrence': unknown recurrence 'hourly' (expected once, daily or"
            " weekly)",
        ),
        (
            "{name: w, starts_at: '2026-11-28T01:00:00Z', ends_at: '2026-11-28T02:00:00Z',"
            " kinds: [toaster]}",
            "{f}:4: field 'kinds': Unknown device kinds: ['toaster']",
        ),
        ("{name: w, ends_at: '2026-11-28T02:00:00Z'}", "{f}:4: field 'starts_at': is required"),
        (
            "{name: w, starts_at: '2026-11-28T01:00:00Z', ends_at: '2026-11-28T02:00:00Z', x: 1}",
            "{f}:4: unknown key 'x' in a maintenance window (expected one of: name, reason,"
            " starts_at, ends_at, recurrence, until, devices, sites, tags, kinds)",
        ),
    ],
)
def test_bad_maintenance_windows_report_line_and_field_and_change_nothing(
    tmp_path: Path, db: None, window: str, expected: str
) -> None:
    path = write(
        tmp_path,
        "bad.yaml",
        f"devices:\n  - {{name: a, address: x, check: {{method: icmp}}}}\nmaintenance:\n  - {window}\n",
    )
    assert run_failing("import", path) == [expected.format(f=path)]
    assert not Device.objects.exists()
    assert not MaintenanceWindow.objects.exists()


# --- prune -------------------------------------------------------------------------------------

ONLY_CORE = "devices:\n  - {name: lon-core-1, address: 127.20.0.1, kind: router, site: London, check: {method: http, port: 8080}}\n"


def test_prune_deletes_what_the_file_no_longer_has_but_never_feed_devices(
    tmp_path: Path, network: Network
) -> None:
    add_feed_device()
    path = write(tmp_path, "core.yaml", ONLY_CORE)
    out, _ = run("import", path, "--prune")
    assert out.splitlines() == [
        "delete lon-acc-1",
        "delete lon-dist-1",
        "delete lon-pc-1",
        "delete lon-phone-1",
        "delete par-srv-1",
        "imported 1 device (0 created, 0 updated, 1 unchanged, 5 deleted)",
    ]
    assert sorted(Device.objects.values_list("name", flat=True)) == ["feed-7", "lon-core-1"]


def test_prune_with_dry_run_deletes_nothing(tmp_path: Path, network: Network) -> None:
    before = export()
    out, _ = run("import", write(tmp_path, "core.yaml", ONLY_CORE), "--prune", "--dry-run")
    assert "delete par-srv-1" in out.splitlines()
    assert out.splitlines()[-1] == (
        "dry run: would import 1 device (0 created, 0 updated, 1 unchanged, 5 deleted);"
        " nothing was written"
    )
    assert export() == before


def test_without_prune_nothing_is_deleted(tmp_path: Path, network: Network) -> None:
    out, _ = run("import", write(tmp_path, "core.yaml", ONLY_CORE))
    assert out.strip() == "imported 1 device (0 created, 0 updated, 1 unchanged)"
    assert Device.objects.count() == 6


def test_prune_refuses_a_parent_it_would_delete(tmp_path: Path, network: Network) -> None:
    path = write(
        tmp_path,
        "x.yaml",
        "devices:\n  - {name: lon-acc-1, address: 127.20.0.3, parent: lon-dist-1,"
        " check: {method: icmp}}\n",
    )
    assert run_failing("import", path, "--prune") == [
        f"{path}:2: field 'parent': unknown device 'lon-dist-1'"
        " (--prune deletes it: the file does not have it)"
    ]
    assert Device.objects.count() == 6


def test_prune_deletes_maintenance_windows_only_when_the_file_lists_maintenance(
    tmp_path: Path, network: Network
) -> None:
    add_snmp_and_maintenance(network)
    full = export()
    run("import", write(tmp_path, "core.yaml", ONLY_CORE), "--prune")
    assert MaintenanceWindow.objects.count() == 2  # no 'maintenance' key: left alone
    kept = full.split("  - name: once\n")[0]  # the last window: the file ends before it
    path = tmp_path / "kept.yaml"
    path.write_text(kept)
    out, _ = run("import", str(path), "--prune")
    assert "delete maintenance once" in out.splitlines()
    assert list(MaintenanceWindow.objects.values_list("name", flat=True)) == ["core upgrade"]


# --- --json and progress -------------------------------------------------------------------------


def test_json_summary_for_scripts(tmp_path: Path, network: Network) -> None:
    out, _ = run(
        "import", write(tmp_path, "core.yaml", ONLY_CORE), "--prune", "--dry-run", "--json"
    )
    summary = json.loads(out)
    assert summary["dry_run"] is True
    assert summary["devices"] == {
        "total": 1,
        "created": 0,
        "updated": 0,
        "unchanged": 1,
        "deleted": 5,
    }
    assert "delete par-srv-1" in summary["changes"]
    out, _ = run("export", "-o", str(tmp_path / "all.yaml"), "--json")
    assert json.loads(out)["output"] == str(tmp_path / "all.yaml")
    assert run_failing("export", "--json") == [
        "--json needs -o FILE: stdout carries the export itself"
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_goes_to_a_terminals_stderr_never_to_stdout(
    tmp_path: Path, network: Network
) -> None:
    plain = export()
    out, err = io.StringIO(), Terminal()
    call_command("devices", "export", stdout=out, stderr=err)
    assert out.getvalue() == plain
    assert "reading the inventory" in err.getvalue()
    path = write(tmp_path, "core.yaml", ONLY_CORE)
    out, err = io.StringIO(), Terminal()
    call_command("devices", "import", path, stdout=out, stderr=err)
    assert out.getvalue().strip() == "imported 1 device (0 created, 0 updated, 1 unchanged)"
    assert "checking and writing" in err.getvalue()


def test_no_progress_when_stderr_is_not_a_terminal(network: Network) -> None:
    _, err = run("export")
    assert err == ""
