"""Starting and stopping the simulator process: signals, and ports already taken."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

from .helpers import REPO, free_port, start_simulator, stop_simulator, wait_until_refused

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("signum", "address_base"),
    [(signal.SIGTERM, "127.77.1.1"), (signal.SIGINT, "127.77.1.101")],
)
def test_signal_stops_it_cleanly_within_two_seconds(
    signum: signal.Signals, address_base: str
) -> None:
    sim = start_simulator(address_base)
    try:
        started = time.monotonic()
        sim.process.send_signal(signum)
        code = sim.process.wait(timeout=2)
        elapsed = time.monotonic() - started
        stderr = sim.process.stderr.read() if sim.process.stderr else ""
    finally:
        stop_simulator(sim.process)

    assert code == 0
    assert elapsed < 2
    assert "Traceback" not in stderr
    wait_until_refused(address_base, sim.port, within_s=0.5)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=15,
    )


def test_control_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bind_port = taken.getsockname()[1]

        result = _run(
            "-d", "4", "--bind", f"127.0.0.1:{bind_port}", "--address-base", "127.77.2.1",
            "--port", str(free_port()),
        )  # fmt: skip

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"python -m simulator: error: cannot listen on 127.0.0.1:{bind_port} "
        "for the control API: address already in use\n"
    )


def test_device_port_in_use_is_a_one_line_error() -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.77.2.3", port))
        taken.listen()

        result = _run(
            "-d", "4", "--bind", f"127.0.0.1:{free_port()}", "--address-base", "127.77.2.1",
            "--port", str(port),
        )  # fmt: skip

    assert result.returncode == 1
    assert result.stderr == (
        f"python -m simulator: error: cannot listen on 127.77.2.3:{port}: address already in use\n"
    )


def test_bad_option_from_the_command_line() -> None:
    result = _run("-d", "-1")

    assert result.returncode == 2
    assert result.stderr == (
        "python -m simulator: error: --devices must be a whole number from 1 to 20000 (got '-1')\n"
    )
