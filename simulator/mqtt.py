"""The simulator's devices report themselves over MQTT (``resmon simulate --mqtt URL``).

Every ``interval_s`` each device publishes, with QoS 1:

- ``<prefix>/<name>/status``: ``{"ok": bool, "latency_ms": number | null, "ts": ISO 8601}``
  (``ok`` is false while the device is down; the latency is its current typical delay);
- ``<prefix>/<name>/telemetry``: ``{"cpu_percent", "memory_percent", "uptime_s"}``.

This is the shape ``resmon ingest-mqtt`` records for devices whose check method is
``push``; telemetry it stores as metrics for any known device. ``--mqtt-topics telemetry``
publishes telemetry only (``resmon run --sim-mqtt`` does: its devices are HTTP-checked,
and the ingester would reject their status messages). A lost broker is retried with
exponential backoff (1 s doubling to 30 s); the rest of the simulator does not notice.
No Django here: the simulator may run on another host.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import aiomqtt

from simulator.behaviour import DOWN
from simulator.network import NetworkState

log = logging.getLogger("simulator.mqtt")

DEFAULT_PREFIX = "resmon"
TOPIC_CHOICES = ("both", "status", "telemetry")
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """Where to publish: ``mqtt://[user:pass@]host[:1883]`` or ``mqtts://…[:8883]``."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, text: str) -> MqttTarget:
        """ValueError with a one-line reason when ``text`` is not a broker URL."""
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise ValueError(f"not a broker URL: {text!r}") from None
        if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
            raise ValueError(f"must look like mqtt://host:1883 (got {text!r})")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def device_messages(
    network: NetworkState, *, prefix: str, now: datetime | None = None, topics: str = "both"
) -> list[tuple[str, bytes]]:
    """Every device's status and/or telemetry messages at this moment (pure: tests use it)."""
    now = now or datetime.now(UTC)
    t = network.elapsed()
    stamp = now.isoformat().replace("+00:00", "Z")
    messages: list[tuple[str, bytes]] = []
    for device in network.devices:
        condition = network.condition(device.id)
        ok = condition.state != DOWN
        status = {
            "ok": ok,
            "latency_ms": condition.latency_ms if ok else None,
            "ts": stamp,
        }
        if not ok:
            status["error"] = f"simulated outage ({condition.failure_mode})"
        cpu, memory = network.model.health_metrics(device.id, t, condition.state)
        telemetry = {
            "cpu_percent": cpu,
            "memory_percent": memory,
            "uptime_s": round(network.uptime_s(device.id, t), 1) if ok else 0.0,
        }
        base = f"{prefix}/{device.name}"
        if topics != "telemetry":
            messages.append((f"{base}/status", json.dumps(status).encode()))
        if topics != "status":
            messages.append((f"{base}/telemetry", json.dumps(telemetry).encode()))
    return messages


class MqttPublisher:
    """Publishes the network's state every ``interval_s`` until cancelled."""

    def __init__(
        self,
        network: NetworkState,
        target: MqttTarget,
        *,
        interval_s: float = 5.0,
        prefix: str = DEFAULT_PREFIX,
        topics: str = "both",
    ) -> None:
        self.network = network
        self.topics = topics
        self.target = target
        self.interval_s = interval_s
        self.prefix = prefix
        self.published_total = 0
        self.rounds_total = 0
        self.reconnects_total = 0

    async def run(self) -> None:
        backoff = BACKOFF_START_S
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                self.reconnects_total += 1
                wait = min(backoff, BACKOFF_MAX_S) * random.uniform(0.5, 1.0)
                log.warning("MQTT broker %s: %s; retrying in %.1f s", self.target.host, exc, wait)
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _session(self) -> None:
        async with aiomqtt.Client(
            self.target.host,
            self.target.port,
            username=self.target.username,
            password=self.target.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_params=aiomqtt.TLSParameters() if self.target.tls else None,
        ) as client:
            loop = asyncio.get_running_loop()
            while True:
                started = loop.time()
                messages = device_messages(self.network, prefix=self.prefix, topics=self.topics)
                for topic, payload in messages:
                    await client.publish(topic, payload, qos=1)
                    self.published_total += 1
                self.rounds_total += 1
                await asyncio.sleep(max(0.0, self.interval_s - (loop.time() - started)))
