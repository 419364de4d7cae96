"""``resmon devices import|export`` through call_command: files in, database and output out."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from resourcemonitor.inventory.models import CheckMethod, Device, Feed, Kind, Site, Tag
from tests.conftest import Network

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    """Run ``devices ARGS``; return (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command("devices", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(*args: str) -> list[str]:
    """Run ``devices ARGS``, which must fail; return stderr lines plus the error's lines."""
    err = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("devices", *args, stdout=io.StringIO(), stderr=err)
    return [*err.getvalue().splitlines(), *str(caught.value).splitlines()]


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def export(format: str = "yaml") -> str:
    return run("export", "--format", format)[0]


def snapshot() -> tuple[str, int, int]:
    return export(), Site.objects.count(), Tag.objects.count()


# --- import: happy paths -----------------------------------------------------------------------

YAML = """\
    sites:
      - {name: London, description: "Main office"}
    devices:
      - name: lon-acc-1          # its parent comes later in the file
        address: 127.10.0.3
        kind: switch
        site: London
        parent: lon-dist-1
        tags: [access]
        check: {method: tcp, port: 22}
      - name: lon-dist-1
        address: 127.10.0.2
        kind: switch
        site: Paris               # not in 'sites': created with no description
        parent: lon-core-1
        tags: [core, uplink]
        check: {method: http, port: 8080, path: /status, tls: true, expect_status: 204, body_match: ok, interval_s: 30, timeout_s: 5}
        thresholds: {fail: 5, recover: 2, latency_ms: 250}
        slo_target: 99.5
        enabled: false
      - name: lon-core-1
        address: 127.10.0.1
        kind: router
        site: London
        check: {method: icmp}
    """


def test_import_yaml_creates_devices_sites_tags_and_parents(tmp_path: Path) -> None:
    out, err = run("import", write(tmp_path, "inventory.yaml", YAML))
    assert out.strip() == "imported 3 devices (3 created, 0 updated, 0 unchanged)"
    assert err == ""
    access = Device.objects.get(name="lon-acc-1")
    dist = Device.objects.get(name="lon-dist-1")
    assert access.parent == dist
    assert dist.parent is not None and dist.parent.name == "lon-core-1"
    assert Site.objects.get(name="London").description == "Main office"
    assert dist.site is not None and dist.site.name == "Paris"
    assert sorted(dist.tags.values_list("name", flat=True)) == ["core", "uplink"]
    assert (dist.check_method, dist.check_port, dist.check_path, dist.check_tls) == (
        CheckMethod.HTTP,
        8080,
        "/status",
        True,
    )
    assert (dist.check_expect_status, dist.check_body_match) == (204, "ok")
    assert (dist.check_interval_s, dist.check_timeout_s) == (30.0, 5.0)
    assert (dist.fail_threshold, dist.recover_threshold, dist.latency_threshold_ms) == (5, 2, 250)
    assert (dist.slo_target, dist.enabled) == (99.5, False)


def test_import_upserts_by_name_and_finds_parents_in_the_database(
    tmp_path: Path, network: Network
) -> None:
    path = write(
        tmp_path,
        "more.yaml",
        """\
        devices:
          - {name: lon-core-1, address: 127.20.0.1, kind: router, site: London, check: {method: http, port: 8443}}
          - {name: lon-phone-2, address: 127.20.0.9, kind: phone, site: London, parent: lon-acc-1, tags: [voice], check: {method: http, port: 8080}}
        """,
    )
    out, _ = run("import", path)
    assert out.strip() == "imported 2 devices (1 created, 1 updated, 0 unchanged)"
    network.core.refresh_from_db()
    assert network.core.check_port == 8443
    phone = Device.objects.get(name="lon-phone-2")
    assert phone.parent == network.access
    assert list(phone.tags.values_list("name", flat=True)) == ["voice"]
    assert Tag.objects.filter(name="voice").count() == 1
    # Importing the same file again changes nothing.
    out, _ = run("import", path)
    assert out.strip() == "imported 2 devices (0 created, 0 updated, 2 unchanged)"


def test_import_csv_with_missing_optional_columns_takes_model_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "inventory.csv",
        """\
        name,address,kind,site,parent,tags,check_method,check_port,check_body_match
        sw-2,10.0.0.2,switch,Lab,sw-1,lab;access,tcp,22,
        sw-1,10.0.0.1,switch,Lab,,lab,http,80,"status: ""ok"",
        all good"
        """,
    )
    out, _ = run("import", path)
    assert out.strip() == "imported 2 devices (2 created, 0 updated, 0 unchanged)"
    sw1, sw2 = Device.objects.order_by("name")
    assert sw2.parent == sw1
    assert sw1.check_body_match == 'status: "ok",\nall good'
    assert sorted(sw2.tags.values_list("name", flat=True)) == ["access", "lab"]
    defaults = Device()
    for field in ("enabled", "check_interval_s", "check_timeout_s", "fail_threshold", "slo_target"):
        assert getattr(sw1, field) == getattr(defaults, field), field
    assert sw1.latency_threshold_ms is None


def test_format_comes_from_the_option_when_the_extension_says_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "inventory.txt", "name,address,check_port\na,10.0.0.1,22\n")
    assert "cannot tell the format" in run_failing("import", path)[0]
    out, _ = run("import", path, "--format", "csv")
    assert out.strip() == "imported 1 device (1 created, 0 updated, 0 unchanged)"


