"""``resmon devices`` through the real console script: exit codes, one line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RESMON = str(Path(sys.executable).with_name("resmon"))


def resmon(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["RESMON_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [RESMON, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated data directory, shared by the tests below (migrating takes seconds)."""
    path = tmp_path_factory.mktemp("resmon-data")
    result = resmon("migrate", "-v", "0", data_dir=path)
    assert result.returncode == 0, result.stderr
    return path


def test_import_then_export_round_trips(data_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "inventory.yaml"
    source.write_text(
        "devices:\n"
        "  - {name: b, address: 10.0.0.2, parent: a, tags: [edge], check: {port: 22}}\n"
        "  - {name: a, address: 10.0.0.1, site: Lab, check: {method: icmp}}\n"
    )
    result = resmon("devices", "import", str(source), data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported 2 devices (2 created, 0 updated, 0 unchanged)"

    exported = resmon("devices", "export", data_dir=data_dir)
    assert exported.returncode == 0, exported.stderr
    again = tmp_path / "again.yaml"
    again.write_text(exported.stdout)
    result = resmon("devices", "import", str(again), data_dir=data_dir)
    assert result.stdout.strip() == "imported 2 devices (0 created, 0 updated, 2 unchanged)"


def test_a_bad_file_lists_its_problems_and_exits_1(data_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(
        "name,address,check_port,kind\nx1,10.0.0.1,70000,router\nx2,10.0.0.2,22,rooter\n"
    )
    result = resmon("devices", "import", str(source), data_dir=data_dir)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"{source}:2: field 'check_port': must be between 1 and 65535 (got 70000)",
        f"{source}:3: field 'kind': unknown kind 'rooter' (expected one of: router, switch, "
        "firewall, access_point, phone, pc, server, other)",
        f"CommandError: {source}: 2 problems, nothing was imported",
    ]
    assert "x1" not in resmon("devices", "export", data_dir=data_dir).stdout


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("missing.yaml", None),
        ("empty.yaml", b""),
        ("binary.csv", bytes(range(256)) * 4),
        ("notes.yaml", b"- this: [is not\n"),
        ("notes.txt", b"hello\n"),
    ],
)
def test_unreadable_files_are_one_line_and_exit_1(
    data_dir: Path, tmp_path: Path, name: str, content: bytes | None
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = resmon("devices", "import", str(path), data_dir=data_dir)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"CommandError: {path}"), line


def test_an_unmigrated_data_dir_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "inventory.yaml"
    source.write_text("devices: []\n")
    result = resmon("devices", "import", str(source), data_dir=tmp_path / "fresh")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("CommandError: database error: no such table")
