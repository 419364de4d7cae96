"""``resmon ingest-mqtt``: devices push their results over MQTT.

Subscribes (MQTT v5) to ``<prefix>/+/status`` and ``<prefix>/+/telemetry`` through a
shared subscription (``$share/<group>/...``), so several ingesters in the same group
split the messages between them instead of each recording every one.

- ``<prefix>/<device name>/status``: ``{"ok": bool, "latency_ms"?, "ts"?, "metrics"?,
  "error"?}``, recorded like ``POST /api/v1/ingest`` (same validator, same state machine).
- ``<prefix>/<device name>/telemetry``: ``{name: number, ..., "ts"?: iso}``; validated
  and stored as per-device metrics (``DeviceMetric``) for any known, enabled device,
  whatever its check method; no sample, no state change (``ingest.record_telemetry``).

A bad payload (not JSON, wrong fields, unknown or non-push device) is counted and logged,
never fatal. A lost broker is retried with exponential backoff (1 s doubling to 30 s,
with jitter). Messages are recorded in small batches (every 0.5 s or 500 messages) on
one database thread. SIGTERM or Ctrl-C flushes and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from resourcemonitor.monitoring.ingest import (
    IngestError,
    Report,
    parse_report,
    record_reports,
    record_telemetry,
)
from resourcemonitor.monitoring.models import Heartbeat

log = logging.getLogger("resourcemonitor.ingest_mqtt")

FLUSH_S = 0.5
FLUSH_MAX = 500
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
HEARTBEAT_S = 5.0
MAX_PAYLOAD = 64 * 1024
MAX_WARNED_TOPICS = 10_000


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, text: str) -> BrokerUrl:
        """``mqtt://[user:pass@]host[:1883]`` or ``mqtts://…[:8883]``; ValueError if bad."""
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise ValueError(f"not a broker URL: {text!r}") from None
        if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
            raise ValueError(f"the broker URL must look like mqtt://host:1883 (got {text!r})")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class MqttIngester:
    """Receives, validates and records pushed results. Its steps are separate methods
    (``handle_message``, ``flush``, ``beat``) so tests call them directly."""

    def __init__(
        self, *, broker: BrokerUrl, prefix: str = "resmon", group: str | None = "resmon"
    ) -> None:
        self.broker = broker
        self.prefix = prefix.strip("/")
        self.group = group
        self.instance = f"ingester@{socket.gethostname()}:{os.getpid()}"
        self.pending: list[Report] = []
        self.pending_telemetry: list[tuple[int | str, datetime, Mapping[str, float]]] = []
        self.received_total = 0
        self.recorded_total = 0
        self.telemetry_total = 0
        self.metrics_total = 0
        self.bad_total = 0
        self.reconnects_total = 0
        self.connected = asyncio.Event()
        self._stopping = False
        self._stop_event: asyncio.Event | None = None
        self._warned: set[str] = set()
        # One thread for the ORM: Django connections are per thread.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-db")

    # -- topics ---------------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        topics = [f"{self.prefix}/+/status", f"{self.prefix}/+/telemetry"]
        if self.group:
            return [f"$share/{self.group}/{topic}" for topic in topics]
        return topics

    def _device_and_kind(self, topic: str) -> tuple[str, str] | None:
        head, _, rest = topic.partition(f"{self.prefix}/")
        if head or rest.count("/") != 1:
            return None
        device, kind = rest.split("/")
        return (device, kind) if device and kind in {"status", "telemetry"} else None

    # -- steps ----------------------------------------------------------------------------

    def handle_message(self, topic: str, payload: bytes) -> bool:
        """Validate one message and queue it; False (counted, logged) when it is bad."""
        self.received_total += 1
        parsed = self._device_and_kind(topic)
        if parsed is None:
            return self._bad(topic, "unexpected topic")
        device, kind = parsed
        if len(payload) > MAX_PAYLOAD:
            return self._bad(topic, f"payload over {MAX_PAYLOAD} bytes")
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return self._bad(topic, "payload is not JSON")
        if kind == "telemetry":
            ts = None
            if isinstance(data, dict) and isinstance(data.get("ts"), str):
                data = dict(data)
                ts = data.pop("ts")
            try:
                telemetry = parse_report({"device": device, "ok": True, "metrics": data, "ts": ts})
            except IngestError as exc:
                return self._bad(topic, str(exc))
            self.telemetry_total += 1
            at = telemetry.ts or timezone.now()
            self.pending_telemetry.append((device, at, telemetry.metrics))
            return True
        if not isinstance(data, dict):
            return self._bad(topic, "payload must be a JSON object")
        if "device" in data and data["device"] != device:
            return self._bad(topic, "device: differs from the topic's device")
        try:
            report = parse_report({**data, "device": device})
        except IngestError as exc:
            return self._bad(topic, str(exc))
        if report.ts is None:
            # Stamped on arrival, not when recorded: a retried batch (storage was busy)
            # then writes the same keys, which the write path ignores the second time.
            report = dataclasses.replace(report, ts=timezone.now())
        self.pending.append(report)
        return True

    def _bad(self, topic: str, reason: str) -> bool:
        self.bad_total += 1
        # A misconfigured publisher repeats its mistake every few seconds: warn once per
        # topic (bounded memory), then only at debug level.
        if topic not in self._warned and len(self._warned) < MAX_WARNED_TOPICS:
            self._warned.add(topic)
            log.warning("bad MQTT message on %s: %s", topic[:200], reason[:300])
        else:
            log.debug("bad MQTT message on %s: %s", topic[:200], reason[:300])
        return False

    def record_metrics(self, items: list[tuple[int | str, datetime, Mapping[str, float]]]) -> int:
        """Store telemetry (database thread); an unknown device's is counted as bad."""
        close_old_connections()
        stored, unknown = record_telemetry(items)
        for device in unknown:
            self._bad(f"{self.prefix}/{device}/telemetry", f"device: unknown device {device!r}")
        return stored

    def record(self, reports: list[Report]) -> int:
        """Record a batch (database thread). A bad device rejects only its own reports."""
        close_old_connections()
        try:
            return record_reports(reports=reports).accepted
        except IngestError:
            pass  # one unknown/non-push device: record the others one by one
        recorded = 0
        for report in reports:
            try:
                recorded += record_reports(reports=[report]).accepted
            except IngestError as exc:
                self._bad(f"{self.prefix}/{report.device}/status", str(exc))
        return recorded

    async def flush(self) -> int:
        loop = asyncio.get_running_loop()
        if self.pending_telemetry:
            items, self.pending_telemetry = self.pending_telemetry, []
            try:
                self.metrics_total += await loop.run_in_executor(
                    self._db, self.record_metrics, items
                )
            except DatabaseError as exc:
                log.warning("could not store telemetry of %d messages: %s", len(items), exc)
                self.pending_telemetry = (items + self.pending_telemetry)[-100 * FLUSH_MAX :]
        if not self.pending:
            return 0
        reports, self.pending = self.pending, []
        try:
            recorded = await loop.run_in_executor(self._db, self.record, reports)
        except DatabaseError as exc:
            # Storage away: keep the reports (bounded) and try again at the next flush.
            log.warning("could not record %d reports: %s", len(reports), exc)
            self.pending = (reports + self.pending)[-100 * FLUSH_MAX :]
            return 0
        self.recorded_total += recorded
        return recorded

    def info(self) -> dict[str, Any]:
        return {
            "broker": f"{self.broker.host}:{self.broker.port}",
            "connected": self.connected.is_set(),
            "received_total": self.received_total,
            "recorded_total": self.recorded_total,
            "telemetry_total": self.telemetry_total,
            "metrics_total": self.metrics_total,
            "bad_total": self.bad_total,
            "reconnects_total": self.reconnects_total,
            "pending": len(self.pending),
        }

    async def beat(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                self._db,
                lambda: Heartbeat.beat(
                    component="ingester", instance=self.instance, info=self.info()
                ),
            )
        except DatabaseError as exc:
            log.warning("could not write the heartbeat: %s", exc)

    # -- loop -----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop soon (call it on the ingester's loop, e.g. from a signal handler)."""
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()

    async def run(self, *, duration: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        if self._stopping:
            self._stop_event.set()
        deadline = None if duration is None else loop.time() + duration
        flusher = asyncio.create_task(self._periodic())
        backoff = BACKOFF_START_S
        try:
            while not self._stopping and (deadline is None or loop.time() < deadline):
                try:
                    await self._session(deadline)
                    backoff = BACKOFF_START_S
                except aiomqtt.MqttError as exc:
                    self.connected.clear()
                    self.reconnects_total += 1
                    wait = min(backoff, BACKOFF_MAX_S) * random.uniform(0.5, 1.0)
                    log.warning(
                        "MQTT broker %s: %s; retrying in %.1f s", self.broker.host, exc, wait
                    )
                    await self._sleep(wait, deadline)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            await self.flush()
            self._db.shutdown(wait=True)

    async def _sleep(self, seconds: float, deadline: float | None) -> None:
        loop = asyncio.get_running_loop()
        if deadline is not None:
            seconds = min(seconds, deadline - loop.time())
        assert self._stop_event is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), max(0.0, seconds))

    async def _session(self, deadline: float | None) -> None:
        loop = asyncio.get_running_loop()
        async with aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.broker.username,
            password=self.broker.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_params=aiomqtt.TLSParameters() if self.broker.tls else None,
            keepalive=30,
        ) as client:
            for topic in self.subscriptions():
                await client.subscribe(topic, qos=1)
            self.connected.set()
            log.info("ingesting from %s: %s", self.broker.host, ", ".join(self.subscriptions()))
            messages = aiter(client.messages)
            while not self._stopping:
                timeout = 0.25
                if deadline is not None:
                    timeout = min(timeout, deadline - loop.time())
                    if timeout <= 0:
                        break
                try:
                    message = await asyncio.wait_for(anext(messages), timeout)
                except TimeoutError:
                    continue
                payload = message.payload
                if isinstance(payload, str):
                    payload = payload.encode()
                elif not isinstance(payload, bytes | bytearray):
                    payload = json.dumps(payload).encode()
                self.handle_message(message.topic.value, bytes(payload))
                if len(self.pending) + len(self.pending_telemetry) >= FLUSH_MAX:
                    await self.flush()
        self.connected.clear()

    async def _periodic(self) -> None:
        next_beat = 0.0
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + HEARTBEAT_S
                await self.beat()