# --- export and the round trip ---------------------------------------------------------------


def test_export_yaml_has_the_documented_shape(network: Network) -> None:
    network.core.tags.add(Tag.objects.create(name="core"))
    text = export()
    assert text.startswith("sites:\n  - {name: London, description: ''}\n")
    core = text[text.index("  - name: lon-core-1\n") :].split("\n  - ")[0]
    assert core.splitlines() == [
        "  - name: lon-core-1",
        "    address: 127.20.0.1",
        "    kind: router",
        "    site: London",
        "    parent: null",
        "    tags: [core]",
        "    enabled: true",
        "    check: {method: http, port: 8080, path: /health, tls: false, expect_status: 200,"
        " body_match: '', interval_s: 10, timeout_s: 2}",
        "    thresholds: {fail: 3, recover: 1, latency_ms: null}",
        "    slo_target: 99.9",
    ]


def add_awkward_devices(network: Network) -> None:
    """Values that are easy to lose: odd text, tags, nulls, a site with no devices."""
    Site.objects.create(name="Zürich", description="empty: no devices, yet")
    tag_a, tag_b = Tag.objects.create(name="a-tag"), Tag.objects.create(name="b_tag")
    network.phone.tags.add(tag_a, tag_b)
    Device.objects.create(
        name="yes",  # a YAML 1.1 boolean if written bare
        address="0x1F",
        kind=Kind.SERVER,
        check_method=CheckMethod.HTTP,
        check_port=443,
        check_path="",
        check_tls=True,
        check_body_match='he said "ok", then\nleft: #1 ; done ',
        check_interval_s=0.5,
        check_timeout_s=0.25,
        latency_threshold_ms=12.75,
        slo_target=99.999,
        enabled=False,
        parent=network.server,
    )
    Device.objects.create(name="007", address="::1", check_method=CheckMethod.ICMP)


@pytest.mark.parametrize("format", ["yaml", "csv"])
def test_export_import_export_is_byte_identical(
    tmp_path: Path, network: Network, format: str
) -> None:
    add_awkward_devices(network)
    first = export(format)
    path = tmp_path / f"inventory.{format}"
    path.write_text(first)

    Device.objects.all().delete()
    Site.objects.all().delete()
    Tag.objects.all().delete()
    out, _ = run("import", str(path))
    assert out.strip() == "imported 8 devices (8 created, 0 updated, 0 unchanged)"
    assert export(format) == first
    # And a second import finds nothing to do.
    assert run("import", str(path))[0].strip().endswith("(0 created, 0 updated, 8 unchanged)")


def test_export_to_a_file_picks_the_format_from_its_extension(
    tmp_path: Path, network: Network
) -> None:
    path = tmp_path / "out.csv"
    out, _ = run("export", "-o", str(path))
    assert out.strip() == f"wrote {path}"
    assert path.read_text().splitlines()[0].startswith("name,address,kind,site,parent,tags,")
    assert path.read_text() == export("csv")


