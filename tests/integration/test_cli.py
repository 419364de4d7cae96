"""Bad command-line input through the real console script: one line, non-zero, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack import stack_env

pytestmark = pytest.mark.integration


def resmon(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resourcemonitor", *args],
        env=stack_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "-d", "-1"],
        ["simulate", "-d", "abc"],
        ["simulate", "--bind", "nohost"],
        ["simulate", "--bind", "127.0.0.1:99999"],
        ["simulate", "-d", "2", "--snmp", "3"],
        ["simulate", "--mqtt-topics", "everything"],
    ],
)
def test_simulate_rejects_bad_flags_with_one_line_and_exit_2(args: list[str], tmp_path: Path):
    result = resmon(*args, data_dir=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "error" in lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--devices", "-1"],
        ["run", "--bind", "nohost"],
        ["run", "--interval", "0"],
        ["run", "--mqtt", "http://broker:1883"],
        ["run", "--no-mqtt", "--sim-mqtt"],
        ["web", "--bind", "127.0.0.1:0"],
    ],
)
def test_run_and_web_reject_bad_flags(args: list[str], tmp_path: Path) -> None:
    result = resmon(*args, data_dir=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_python_m_and_console_script_are_the_same(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("resmon")
    result = subprocess.run(
        [str(script), "help", "collect"],
        env=stack_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "collect" in result.stdout
