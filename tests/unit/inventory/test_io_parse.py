"""The pure half of import: bytes in, records or InventoryFileError out, no database.

These tests have no ``db`` fixture on purpose: pytest-django fails any query, so they
also prove that parsing never touches the database (and can be fuzzed).
"""

from __future__ import annotations

import textwrap

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resourcemonitor.inventory.io import (
    CSV_COLUMNS,
    FORMATS,
    Inventory,
    InventoryFileError,
    find_cycles,
    parse_inventory,
    yaml_scalar,
)

GOOD_YAML = textwrap.dedent(
    """\
    sites:
      - {name: London, description: "Main office"}
    devices:
      - name: lon-core-1
        address: 127.10.0.1
        kind: router
        site: London
        parent: null
        tags: [core]
        enabled: true
        check: {method: http, port: 8080, path: /health, tls: false, expect_status: 200, body_match: "", interval_s: 10, timeout_s: 2}
        thresholds: {fail: 3, recover: 1, latency_ms: null}
        slo_target: 99.9
      - name: lon-acc-1
        address: 127.10.0.3
        parent: lon-core-1
        check: {port: 22}
    """
)


def parse_yaml(text: str) -> Inventory:
    return parse_inventory(data=text.encode(), format="yaml")


def problems_of(text: str, format: str = "yaml") -> list[str]:
    try:
        inventory = parse_inventory(data=text.encode(), format=format)  # type: ignore[arg-type]
    except InventoryFileError as exc:
        return exc.lines("f")
    return InventoryFileError(inventory.problems).lines("f")


def test_yaml_fills_defaults_and_keeps_names_for_relations() -> None:
    inventory = parse_yaml(GOOD_YAML)
    assert inventory.problems == []
    assert [(site.name, site.description) for site in inventory.sites] == [
        ("London", "Main office")
    ]
    core, access = inventory.devices
    assert core.values["check_interval_s"] == 10.0
    assert core.values["tags"] == ("core",)
    assert access.values["parent"] == "lon-core-1"
    assert access.values["kind"] == "other"  # the model's default
    assert access.values["check_method"] == "tcp"
    assert access.values["check_path"] == "/health"
    assert access.values["fail_threshold"] == 3  # RESMON_DEFAULT_FAIL_THRESHOLD


def test_yaml_problem_in_a_flow_mapping_names_its_line_and_field() -> None:
    text = GOOD_YAML.replace("port: 22", "port: 70000")
    assert problems_of(text) == [
        "f:17: field 'check_port': must be between 1 and 65535 (got 70000)"
    ]


def test_yaml_text_fields_are_taken_as_written() -> None:
    text = "devices:\n  - {name: 2024-01-01, address: on, check: {port: '80'}}\n"
    (device,) = parse_yaml(text).devices
    assert device.values["name"] == "2024-01-01"
    assert device.values["address"] == "on"
    assert device.values["check_port"] == 80