# --- feed devices -------------------------------------------------------------------------------


def add_feed_device() -> Feed:
    feed = Feed.objects.create(url="http://127.0.0.1:8001/devices")
    Device.objects.create(
        name="feed-7", address="10.9.0.7", check_method=CheckMethod.FEED, feed=feed, external_id="7"
    )
    return feed


def test_feed_devices_round_trip_when_their_feed_is_registered(
    tmp_path: Path, network: Network
) -> None:
    add_feed_device()
    first = export()
    assert "    feed: 'http://127.0.0.1:8001/devices'\n    external_id: '7'\n" in first
    path = tmp_path / "inventory.yaml"
    path.write_text(first)
    Device.objects.all().delete()
    run("import", str(path))
    assert export() == first


def test_feed_devices_of_an_unknown_feed_are_skipped_with_a_note(
    tmp_path: Path, network: Network
) -> None:
    add_feed_device()
    path = tmp_path / "inventory.yaml"
    path.write_text(export())
    Device.objects.all().delete()
    Feed.objects.all().delete()
    out, err = run("import", str(path))
    assert out.strip() == "imported 6 devices (6 created, 0 updated, 0 unchanged)"
    assert "skipped 1 device of the feed http://127.0.0.1:8001/devices" in err
    assert not Device.objects.filter(name="feed-7").exists()


def test_a_feed_device_cannot_be_taken_over_by_a_plain_one(tmp_path: Path, db: None) -> None:
    add_feed_device()
    path = write(tmp_path, "x.yaml", "devices:\n  - {name: feed-7, address: x, check: {port: 1}}\n")
    (line, *_) = run_failing("import", path)
    assert line.startswith(f"{path}:2: field 'name': 'feed-7' belongs to the feed")


# --- bad input: every problem with its line and field, nothing written ------------------------


