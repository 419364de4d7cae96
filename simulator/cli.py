"""``resmon simulate`` / ``python -m simulator``: parse and check the options, then run.

Bad input gets exactly one line on stderr and exit code 2 (no usage dump, no
traceback); a port that cannot be listened on gets one line and exit code 1.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import NoReturn

from simulator.mqtt import TOPIC_CHOICES, MqttTarget
from simulator.runner import SimulatorConfig, run
from simulator.snmp import DEFAULT_PORT as DEFAULT_SNMP_PORT
from simulator.snmp import MAX_AGENTS
from simulator.topology import MAX_DEVICES, AddressSpaceError, device_addresses

DEFAULT_BIND = "127.0.0.1:8001"
DEFAULT_ADDRESS_BASE = "127.10.0.1"
DEFAULT_PORT = 8080


class UsageError(Exception):
    """A bad option; the message is the whole line after ``PROG: error:``."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser(prog: str) -> _Parser:
    parser = _Parser(
        prog=prog,
        description="Simulate a network of devices on loopback addresses, each answering "
        "TCP connects and GET /health, with a control API to force their states.",
    )
    # Everything is read as text and checked by hand, so each mistake gets one message
    # in our words rather than argparse's.
    parser.add_argument(
        "-d", "--devices", default="16", help=f"how many devices, 1 to {MAX_DEVICES} (16)"
    )
    parser.add_argument("--seed", default="1", help="seed for topology and behaviour (1)")
    parser.add_argument(
        "--bind",
        default=DEFAULT_BIND,
        help=f"HOST:PORT of the control API, a loopback address ({DEFAULT_BIND})",
    )
    parser.add_argument(
        "--address-base",
        default=DEFAULT_ADDRESS_BASE,
        help=f"first device address, in 127.0.0.0/8 ({DEFAULT_ADDRESS_BASE})",
    )
    parser.add_argument(
        "--port", default=str(DEFAULT_PORT), help=f"port every device listens on ({DEFAULT_PORT})"
    )
    parser.add_argument(
        "--mqtt",
        metavar="URL",
        help="also publish each device's status and telemetry to this MQTT broker, "
        "e.g. mqtt://127.0.0.1:1883 (topics PREFIX/<device>/status and .../telemetry)",
    )
    parser.add_argument(
        "--mqtt-interval", default="5", help="seconds between MQTT publications (5)"
    )
    parser.add_argument("--mqtt-prefix", default="resmon", help="MQTT topic prefix (resmon)")
    parser.add_argument(
        "--mqtt-topics",
        default="both",
        help="what to publish: both, status or telemetry (both)",
    )
    parser.add_argument(
        "--snmp",
        metavar="K",
        default="0",
        help="K devices (network kit first) also answer SNMP v2c on their own address, "
        "community = device name, through snmpsim (make snmpsim-deps); /inventory says "
        f"which (0; at most {MAX_AGENTS})",
    )
    parser.add_argument(
        "--snmp-port",
        default=str(DEFAULT_SNMP_PORT),
        help=f"UDP port of the SNMP agents ({DEFAULT_SNMP_PORT})",
    )
    parser.add_argument(
        "--snmpsim",
        metavar="PATH",
        help="snmpsim-command-responder to run (default: $RESMON_SNMPSIM, "
        ".snmpsim-venv in this checkout, then PATH)",
    )
    return parser


