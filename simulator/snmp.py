"""Real SNMP agents for some simulated devices (``resmon simulate --snmp K``).

K devices (network kit first: routers, firewalls, switches, servers, access points, by
id; ``plan``) answer SNMP v2c on their own address, at ``--snmp-port`` (1161: 161 needs
root), with their name as the community. One snmpsim process serves them all (an
endpoint per device); snmpsim is a separate install (``make snmpsim-deps`` builds
``.snmpsim-venv``), found at ``--snmpsim PATH``, ``$RESMON_SNMPSIM``,
``<repo>/.snmpsim-venv``, or on ``PATH``.

Each agent has, drawn from the device's behaviour profile:

- ``sysUpTime`` growing 100 ticks a second from the device's boot uptime;
- two interfaces: ``ifOperStatus`` (the second is down on every fourth device), and
  ``ifHCInOctets``/``ifHCOutOctets`` (plus 32-bit ``ifInOctets``/``ifOutOctets``)
  growing at a steady per-device rate (``SnmpEndpoint.in_bytes_per_s``);
- ``hrProcessorLoad`` around the profile's CPU, a slow wave.

snmpsim computes these values itself from the data files (its ``numeric`` variation
module), so the agents follow the clock but not the simulator's forced states: a device
forced down still answers SNMP. snmpsim refuses to run as root unless it drops
privileges, so as root it runs as ``nobody``/``nogroup``, with data files ``nobody`` can
read and a cache directory it can write (a private temporary directory, removed on stop).

No Django here, as in the rest of the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from simulator.behaviour import BehaviourModel
from simulator.topology import (
    ACCESS_POINT,
    FIREWALL,
    ROUTER,
    SERVER,
    SWITCH,
    SimulatedDevice,
)

DEFAULT_PORT = 1161
RESPONDER = "snmpsim-command-responder"
# snmpsim indexes every data file before it listens: a few hundred take seconds.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
MAX_AGENTS = 1000
_KIND_ORDER = {
    kind: rank for rank, kind in enumerate((ROUTER, FIREWALL, SWITCH, SERVER, ACCESS_POINT))
}
INTERFACES = 2


class SnmpUnavailable(Exception):
    """snmpsim cannot be found or cannot start; the message is one line."""


@dataclass(frozen=True, slots=True)
class SnmpEndpoint:
    """Where and how one device answers SNMP, and what its agent reports."""

    device_id: int
    address: str
    port: int
    community: str
    boot_uptime_s: float
    cpu_percent: float
    in_bytes_per_s: int  # per interface
    out_bytes_per_s: int
    interfaces_down: int

    def describe(self) -> dict[str, object]:
        """The ``snmp`` field of the device in the control API's inventory."""
        return {
            "version": "2c",
            "address": self.address,
            "port": self.port,
            "community": self.community,
        }

    def snmprec(self) -> str:
        """The agent's data file: snmpsim's ``OID|TAG[:variation]|VALUE`` lines, OID order."""
        ticks = int(self.boot_uptime_s * 100)
        lines = [
            "1.3.6.1.2.1.1.1.0|4|resmon simulator device",
            f"1.3.6.1.2.1.1.3.0|67:numeric|rate=100,initial={ticks}",
            f"1.3.6.1.2.1.1.5.0|4|{self.community}",
        ]
        statuses = [1] * (INTERFACES - self.interfaces_down) + [2] * self.interfaces_down
        columns = (
            ("1.3.6.1.2.1.2.2.1.8", None),  # ifOperStatus
            ("1.3.6.1.2.1.2.2.1.10", (65, self.in_bytes_per_s)),  # ifInOctets
            ("1.3.6.1.2.1.2.2.1.16", (65, self.out_bytes_per_s)),  # ifOutOctets
        )
        for oid, counter in columns:
            for index in range(1, INTERFACES + 1):
                if counter is None:
                    lines.append(f"{oid}.{index}|2|{statuses[index - 1]}")
                else:
                    tag, rate = counter
                    up = statuses[index - 1] == 1
                    lines.append(
                        f"{oid}.{index}|{tag}:numeric|rate={rate if up else 0},"
                        f"initial={1000 * self.device_id},wrap=1"
                    )
        # hrProcessorLoad: cpu x (1 + 0.3 sin(t / 60)), whole percent from 0 to 100.
        cpu = self.cpu_percent
        lines.append(
            "1.3.6.1.2.1.25.3.3.1.2.1|66:numeric|function=sin,rate=0.0166667,"
            f"scale={0.3 * cpu:.3f},offset={cpu:.3f},min=0,max=100"
        )
        for oid, rate in (
            ("1.3.6.1.2.1.31.1.1.1.6", self.in_bytes_per_s),  # ifHCInOctets
            ("1.3.6.1.2.1.31.1.1.1.10", self.out_bytes_per_s),  # ifHCOutOctets
        ):
            for index in range(1, INTERFACES + 1):
                up = statuses[index - 1] == 1
                lines.append(
                    f"{oid}.{index}|70:numeric|rate={rate if up else 0},"
                    f"initial={10**9 * self.device_id}"
                )
        return "\n".join(lines) + "\n"