BAD_CASES = [
    pytest.param(
        "bad.yaml",
        "devices:\n  - name: a\n    address: x\n    check:\n      port: 70000\n",
        ["{f}:5: field 'check_port': must be between 1 and 65535 (got 70000)"],
        id="yaml-port-out-of-range",
    ),
    pytest.param(
        "bad.csv",
        "name,address,check_port\na,x,22\nb,y,70000\n",
        ["{f}:3: field 'check_port': must be between 1 and 65535 (got 70000)"],
        id="csv-port-out-of-range",
    ),
    pytest.param(
        "bad.yaml",
        "devices:\n  - {name: a, address: x, kind: rooter, check: {port: 1}}\n",
        [
            "{f}:2: field 'kind': unknown kind 'rooter' (expected one of: router, switch, firewall, "
            "access_point, phone, pc, server, other)"
        ],
        id="yaml-unknown-kind",
    ),
    pytest.param(
        "bad.csv",
        "name,address,check_method\na,x,smtp\n",
        [
            "{f}:2: field 'check_method': unknown check method 'smtp' "
            "(expected one of: tcp, http, icmp, snmp, feed, push)"
        ],
        id="csv-unknown-method",
    ),
    pytest.param(
        "bad.yaml",
        "devices:\n  - name: a\n    address: x\n    check: {port: twenty-two}\n",
        ["{f}:4: field 'check_port': must be a whole number (got 'twenty-two')"],
        id="yaml-non-numeric-port",
    ),
    pytest.param(
        "bad.csv",
        "name,address,check_port,check_interval_s\na,x,22,often\n",
        ["{f}:2: field 'check_interval_s': must be a number (got 'often')"],
        id="csv-non-numeric-interval",
    ),
    pytest.param(
        "bad.yaml",
        "devices:\n  - {name: a, address: x, check: {port: 1}}\n  - {name: a, address: y, check: {port: 2}}\n",
        ["{f}:3: field 'name': duplicate name 'a' (first at line 2)"],
        id="yaml-duplicate-name",
    ),
    pytest.param(
        "bad.csv",
        "name,address,check_port\na,x,1\nb,y,2\na,z,3\n",
        ["{f}:4: field 'name': duplicate name 'a' (first at line 2)"],
        id="csv-duplicate-name",
    ),
    pytest.param(
        "bad.yaml",
        "devices:\n  - name: a\n    address: x\n    parent: nowhere\n    check: {port: 1}\n",
        ["{f}:4: field 'parent': unknown device 'nowhere'"],
        id="yaml-unknown-parent",
    ),
    pytest.param(
        "bad.csv",
        "name,address,parent,check_port\na,x,b,1\nb,y,c,1\nc,z,a,1\n",
        ["{f}:2: field 'parent': dependency cycle: a -> b -> c -> a"],
        id="csv-cycle-in-the-file",
    ),
    pytest.param(
        "bad.yaml",
        # The database has lon-acc-1 -> lon-dist-1 -> lon-core-1.
        "devices:\n  - {name: lon-core-1, address: x, parent: lon-acc-1, check: {port: 1}}\n",
        [
            "{f}:2: field 'parent': dependency cycle: lon-core-1 -> lon-acc-1 -> lon-dist-1 -> lon-core-1"
        ],
        id="yaml-cycle-through-the-database",
    ),
    pytest.param(
        "bad.yaml",
        "devices:\n  - name: a\n    address: x\n    check: {method: tcp}\n",
        ["{f}:2: field 'check_port': A TCP check needs a port."],
        id="yaml-model-clean-tcp-needs-port",
    ),
    pytest.param(
        "bad.csv",
        "name,address,check_port,check_interval_s,check_timeout_s\na,x,1,5,10\n",
        ["{f}:2: field 'check_timeout_s': The timeout must not be longer than the interval."],
        id="csv-model-clean-timeout",
    ),
    pytest.param(
        "bad.csv",
        "name,address,parent,check_port\na,x,,1,surplus\nb,y,a,1\n",
        ["{f}:2: has 5 fields, the header has 4"],
        id="csv-bad-row-still-known-as-a-parent",
    ),
    pytest.param(
        "bad.yaml",
        "devices:\n"
        "  - {name: ok-1, address: x, check: {port: 1}}\n"
        "  - {name: b, address: x, check: {port: 0}}\n"
        "  - {name: c, address: x, parent: zzz, check: {port: 1}}\n"
        "  - {name: d, address: x, enabled: perhaps, check: {port: 1}}\n",
        [
            "{f}:3: field 'check_port': must be between 1 and 65535 (got 0)",
            "{f}:4: field 'parent': unknown device 'zzz'",
            "{f}:5: field 'enabled': must be true or false (got 'perhaps')",
            "CommandError-line {f}: 3 problems, nothing was imported",
        ],
        id="yaml-all-problems-listed",
    ),
]


@pytest.mark.parametrize(("name", "text", "expected"), BAD_CASES)
def test_bad_files_report_line_and_field_and_change_nothing(
    tmp_path: Path, network: Network, name: str, text: str, expected: list[str]
) -> None:
    before = snapshot()
    path = write(tmp_path, name, text)
    lines = run_failing("import", path)
    wanted = [line.format(f=path).removeprefix("CommandError-line ") for line in expected]
    assert lines == wanted
    assert snapshot() == before


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.yaml", None, "{f}: no such file"),
        ("empty.yaml", b"", "{f}: is empty"),
        ("blank.csv", b"\n  \n", "{f}: is empty"),
        (
            "binary.yaml",
            b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)),
            "{f}: is a binary file, not YAML or CSV",
        ),
        (
            "latin1.csv",
            "name,address\ncaf\xe9,x\n".encode("latin-1"),
            "{f}:2: is not UTF-8 text (a binary file?)",
        ),
        ("syntax.yaml", b"devices:\n  - {name: a\n", "{f}:3: not valid YAML: "),
        (
            "prose.yaml",
            b"Dear team, the list is below.\n",
            "{f}:1: not an inventory file: expected a mapping",
        ),
        (
            "prose.csv",
            b"Dear team, the list is below.\n",
            "{f}:1: not an inventory CSV: the first line must name",
        ),
    ],
)
def test_unreadable_files_are_one_line(
    tmp_path: Path, network: Network, name: str, content: bytes | None, expected: str
) -> None:
    before = snapshot()
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    (line,) = run_failing("import", str(path))
    assert line.startswith(expected.format(f=path)), line
    assert snapshot() == before