def test_yaml_merge_keys_supply_defaults() -> None:
    text = textwrap.dedent(
        """\
        x-http: &http {method: http, port: 8080, interval_s: 30}
        devices:
          - name: a
            address: 10.0.0.1
            check: {<<: *http, port: 8443, tls: true}
        """
    )
    (device,) = parse_yaml(text).devices
    assert device.values["check_method"] == "http"
    assert device.values["check_port"] == 8443
    assert device.values["check_interval_s"] == 30.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "devices:\n  - {name: a, address: b, colour: red}\n",
            "f:2: unknown key 'colour' in a device",
        ),
        (
            "devices:\n  - {name: a, address: b, kind: rooter}\n",
            "f:2: field 'kind': unknown kind 'rooter'",
        ),
        (
            "devices:\n  - {name: a, address: b, check: {port: abc}}\n",
            "f:2: field 'check_port': must be a whole number (got 'abc')",
        ),
        (
            "devices:\n  - {name: a, address: b, check: {port: 8.5}}\n",
            "f:2: field 'check_port': must be a whole number (got 8.5)",
        ),
        (
            "devices:\n  - {name: a, address: b, check: {interval_s: .nan}}\n",
            "f:2: field 'check_interval_s': must be a number (got nan)",
        ),
        (
            "devices:\n  - {name: a, address: b, enabled: maybe}\n",
            "f:2: field 'enabled': must be true or false (got 'maybe')",
        ),
        ("devices:\n  - {name: a, address: b, tags: core}\n", "f:2: field 'tags': must be a list"),
        ("devices:\n  - {name: a, address: b, tags: [a b]}\n", "f:2: field 'tags': tag 'a b':"),
        ("devices:\n  - {address: b}\n", "f:2: field 'name': is required"),
        ("devices:\n  - {name: [a], address: b}\n", "f:2: field 'name': must be a single value"),
        (
            "devices:\n  - {name: a, address: b, slo_target: 100}\n",
            "f:2: field 'slo_target': must be between 0.001 and 99.999 (got 100)",
        ),
        (
            "devices:\n  - {name: a, address: b, thresholds: {latency_ms: -1}}\n",
            "f:2: field 'latency_threshold_ms': must be at least 0 (got -1)",
        ),
        (
            "devices:\n  - {name: a, address: b, check: {port: !!int x}}\n",
            "f:2: field 'check_port': not a valid value",
        ),
        (
            "devices:\n  - {name: a, address: b}\n  - {name: a, address: c}\n",
            "f:3: field 'name': duplicate name 'a' (first at line 2)",
        ),
        ("devices: {name: a}\n", "f:1: 'devices' must be a list"),
        ("devices: []\nmachines: []\n", "f:2: unknown key 'machines'"),
        ("sites: [{name: L}, {name: L}]\ndevices: []\n", "f:1: field 'name': duplicate site 'L'"),
    ],
)
def test_yaml_problems_say_line_and_field(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert any(line.startswith(expected) for line in problems), problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "f: is empty"),
        ("  \n\n", "f: is empty"),
        ("# only a comment\n", "f: is empty (no YAML document)"),
        ("devices: [\n", "f:2: not valid YAML:"),
        ("just some words\n", "f:1: not an inventory file"),
        ("sites: []\n", "f:1: not an inventory file: no 'devices' list"),
        ("a: 1\n---\nb: 2\n", "f:2: not valid YAML: expected a single document"),
        ("devices: [\x01]\n", "f:1: not valid YAML: "),
        ("devices:\n  - é\n  - \x01\n", "f:3: not valid YAML: "),
        ("devices: *nowhere\n", "f:1: not valid YAML: found undefined alias"),
        ("[" * 100_000, "f:1: not valid YAML: nested more than 32 levels deep"),
        ("".join(" " * n + "- \n" for n in range(40)), "f:33: not valid YAML: nested more than 32"),
    ],
)
def test_a_file_that_is_no_inventory_is_one_problem(text: str, expected: str) -> None:
    with pytest.raises(InventoryFileError) as caught:
        parse_yaml(text)
    (line,) = caught.value.lines("f")
    assert line.startswith(expected), line


def test_binary_and_non_utf8_files_are_one_problem() -> None:
    for data in (b"\x7fELF\x02\x01\x01\x00\x00", b"name,address\n\xff\xfe,x\n"):
        for format in FORMATS:
            with pytest.raises(InventoryFileError) as caught:
                parse_inventory(data=data, format=format)
            assert len(caught.value.problems) == 1


def test_csv_takes_defaults_for_missing_columns_and_splits_tags() -> None:
    text = 'name,address,tags,check_port,check_body_match\nsw-1,10.0.0.1,core; uplink,22,"a,\nb"\n'
    (device,) = parse_inventory(data=text.encode(), format="csv").devices
    assert device.values["tags"] == ("core", "uplink")
    assert device.values["check_port"] == 22
    assert device.values["check_body_match"] == "a,\nb"
    assert device.values["enabled"] is True
    assert device.values["latency_threshold_ms"] is None


def test_csv_lines_are_physical_lines() -> None:
    # The first row's quoted cell spans lines 2-4, so the bad row is on line 5.
    text = 'name,address,check_body_match,check_port\na,x,"1\n2\n3",22\n\nb,y,,70000\n'
    assert problems_of(text, "csv") == [
        "f:6: field 'check_port': must be between 1 and 65535 (got 70000)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name,address,colour\n", "f:1: unknown column 'colour'"),
        ("name,name,address\n", "f:1: duplicate column 'name'"),
        ("name,kind\n", "f:1: missing column 'address'"),
        ("Dear team, please find attached\n", "f:1: not an inventory CSV"),
        ("name,address\na,b,c\n", "f:2: has 3 fields, the header has 2"),
        (
            "name,address,check_method\na,b,smtp\n",
            "f:2: field 'check_method': unknown check method 'smtp'",
        ),
        ("name,address,enabled\na,b,maybe\n", "f:2: field 'enabled': must be true or false"),
        ("name,address\n,b\n", "f:2: field 'name': must not be empty"),
    ],
)
def test_csv_problems_say_line_and_field(text: str, expected: str) -> None:
    problems = problems_of(text, "csv")
    assert any(line.startswith(expected) for line in problems), problems


