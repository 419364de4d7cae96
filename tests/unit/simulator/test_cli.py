"""``resmon simulate`` argument checking: one stderr line and exit code 2 for bad input."""

from __future__ import annotations

import pytest

from simulator.cli import main, parse_args, parse_bind
from simulator.runner import SimulatorConfig


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-d", "-1"], "--devices must be a whole number from 1 to 20000 (got '-1')"),
        (["-d", "abc"], "--devices must be a whole number from 1 to 20000 (got 'abc')"),
        (["-d", "0"], "--devices must be a whole number from 1 to 20000 (got '0')"),
        (["--devices", "20001"], "--devices must be a whole number from 1 to 20000 (got '20001')"),
        (["-d", "1.5"], "--devices must be a whole number from 1 to 20000 (got '1.5')"),
        (
            ["--bind", "nohost"],
            "--bind must look like HOST:PORT, e.g. 127.0.0.1:8001 (got 'nohost')",
        ),
        (
            ["--bind", "1.2.3.4:80"],
            "--bind host must be a loopback address (127.0.0.0/8 or ::1) (got '1.2.3.4:80')",
        ),
        (
            ["--bind", "example.org:80"],
            "--bind host must be a loopback address (127.0.0.0/8 or ::1) (got 'example.org:80')",
        ),
        (
            ["--bind", "127.0.0.1:99999"],
            "--bind port must be a whole number from 1 to 65535 (got '127.0.0.1:99999')",
        ),
        (
            ["--bind", "127.0.0.1:x"],
            "--bind port must be a whole number from 1 to 65535 (got '127.0.0.1:x')",
        ),
        (
            ["--bind", "127.0.0.1:0"],
            "--bind port must be a whole number from 1 to 65535 (got '127.0.0.1:0')",
        ),
        (["--seed", "x"], "--seed must be a whole number (got 'x')"),
        (["--port", "0"], "--port must be a whole number from 1 to 65535 (got '0')"),
        (["--address-base", "10.0.0.1"], "--address-base: 10.0.0.1 is not in 127.0.0.0/8"),
        (
            ["--address-base", "127.255.255.250", "-d", "16"],
            "--address-base: 127.255.255.250 leaves room for only 5 devices in 127.0.0.0/8",
        ),
        (
            ["--bind", "127.10.0.1:8080"],
            "--bind 127.10.0.1:8080 is also a device's address and port; pick another port",
        ),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["-d"], "argument -d/--devices: expected one argument"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(argv)

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err == f"resmon simulate: error: {message}\n"


def test_prog_name_is_used_in_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-d", "0"], prog="python -m simulator") == 2

    assert capsys.readouterr().err.startswith("python -m simulator: error: --devices")


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0

    out = capsys.readouterr().out
    assert "--devices" in out
    assert "--address-base" in out


def test_defaults() -> None:
    assert parse_args([]) == SimulatorConfig(
        devices=16,
        seed=1,
        bind_host="127.0.0.1",
        bind_port=8001,
        address_base="127.10.0.1",
        port=8080,
    )


def test_good_input_is_parsed() -> None:
    config = parse_args(
        ["-d", "10000", "--seed", "-7", "--bind", "127.0.0.2:9001", "--address-base", "127.77.0.0"]
    )

    assert config.devices == 10000
    assert config.seed == -7
    assert (config.bind_host, config.bind_port) == ("127.0.0.2", 9001)
    assert config.address_base == "127.77.0.1"  # .0 is skipped


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8001", ("127.0.0.1", 8001)),
        ("127.1.2.3:1", ("127.1.2.3", 1)),
        ("[::1]:8001", ("::1", 8001)),
        ("::1:8001", ("::1", 8001)),
        ("localhost:8001", ("127.0.0.1", 8001)),
    ],
)
def test_loopback_binds_are_accepted(text: str, expected: tuple[str, int]) -> None:
    assert parse_bind(text) == expected
