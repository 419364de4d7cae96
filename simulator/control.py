"""The control API (aiohttp): the device feed, the inventory, and forcing states.

Routes:
    GET  /healthz                 {"ok": true, "devices": N}
    GET  /devices                 the original exercise's feed:
                                  [{"id", "name", "ip_address", "status"}, ...]
    GET  /devices/{id}            one device in detail
    GET  /inventory               every device in detail (``snmp``: how it answers SNMP,
                                  {"version", "address", "port", "community"}, or null)
    POST /devices/{id}/state      {"state": "up"|"down"|"degraded"|"auto"} → the device's detail

Every error is a JSON body ``{"error": "..."}`` with a 4xx status.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from simulator.behaviour import AUTO, FORCED_STATES
from simulator.device_server import DeviceServers
from simulator.network import NetworkState, UnknownDevice

MAX_BODY_BYTES = 64 * 1024
_STATE_CHOICES = ", ".join(repr(state) for state in (*FORCED_STATES, AUTO))

NETWORK: web.AppKey[NetworkState] = web.AppKey("network", NetworkState)
SERVERS: web.AppKey[DeviceServers] = web.AppKey("servers", DeviceServers)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class _APIError(Exception):
    """A client error, answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _JSONCache:
    """A JSON view re-rendered only when the network has changed since last time."""

    def __init__(self, render: Callable[[], Any]) -> None:
        self._render = render
        self._version = -1
        self._body = b""

    def body(self, version: int) -> bytes:
        if version != self._version:
            self._body = json.dumps(self._render()).encode()
            self._version = version
        return self._body


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn aiohttp's HTML errors (unknown route, wrong method) and any bug into JSON."""
    try:
        return await handler(request)
    except _APIError as error:
        return _error(error.status, error.message)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        message = error.reason.lower()
        if error.status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        elif error.status == 404:
            message = f"no such endpoint: {request.path}"
        return _error(error.status, message)
    except Exception as error:  # never a traceback to the client
        request.app.logger.exception("control API error")
        return _error(500, f"internal error: {type(error).__name__}")


def _device_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    try:
        device_id = int(raw)
    except ValueError:
        raise _APIError(400, f"device id must be a whole number (got {raw!r})") from None
    try:
        request.app[NETWORK].device(device_id)
    except UnknownDevice as error:
        raise _APIError(404, str(error)) from None
    return device_id


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "devices": len(request.app[NETWORK])})


async def device_feed(request: web.Request) -> web.Response:
    network = request.app[NETWORK]
    body = request.app[_FEED].body(network.version)
    return web.Response(body=body, content_type="application/json")


async def inventory(request: web.Request) -> web.Response:
    network = request.app[NETWORK]
    body = request.app[_INVENTORY].body(network.version)
    return web.Response(body=body, content_type="application/json")


async def device_detail(request: web.Request) -> web.Response:
    device_id = _device_id(request)
    return web.json_response(request.app[NETWORK].detail(device_id))


async def force_state(request: web.Request) -> web.Response:
    device_id = _device_id(request)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _error(400, f"request body is over {MAX_BODY_BYTES} bytes")
    # Read one byte past the cap so a chunked body that is too big is caught too.
    raw = b""
    while len(raw) <= MAX_BODY_BYTES:
        chunk = await request.content.read(MAX_BODY_BYTES + 1 - len(raw))
        if not chunk:
            break
        raw += chunk
    if len(raw) > MAX_BODY_BYTES:
        return _error(400, f"request body is over {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _error(400, 'request body must be JSON like {"state": "down"}')
    if not isinstance(payload, dict):
        return _error(400, 'request body must be a JSON object like {"state": "down"}')
    if "state" not in payload:
        return _error(400, f'"state" is missing; choose one of {_STATE_CHOICES}')
    state = payload["state"]
    if not isinstance(state, str) or state not in (*FORCED_STATES, AUTO):
        return _error(400, f'"state" must be one of {_STATE_CHOICES} (got {json.dumps(state)})')
    network = request.app[NETWORK]
    changed = network.force(device_id, state)
    # Listeners follow before we answer, so a connect after this response sees the change.
    await request.app[SERVERS].sync(changed)
    return web.json_response(network.detail(device_id))


_FEED: web.AppKey[_JSONCache] = web.AppKey("feed", _JSONCache)
_INVENTORY: web.AppKey[_JSONCache] = web.AppKey("inventory", _JSONCache)


def make_app(network: NetworkState, servers: DeviceServers) -> web.Application:
    """The control API's aiohttp application for this network."""
    # The state endpoint reads its body itself (64 KiB cap, answered with a 400);
    # aiohttp's own cap would answer 413 first, so it is set above ours.
    app = web.Application(middlewares=[_json_errors], client_max_size=4 * MAX_BODY_BYTES)
    app[NETWORK] = network
    app[SERVERS] = servers
    app[_FEED] = _JSONCache(network.feed)
    app[_INVENTORY] = _JSONCache(network.inventory)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/devices", device_feed)
    app.router.add_get("/devices/{id}", device_detail)
    app.router.add_post("/devices/{id}/state", force_state)
    app.router.add_get("/inventory", inventory)
    return app