def plan(
    devices: list[SimulatedDevice], model: BehaviourModel, count: int, port: int
) -> list[SnmpEndpoint]:
    """The agents of ``count`` devices, network kit first (pure: tests use it).

    Routers, firewalls, switches, servers and access points, by id, then the rest: a
    phone that answers SNMP would be odd, but ``count`` may ask for every device.
    """
    chosen = sorted(devices, key=lambda d: (_KIND_ORDER.get(d.kind, len(_KIND_ORDER)), d.id))
    endpoints = []
    for device in sorted(chosen[:count], key=lambda d: d.id):
        profile = model.profile(device.id)
        # Busier kit near the root: a core router moves more than an access switch.
        rate = 125_000 * (1 + device.id % 8) // (1 if device.parent_id is None else 4)
        endpoints.append(
            SnmpEndpoint(
                device_id=device.id,
                address=device.address,
                port=port,
                community=device.name,
                boot_uptime_s=profile.boot_uptime_s,
                cpu_percent=round(profile.cpu_percent, 1),
                in_bytes_per_s=rate,
                out_bytes_per_s=rate // 3,
                interfaces_down=1 if device.id % 4 == 0 else 0,
            )
        )
    return endpoints


def find_responder(explicit: str | None = None) -> Path:
    """snmpsim's command responder; ``SnmpUnavailable`` (one line) when it is nowhere."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    elif os.environ.get("RESMON_SNMPSIM"):
        candidates.append(Path(os.environ["RESMON_SNMPSIM"]))
    else:
        repo = Path(__file__).resolve().parents[1]
        candidates.append(repo / ".snmpsim-venv" / "bin" / RESPONDER)
        on_path = shutil.which(RESPONDER)
        if on_path:
            candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    looked = ", ".join(str(c) for c in candidates) or RESPONDER
    raise SnmpUnavailable(
        f"snmpsim is not installed (looked for {looked}); run `make snmpsim-deps` "
        "or pass --snmpsim PATH"
    )


class SnmpAgents:
    """One snmpsim process answering for every endpoint; ``start`` waits until it listens."""

    def __init__(self, endpoints: list[SnmpEndpoint], responder: Path) -> None:
        self.endpoints = endpoints
        self.responder = responder
        self.process: asyncio.subprocess.Process | None = None
        self._root: Path | None = None

    def command(self, data: Path, cache: Path) -> list[str]:
        command = [str(self.responder), f"--data-dir={data}", f"--cache-dir={cache}"]
        command += [f"--agent-udpv4-endpoint={e.address}:{e.port}" for e in self.endpoints]
        if os.geteuid() == 0:
            # snmpsim will not run as root; nobody must then read the data and write the cache.
            command += ["--process-user=nobody", "--process-group=nogroup"]
        return command

    def _prepare(self) -> tuple[Path, Path, Path]:
        """A private directory: data files anyone can read, a cache anyone can write."""
        self._root = root = Path(tempfile.mkdtemp(prefix="resmon-snmpsim-"))
        data, cache = root / "data", root / "cache"
        data.mkdir()
        cache.mkdir()
        root.chmod(0o755)
        data.chmod(0o755)
        cache.chmod(0o777)
        for endpoint in self.endpoints:
            path = data / f"{endpoint.community}.snmprec"
            path.write_text(endpoint.snmprec())
            path.chmod(0o644)
        return data, cache, root / "snmpsim.log"

    async def start(self) -> None:
        data, cache, log_path = await asyncio.to_thread(self._prepare)
        with open(log_path, "wb") as log:  # noqa: ASYNC230 (a local file, created empty)
            try:
                self.process = await asyncio.create_subprocess_exec(
                    *self.command(data, cache),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                )
            except OSError as error:
                await self.stop()
                raise SnmpUnavailable(f"cannot run {self.responder}: {error.strerror}") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while True:
            text = await asyncio.to_thread(log_path.read_text, errors="replace")
            listening = text.count("Listening at")
            if listening >= len(self.endpoints):
                return
            if self.process.returncode is not None or loop.time() > deadline:
                last = [line for line in text.splitlines() if line.strip()][-1:] or ["no output"]
                await self.stop()
                raise SnmpUnavailable(f"snmpsim did not start: {last[0].strip()[:200]}")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
