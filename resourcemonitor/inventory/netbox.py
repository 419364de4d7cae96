"""Devices from NetBox, the network team's source of truth (``resmon devices import-netbox``).

NetBox owns what a device *is*: its name, primary IP (the address we check), site, role
(mapped to a kind by ``ROLE_KINDS``), tags, and its parent, worked out from cabling.
resmon owns how a device is *checked*: a device that exists keeps its check, thresholds,
SLO and SNMP settings; a new one gets the model's defaults with an ICMP check.

The devices become an ``Inventory`` and go through the same plan and apply as a file,
so ``--dry-run`` shows the same diff and a bad value is refused the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pynetbox
import requests
from requests.adapters import HTTPAdapter

from resourcemonitor.inventory.io.columns import (
    CSV_COLUMNS,
    DeviceRecord,
    Inventory,
    Problem,
    _build_device,
    _duplicates,
)
from resourcemonitor.inventory.io.plan import inventory_rows
from resourcemonitor.inventory.models import CheckMethod, Kind

# NetBox device role slug -> kind. Slugs not listed fall back to the first word of
# ROLE_WORDS found in the slug ("edge-router" -> router), then to "other".
ROLE_KINDS: dict[str, str] = {
    "router": Kind.ROUTER,
    "core-router": Kind.ROUTER,
    "edge-router": Kind.ROUTER,
    "switch": Kind.SWITCH,
    "core-switch": Kind.SWITCH,
    "distribution-switch": Kind.SWITCH,
    "access-switch": Kind.SWITCH,
    "leaf": Kind.SWITCH,
    "spine": Kind.SWITCH,
    "firewall": Kind.FIREWALL,
    "access-point": Kind.ACCESS_POINT,
    "wireless-ap": Kind.ACCESS_POINT,
    "ap": Kind.ACCESS_POINT,
    "phone": Kind.PHONE,
    "voip-phone": Kind.PHONE,
    "pc": Kind.PC,
    "workstation": Kind.PC,
    "desktop": Kind.PC,
    "laptop": Kind.PC,
    "server": Kind.SERVER,
    "hypervisor": Kind.SERVER,
}
ROLE_WORDS: tuple[tuple[str, str], ...] = (
    ("router", Kind.ROUTER),
    ("firewall", Kind.FIREWALL),
    ("switch", Kind.SWITCH),
    ("ap", Kind.ACCESS_POINT),
    ("phone", Kind.PHONE),
    ("server", Kind.SERVER),
)
# Which end of a cable is the parent: the one higher in this order (lower number); then,
# between equal kinds, the role's tier (core above distribution above access).
KIND_RANK = {
    Kind.ROUTER: 0,
    Kind.FIREWALL: 1,
    Kind.SWITCH: 2,
    Kind.ACCESS_POINT: 3,
    Kind.SERVER: 4,
    Kind.PC: 5,
    Kind.PHONE: 5,
    Kind.OTHER: 6,
}
TIERS = (("core", 0), ("spine", 0), ("dist", 1), ("aggr", 1), ("access", 2), ("leaf", 2))


class NetboxError(Exception):
    """NetBox could not be read: the message is one line for the user."""


@dataclass
class NetboxData:
    """The raw NetBox objects an import needs (dicts in NetBox's REST shape)."""

    devices: list[dict[str, Any]]
    cables: list[dict[str, Any]]


def role_kind(slug: str | None) -> str:
    """The kind of a NetBox device role (see ``ROLE_KINDS``), as its plain value."""
    kind: str = Kind.OTHER
    if slug in ROLE_KINDS:
        kind = ROLE_KINDS[slug]
    elif slug:
        words = slug.replace("_", "-").split("-")
        kind = next((kind for word, kind in ROLE_WORDS if word in words), Kind.OTHER)
    return Kind(kind).value


class _TimeoutAdapter(HTTPAdapter):
    """requests has no session-wide timeout; without one a silent server hangs us."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        return super().send(request, **kwargs)


def fetch_netbox(*, url: str, token: str, timeout: float = 30.0) -> NetboxData:
    """Read devices and cables through pynetbox; NetboxError with one line if we cannot."""
    if not url.startswith(("http://", "https://")):
        raise NetboxError("not a URL (expected http:// or https://)")
    base = url.rstrip("/")
    base = base.removesuffix("/api")  # pynetbox adds it; people paste either form
    api = pynetbox.api(base, token=token)
    adapter = _TimeoutAdapter(timeout)
    api.http_session.mount("http://", adapter)
    api.http_session.mount("https://", adapter)
    try:
        status = api.status()
        if not isinstance(status, dict) or "netbox-version" not in status:
            raise NetboxError("not a NetBox API (/api/status/ has no netbox-version)")
        devices = [dict(record) for record in api.dcim.devices.all()]
        cables = [dict(record) for record in api.dcim.cables.all()]
    except pynetbox.RequestError as exc:
        raise NetboxError(_request_error(exc)) from None
    except (pynetbox.ContentError, requests.JSONDecodeError):
        raise NetboxError("not a NetBox API (the answer is not JSON)") from None
    except requests.Timeout:
        raise NetboxError(f"no answer within {timeout:g} s") from None
    except requests.ConnectionError as exc:
        raise NetboxError(f"cannot connect: {_reason(exc)}") from None
    except requests.RequestException as exc:
        raise NetboxError(f"request failed: {_reason(exc)}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise NetboxError(f"not a NetBox API (unexpected answer: {exc!r})") from None
    return NetboxData(devices=devices, cables=cables)


def _request_error(exc: pynetbox.RequestError) -> str:
    code = exc.req.status_code
    if code in {401, 403}:
        return f"access denied ({code}): check the token"
    if code == 404:
        return f"not a NetBox API (404 at {exc.req.url})"
    return f"NetBox answered {code} {exc.req.reason}"


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _name(obj: Any, key: str = "name") -> str | None:
    return obj.get(key) if isinstance(obj, dict) else None


def netbox_inventory(*, data: NetboxData) -> tuple[Inventory, list[str], dict[int, str]]:
    """NetBox devices as an Inventory, notes on the devices that had to be skipped, and
    each record's device name by its "line" (its position), to name them in problems.

    Existing devices keep every column NetBox does not own. Reads the database.
    """
    existing = inventory_rows()
    by_id: dict[int, dict[str, Any]] = {}
    skipped: list[str] = []
    for device in data.devices:
        name = device.get("name")
        address = _address(device)
        if not name or not address:
            what = f"device {name!r}" if name else f"device id {device.get('id')}"
            skipped.append(f"{what}: no {'name' if not name else 'primary IP'} in NetBox")
            continue
        by_id[int(device["id"])] = device
    parents = _parents(by_id, data.cables)
    problems: list[Problem] = []
    records: list[DeviceRecord] = []
    for line, (device_id, device) in enumerate(sorted(by_id.items()), start=1):
        row = existing.get(device["name"])
        raw: dict[str, tuple[object, int]] = (
            {name: (row[name], line) for name in CSV_COLUMNS}
            if row
            else {"check_method": (CheckMethod.ICMP.value, line)}
        )
        raw["name"] = (device["name"], line)
        raw["address"] = (_address(device), line)
        raw["kind"] = (_kind(device), line)
        raw["site"] = (_name(device.get("site")), line)
        raw["tags"] = (tuple(_tags(device.get("tags") or [])), line)
        if device_id in parents:
            raw["parent"] = (by_id[parents[device_id]]["name"], line)
        records.append(_build_device(raw, line, problems))
    problems += _duplicates(records, [])
    inventory = Inventory(
        sites=[],
        devices=[record for record in records if record.ok],
        problems=problems,
        rejected={record.name for record in records if not record.ok and "name" in record.values},
    )
    names = {line: device["name"] for line, (_, device) in enumerate(sorted(by_id.items()), 1)}
    return inventory, skipped, names


def _address(device: dict[str, Any]) -> str | None:
    """The primary IP without its prefix length (``10.0.0.1/24`` -> ``10.0.0.1``)."""
    for key in ("primary_ip", "primary_ip4", "primary_ip6"):
        address = _name(device.get(key), "address")
        if address:
            return str(address).split("/", 1)[0]
    return None


def _role(device: dict[str, Any]) -> str | None:
    # NetBox 4 calls it "role"; 3.x "device_role".
    role = device.get("role") or device.get("device_role")
    return _name(role, "slug")


def _kind(device: dict[str, Any]) -> str:
    return role_kind(_role(device))


def _tags(tags: Iterable[Any]) -> list[str]:
    return [str(tag.get("slug") or tag.get("name")) for tag in tags if isinstance(tag, dict)]


def _rank(device: dict[str, Any]) -> tuple[int, int]:
    slug = _role(device) or ""
    tier = next((rank for word, rank in TIERS if word in slug), 1)
    return KIND_RANK.get(Kind(_kind(device)), 6), tier


def _parents(by_id: dict[int, dict[str, Any]], cables: list[dict[str, Any]]) -> dict[int, int]:
    """Child device id -> parent device id, from the cables between imported devices.

    Of a cable's two ends the higher-ranked device is the parent; equal ranks say
    nothing. A device cabled to several higher devices takes the highest (then the
    first by name), so the result is the same whatever order NetBox lists cables in.
    Parents always outrank children, so cabling cannot make a cycle.
    """
    candidates: dict[int, set[int]] = {}
    for cable in cables:
        a_ends = _cable_devices(cable.get("a_terminations"), by_id)
        b_ends = _cable_devices(cable.get("b_terminations"), by_id)
        for a in a_ends:
            for b in b_ends:
                if a == b:
                    continue
                rank_a, rank_b = _rank(by_id[a]), _rank(by_id[b])
                if rank_a < rank_b:
                    candidates.setdefault(b, set()).add(a)
                elif rank_b < rank_a:
                    candidates.setdefault(a, set()).add(b)
    return {
        child: min(options, key=lambda pk: (_rank(by_id[pk]), by_id[pk]["name"]))
        for child, options in candidates.items()
    }


def _cable_devices(terminations: Any, by_id: dict[int, dict[str, Any]]) -> set[int]:
    """The imported devices at one end of a cable (interfaces, console ports, ...)."""
    found: set[int] = set()
    for end in terminations or []:
        if not isinstance(end, dict):
            continue
        device = (end.get("object") or {}).get("device")
        device_id = device.get("id") if isinstance(device, dict) else None
        if isinstance(device_id, int) and device_id in by_id:
            found.add(device_id)
    return found