class Command(BaseCommand):
    help = (
        "Record results that push devices publish over MQTT (v5 shared subscription, so "
        "several ingesters split the load). Topics: PREFIX/<device>/status with "
        '{"ok": bool, "latency_ms": n, "ts": iso, "metrics": {...}} and '
        "PREFIX/<device>/telemetry. Bad messages are counted and logged, never fatal."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--url", help="broker, mqtt://[user:pass@]host[:port] (default RESMON_MQTT_URL)"
        )
        parser.add_argument("--prefix", default="resmon", help="topic prefix (default resmon)")
        parser.add_argument(
            "--group",
            default="resmon",
            help="shared-subscription group; ingesters in one group split the messages",
        )
        parser.add_argument(
            "--no-share", action="store_true", help="a plain subscription: receive every message"
        )
        parser.add_argument("--duration", help="stop after S seconds (tests)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            broker = BrokerUrl.parse(options["url"] or settings.RESMON_MQTT_URL)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        prefix = options["prefix"].strip("/")
        if not prefix or any(c in prefix for c in "+#"):
            raise CommandError(f"--prefix must be a topic without wildcards (got {prefix!r})")
        group = None if options["no_share"] else options["group"]
        if group is not None and (not group or any(c in group for c in "/+#")):
            raise CommandError(f"--group must be a plain name (got {group!r})")
        duration = None
        if options["duration"] is not None:
            try:
                duration = float(options["duration"])
            except ValueError:
                raise CommandError("--duration must be a number of seconds") from None
            if duration <= 0:
                raise CommandError("--duration must be positive")
        ingester = MqttIngester(broker=broker, prefix=prefix, group=group)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, ingester.request_stop)
            await ingester.run(duration=duration)

        asyncio.run(main())
        info = ingester.info()
        self.stdout.write(
            f"ingest-mqtt: {info['recorded_total']} recorded, {info['telemetry_total']} "
            f"telemetry ({info['metrics_total']} metrics stored), {info['bad_total']} bad, "
            f"{info['reconnects_total']} reconnects"
        )