def test_every_problem_is_listed_not_just_the_first() -> None:
    text = "name,address,check_port,kind\na,x,0,router\nb,y,22,rooter\nc,z,abc,pc\n"
    problems = problems_of(text, "csv")
    assert [line.split(": field")[0] for line in problems] == ["f:2", "f:3", "f:4"]


def test_find_cycles_reports_each_cycle_once() -> None:
    parent_of: dict[str, str | None] = {"a": "b", "b": "c", "c": "a", "d": "a", "e": "e", "f": None}
    cycles = find_cycles(parent_of, starts=["d", "a", "b", "e", "f"])
    assert sorted(sorted(cycle) for cycle in cycles) == [["a", "b", "c"], ["e"]]
    assert find_cycles({"a": "missing"}, starts=["a"]) == []


# --- fuzzing: whatever the input, the parser answers or raises its own error ----------------


def parse_or_fail(data: bytes, format: str) -> None:
    try:
        result = parse_inventory(data=data, format=format)  # type: ignore[arg-type]
    except InventoryFileError as exc:
        assert exc.problems
        assert all(problem.message for problem in exc.problems)
    else:
        assert isinstance(result, Inventory)


fuzz = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(data=st.binary(max_size=2000), format=st.sampled_from(["yaml", "csv"]))
def test_random_bytes_parse_or_raise_inventory_file_error(data: bytes, format: str) -> None:
    parse_or_fail(data, format)


@fuzz
@given(text=st.text(max_size=2000), format=st.sampled_from(["yaml", "csv"]))
def test_random_text_parse_or_raise_inventory_file_error(text: str, format: str) -> None:
    parse_or_fail(text.encode("utf-8", "surrogatepass"), format)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["router", "http", "tcp", "127.0.0.1", "lon-core-1", "2024-13-45", "0x1F"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "name",
        "address",
        "kind",
        "site",
        "parent",
        "tags",
        "enabled",
        "check",
        "thresholds",
        "slo_target",
        "feed",
        "external_id",
        "port",
        "method",
        "interval_s",
        "fail",
        "latency_ms",
        "other",
    ]
)
devices = st.dictionaries(keys, values | st.dictionaries(keys, values, max_size=6), max_size=10)


@fuzz
@given(
    document=st.one_of(
        st.fixed_dictionaries({"devices": st.lists(devices, max_size=5)}),
        st.fixed_dictionaries({"sites": values, "devices": values}),
        values,
    )
)
def test_structured_yaml_parse_or_raise_inventory_file_error(document: object) -> None:
    parse_or_fail(yaml.safe_dump(document).encode(), "yaml")


@fuzz
@given(
    rows=st.lists(st.lists(st.text(max_size=12), min_size=1, max_size=len(CSV_COLUMNS)), max_size=6)
)
def test_structured_csv_parse_or_raise_inventory_file_error(rows: list[list[str]]) -> None:
    header = ",".join(CSV_COLUMNS)
    body = "\n".join(",".join(row) for row in rows)
    parse_or_fail(f"{header}\n{body}\n".encode("utf-8", "surrogatepass"), "csv")


@fuzz
@given(start=st.integers(0, len(GOOD_YAML)), length=st.integers(0, 40), junk=st.text(max_size=20))
def test_mangled_good_yaml_parse_or_raise_inventory_file_error(
    start: int, length: int, junk: str
) -> None:
    text = GOOD_YAML[:start] + junk + GOOD_YAML[start + length :]
    parse_or_fail(text.encode("utf-8", "surrogatepass"), "yaml")


# --- export's hand-written YAML: every value reads back as itself ----------------------------


@fuzz
@given(
    value=st.one_of(
        st.text(max_size=60),
        st.sampled_from(
            [
                "yes",
                "007",
                "0x1F",
                "1e5",
                "1.5",
                "~",
                "null",
                "<<",
                "2024-01-01",
                "::1",
                "a: b",
                "- x",
                "#",
                "a #b",
                " lead",
                "trail ",
                "'",
                '"',
                "",
            ]
        ),
        st.floats(min_value=-1e30, max_value=1e30, allow_nan=False),
        st.integers(min_value=-(2**63), max_value=2**63),
        st.booleans(),
        st.none(),
    )
)
def test_exported_scalars_read_back_unchanged_in_block_and_flow(value: object) -> None:
    rendered = yaml_scalar(value)
    assert "\n" not in rendered
    assert yaml.safe_load(f"key: {rendered}\n")["key"] == value
    assert yaml.safe_load(f"{{key: {rendered}, other: 1}}\n")["key"] == value
    assert yaml.safe_load(f"- [{rendered}, x]\n")[0][0] == value
