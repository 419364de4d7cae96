"""Registering the simulator's devices, so ``resmon run`` shows a live network at once."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction

from resourcemonitor.inventory.models import CheckMethod, Device, Kind, Site, Tag

DEMO_TAG = "simulated"


def fetch_simulator_inventory(control_url: str, *, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The simulator's ``GET /inventory``: every device with kind, site, parent and port."""
    with urllib.request.urlopen(f"{control_url}/inventory", timeout=timeout) as response:
        data = json.load(response)
    if not isinstance(data, list):
        raise ValueError(f"{control_url}/inventory did not return a list")
    return data


@transaction.atomic
def register_simulated_network(
    *, devices: Iterable[Mapping[str, Any]], interval_s: float, timeout_s: float = 2.0
) -> int:
    """Create or update one HTTP-checked Device per simulated device; returns how many.

    Devices are matched by name, so running the demo again updates rather than
    duplicates, and a device the user edited keeps its other fields.
    """
    entries = list(devices)
    tag, _ = Tag.objects.get_or_create(name=DEMO_TAG)
    sites = {
        name: Site.objects.get_or_create(name=name)[0]
        for name in sorted({str(entry["site"]) for entry in entries if entry.get("site")})
    }
    kinds = set(Kind.values)
    by_sim_id: dict[int, Device] = {}
    for entry in entries:
        device, _ = Device.objects.update_or_create(
            name=str(entry["name"]),
            defaults={
                "address": str(entry["address"]),
                "kind": entry["kind"] if entry.get("kind") in kinds else Kind.OTHER,
                "site": sites.get(str(entry.get("site"))),
                "check_method": CheckMethod.HTTP,
                "check_port": int(entry["port"]),
                "check_path": "/health",
                "check_interval_s": interval_s,
                "check_timeout_s": min(timeout_s, interval_s),
                "enabled": True,
            },
        )
        device.tags.add(tag)
        by_sim_id[int(entry["id"])] = device
    # Parents second: a parent may come after its child in the list.
    for entry in entries:
        parent_id = entry.get("parent_id")
        device = by_sim_id[int(entry["id"])]
        parent = by_sim_id.get(int(parent_id)) if parent_id is not None else None
        if device.parent_id != (parent.pk if parent else None):
            device.parent = parent
            device.save(update_fields=["parent"])
    return len(by_sim_id)
