"""Parsing of HOST:PORT bind addresses, shared by the commands that listen."""

from __future__ import annotations

import ipaddress


class BindError(ValueError):
    """A bind address that is not HOST:PORT with a valid port."""


def parse_bind(value: str, *, loopback_only: bool = False) -> tuple[str, int]:
    """Split ``127.0.0.1:8000`` or ``[::1]:8000`` into host and port, or raise BindError."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise BindError(f"expected HOST:PORT, got {value!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        raise BindError(f"port must be a number, got {port_text!r}") from None
    if not 1 <= port <= 65535:
        raise BindError(f"port must be from 1 to 65535, got {port}")
    if loopback_only:
        try:
            is_loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            is_loopback = host == "localhost"
        if not is_loopback:
            raise BindError(f"{host} is not a loopback address (127.0.0.0/8 or ::1)")
    return host, port