def _whole(text: str, low: int | None = None, high: int | None = None) -> int | None:
    """``text`` as an int within [low, high], or None. Plain ASCII digits only."""
    body = text[1:] if text[:1] in "+-" else text
    if not body.isascii() or not body.isdigit():
        return None
    value = int(text)
    if (low is not None and value < low) or (high is not None and value > high):
        return None
    return value


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) → (host, port); UsageError if bad.

    The host must be loopback: the control API can force devices down and has no
    authentication, so it is never exposed beyond this machine.
    """
    host, colon, port_text = text.rpartition(":")
    if not colon or not host:
        raise UsageError(f"--bind must look like HOST:PORT, e.g. {DEFAULT_BIND} (got {text!r})")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise UsageError(
            f"--bind host must be a loopback address (127.0.0.0/8 or ::1) (got {text!r})"
        )
    port = _whole(port_text, 1, 65535)
    if port is None:
        raise UsageError(f"--bind port must be a whole number from 1 to 65535 (got {text!r})")
    return str(address), port


def parse_args(argv: list[str], prog: str = "resmon simulate") -> SimulatorConfig:
    """The checked configuration for ``argv``; UsageError with one line if it is bad."""
    args = _parser(prog).parse_args(argv)
    devices = _whole(args.devices, 1, MAX_DEVICES)
    if devices is None:
        raise UsageError(
            f"--devices must be a whole number from 1 to {MAX_DEVICES} (got {args.devices!r})"
        )
    seed = _whole(args.seed)
    if seed is None:
        raise UsageError(f"--seed must be a whole number (got {args.seed!r})")
    bind_host, bind_port = parse_bind(args.bind)
    port = _whole(args.port, 1, 65535)
    if port is None:
        raise UsageError(f"--port must be a whole number from 1 to 65535 (got {args.port!r})")
    try:
        addresses = device_addresses(args.address_base, devices)
    except AddressSpaceError as error:
        raise UsageError(f"--address-base: {error}") from None
    if bind_port == port and bind_host in addresses:
        raise UsageError(
            f"--bind {args.bind} is also a device's address and port; pick another port"
        )
    if args.mqtt is not None:
        try:
            MqttTarget.parse(args.mqtt)
        except ValueError as error:
            raise UsageError(f"--mqtt {error}") from None
    try:
        mqtt_interval = float(args.mqtt_interval)
    except ValueError:
        mqtt_interval = -1.0
    if not 0.1 <= mqtt_interval <= 3600:
        raise UsageError(
            f"--mqtt-interval must be from 0.1 to 3600 seconds (got {args.mqtt_interval!r})"
        )
    prefix = args.mqtt_prefix.strip("/")
    if not prefix or any(c in prefix for c in "+#"):
        raise UsageError(f"--mqtt-prefix must be a topic without wildcards (got {prefix!r})")
    snmp = _whole(args.snmp, 0, min(devices, MAX_AGENTS))
    if snmp is None:
        raise UsageError(
            f"--snmp must be a whole number from 0 to {min(devices, MAX_AGENTS)} "
            f"(the devices, at most {MAX_AGENTS}) (got {args.snmp!r})"
        )
    snmp_port = _whole(args.snmp_port, 1, 65535)
    if snmp_port is None:
        raise UsageError(
            f"--snmp-port must be a whole number from 1 to 65535 (got {args.snmp_port!r})"
        )
    if args.mqtt_topics not in TOPIC_CHOICES:
        raise UsageError(
            f"--mqtt-topics must be one of {', '.join(TOPIC_CHOICES)} (got {args.mqtt_topics!r})"
        )
    return SimulatorConfig(
        mqtt_topics=args.mqtt_topics,
        snmp_agents=snmp,
        snmp_port=snmp_port,
        snmpsim=args.snmpsim,
        mqtt_url=args.mqtt,
        mqtt_interval_s=mqtt_interval,
        mqtt_prefix=prefix,
        devices=devices,
        seed=seed,
        bind_host=bind_host,
        bind_port=bind_port,
        address_base=addresses[0],
        port=port,
    )


def main(argv: list[str], prog: str = "resmon simulate") -> int:
    """Run the simulator as the command line asks; the process exit code."""
    try:
        config = parse_args(argv, prog)
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # --help prints and "exits"; hand the code back instead
        return exit_.code if isinstance(exit_.code, int) else 0
    return run(config, prog=prog)
