"""Wires the simulator together: topology, behaviour, listeners, control API, ticking.

``Simulator`` can be started inside any running event loop (tests do); ``run`` is
what the command line uses: it picks uvloop when it is importable, handles SIGTERM
and SIGINT, and returns an exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import sys
from dataclasses import dataclass
from typing import TextIO

from aiohttp import web

from simulator import topology
from simulator.behaviour import BehaviourModel
from simulator.control import make_app
from simulator.device_server import DeviceServers, ListenError
from simulator.mqtt import MqttPublisher, MqttTarget
from simulator.network import NetworkState
from simulator.snmp import SnmpAgents, SnmpUnavailable, find_responder, plan

log = logging.getLogger("simulator")

TICK_S = 0.25
SWEEP_EVERY_S = 1.0
# Descriptors besides the listeners: stdio, the event loop, the control API and
# a few of its connections.
SPARE_FDS = 64


@dataclass(frozen=True)
class SimulatorConfig:
    """What ``resmon simulate`` was asked to run."""

    devices: int = 16
    seed: int = 1
    bind_host: str = "127.0.0.1"
    bind_port: int = 8001
    address_base: str = "127.10.0.1"
    port: int = 8080
    tick_s: float = TICK_S
    # --mqtt: publish every device's status and telemetry to this broker (simulator.mqtt).
    mqtt_url: str | None = None
    mqtt_interval_s: float = 5.0
    mqtt_prefix: str = "resmon"
    mqtt_topics: str = "both"  # or "status" / "telemetry" only
    # --snmp K: K devices answer SNMP through snmpsim (simulator.snmp).
    snmp_agents: int = 0
    snmp_port: int = 1161
    snmpsim: str | None = None


class StartupError(Exception):
    """The simulator cannot start; the message is one line for the user."""


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one (a listener per device needs
    one descriptor each); returns the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or target <= soft:
        return soft
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Simulator:
    """One simulated network: its devices' listeners, its control API and its clock."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.devices = topology.generate(
            config.devices, config.seed, config.address_base, config.port
        )
        self.model = BehaviourModel(self.devices, config.seed)
        self.network: NetworkState | None = None
        self.servers: DeviceServers | None = None
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.publisher: MqttPublisher | None = None
        self._publishing: asyncio.Task[None] | None = None
        self.snmp: SnmpAgents | None = None

    async def start(self) -> None:
        """Open the control API and every device's listener, then start ticking.

        Raises ``StartupError`` with a one-line reason if anything cannot listen.
        """
        loop = asyncio.get_running_loop()
        responder = None
        if self.config.snmp_agents:
            try:  # before anything listens: a missing snmpsim is one line, at once
                responder = find_responder(self.config.snmpsim)
            except SnmpUnavailable as error:
                raise StartupError(f"--snmp: {error}") from None
        self.network = network = NetworkState(self.devices, self.model, loop.time)
        self.servers = servers = DeviceServers(network, seed=self.config.seed)
        # Devices first: once the control API answers, every device listens.
        try:
            await servers.start()
        except ListenError as error:
            await self.stop()
            raise StartupError(error.strerror) from error
        # access_log=None: a log line per feed poll would drown everything else.
        self._runner = web.AppRunner(
            make_app(network, servers), access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        host, port = self.config.bind_host, self.config.bind_port
        try:
            await web.TCPSite(self._runner, host, port).start()
        except OSError as error:
            await self.stop()
            reason = os.strerror(error.errno).lower() if error.errno else str(error)
            raise StartupError(
                f"cannot listen on {_url_host(host)}:{port} for the control API: {reason}"
            ) from error
        if responder is not None:
            endpoints = plan(
                self.devices, self.model, self.config.snmp_agents, self.config.snmp_port
            )
            self.snmp = SnmpAgents(endpoints, responder)
            try:
                await self.snmp.start()
            except SnmpUnavailable as error:
                await self.stop()
                raise StartupError(f"--snmp: {error}") from None
            network.snmp = {e.device_id: e.describe() for e in endpoints}
            network.version += 1  # the inventory's cached view now shows them
        self._ticker = asyncio.create_task(self._tick_forever())
        if self.config.mqtt_url:
            self.publisher = MqttPublisher(
                network,
                MqttTarget.parse(self.config.mqtt_url),
                interval_s=self.config.mqtt_interval_s,
                prefix=self.config.mqtt_prefix,
                topics=self.config.mqtt_topics,
            )
            self._publishing = asyncio.create_task(self.publisher.run())

    def banner(self) -> str:
        """The one line printed once everything listens."""
        first, last = self.devices[0], self.devices[-1]
        span = first.address if len(self.devices) == 1 else f"{first.address}-{last.address}"
        noun = "device" if len(self.devices) == 1 else "devices"
        line = (
            f"simulator: {len(self.devices)} {noun} on {span}:{self.config.port}, control API "
            f"http://{_url_host(self.config.bind_host)}:{self.config.bind_port} "
            f"(seed {self.config.seed})"
        )
        if self.snmp is not None:
            agents = len(self.snmp.endpoints)
            line += (
                f"; SNMP v2c on {agents} {'device' if agents == 1 else 'devices'} at UDP "
                f"port {self.config.snmp_port}, community = device name (see /inventory)"
            )
        return line

    async def _tick_forever(self) -> None:
        assert self.network is not None and self.servers is not None
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + SWEEP_EVERY_S
        while True:
            await asyncio.sleep(self.config.tick_s)
            try:
                await self.servers.sync(self.network.tick())
                if loop.time() >= next_sweep:
                    self.servers.sweep()
                    next_sweep = loop.time() + SWEEP_EVERY_S
            except Exception:  # keep ticking: one bad tick must not freeze the network
                log.exception("simulator tick failed")

    async def stop(self) -> None:
        """Stop ticking, close every listener and connection and the control API."""
        if self._publishing is not None:
            self._publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publishing
            self._publishing = None
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self.snmp is not None:
            await self.snmp.stop()
            self.snmp = None
        if self.servers is not None:
            await self.servers.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve(config: SimulatorConfig, *, out: TextIO, err: TextIO, prog: str) -> int:
    """Run the simulator until SIGTERM or SIGINT; the exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        simulator = Simulator(config)
        # Startup of thousands of listeners takes a moment; a signal meanwhile wins.
        starting = asyncio.create_task(simulator.start())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, StartupError):
                await starting
            await simulator.stop()
            return 0
        stopping.cancel()
        try:
            starting.result()
        except StartupError as error:
            print(f"{prog}: error: {error}", file=err, flush=True)
            return 1
        print(simulator.banner(), file=out, flush=True)
        await stop.wait()
        await simulator.stop()
        return 0
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def run(config: SimulatorConfig, *, prog: str = "resmon simulate") -> int:
    """Run the simulator in a fresh event loop (uvloop when available); the exit code."""
    soft = raise_fd_limit()
    needed = config.devices + SPARE_FDS
    if soft < needed:
        print(
            f"{prog}: error: {config.devices} devices need about {needed} open files but the "
            f"limit is {soft}; raise 'ulimit -n' or split them over several simulators",
            file=sys.stderr,
        )
        return 1
    logging.basicConfig(level=logging.WARNING, format="simulator: %(levelname)s: %(message)s")
    loop_factory = None
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(serve(config, out=sys.stdout, err=sys.stderr, prog=prog))