def test_a_directory_is_one_line(tmp_path: Path, db: None) -> None:
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    assert run_failing("import", str(folder)) == [f"{folder}: is a directory, not a file"]


def test_a_bad_device_after_good_ones_imports_nothing(tmp_path: Path, db: None) -> None:
    rows = "".join(f"dev-{index},10.0.0.{index},22\n" for index in range(1, 21))
    path = write(tmp_path, "big.csv", f"name,address,check_port\n{rows}dev-21,10.0.0.21,-5\n")
    assert run_failing("import", path) == [
        f"{path}:22: field 'check_port': must be between 1 and 65535 (got -5)"
    ]
    assert Device.objects.count() == 0


# --- dry run ---------------------------------------------------------------------------------------


def test_dry_run_shows_the_changes_and_writes_nothing(tmp_path: Path, network: Network) -> None:
    before = snapshot()
    path = write(
        tmp_path,
        "change.yaml",
        """\
        devices:
          - {name: lon-core-1, address: 127.20.0.1, kind: router, site: London, tags: [core], check: {method: http, port: 8081}}
          - {name: par-srv-1, address: 127.20.1.1, kind: server, site: Paris, check: {method: http, port: 8080}}
          - {name: par-srv-2, address: 127.20.1.2, kind: server, site: Berlin, parent: par-srv-1, check: {port: 22}}
        """,
    )
    out, _ = run("import", path, "--dry-run")
    assert out.splitlines() == [
        "create site Berlin",
        "create tag core",
        "update lon-core-1: tags [] -> [core], check_port 8080 -> 8081",
        "create par-srv-2",
        "dry run: would import 3 devices (1 created, 1 updated, 1 unchanged); nothing was written",
    ]
    assert snapshot() == before
    assert not Site.objects.filter(name="Berlin").exists()


# --- updates -------------------------------------------------------------------------------------


def test_an_update_can_take_a_parent_created_by_the_same_file(
    tmp_path: Path, network: Network
) -> None:
    path = write(
        tmp_path,
        "x.yaml",
        """\
        devices:
          - {name: lon-core-1, address: 127.20.0.1, kind: router, site: London, parent: wan-1, check: {method: http, port: 8080}}
          - {name: wan-1, address: 10.255.0.1, kind: router, check: {method: icmp}}
        """,
    )
    out, _ = run("import", path)
    assert out.strip() == "imported 2 devices (1 created, 1 updated, 0 unchanged)"
    network.core.refresh_from_db()
    assert network.core.parent is not None and network.core.parent.name == "wan-1"


def test_many_devices_with_the_same_change_are_all_updated(
    tmp_path: Path, network: Network
) -> None:
    text = export().replace("interval_s: 10,", "interval_s: 60,")
    path = tmp_path / "slower.yaml"
    path.write_text(text)
    before = dict(Device.objects.values_list("name", "updated_at"))
    out, _ = run("import", str(path))
    assert out.strip() == "imported 6 devices (0 created, 6 updated, 0 unchanged)"
    assert set(Device.objects.values_list("check_interval_s", flat=True)) == {60.0}
    after = dict(Device.objects.values_list("name", "updated_at"))
    assert all(after[name] > before[name] for name in before)


def test_a_cycle_already_in_the_database_does_not_break_an_import(
    tmp_path: Path, network: Network
) -> None:
    # Device.clean() guards forms; a raw update can still leave a cycle behind.
    Device.objects.filter(pk=network.core.pk).update(parent=network.dist)
    path = write(
        tmp_path,
        "x.yaml",
        "devices:\n  - {name: new, address: x, parent: lon-acc-1, check: {port: 1}}\n",
    )
    out, _ = run("import", path)
    assert out.strip() == "imported 1 device (1 created, 0 updated, 0 unchanged)"
