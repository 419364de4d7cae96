"""Structured logs: one JSON object per line, for log shippers (``RESMON_LOG_FORMAT=json``).

Each line has ``time`` (UTC, ISO 8601), ``level``, ``component`` (collector, web,
alerts, …), ``logger``, ``message``, and every extra field the call passed, e.g.
``log.warning("check failed", extra={"device": "lon-core-1"})`` adds ``"device"``.
An exception adds ``exc_type`` and ``traceback`` (one string; still one line).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

# The attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)

# `resmon <command>` → the component name used by heartbeats and the system page.
COMMAND_COMPONENTS = {
    "collect": "collector",
    "web": "web",
    "run": "supervisor",
    "simulate": "simulator",
    "alerts": "alerts",
    "ingest-mqtt": "ingester",
    "ingest_mqtt": "ingester",
}


def current_component(argv: list[str] | None = None) -> str:
    """``RESMON_COMPONENT`` when set, else the name that belongs to the resmon command."""
    explicit = os.environ.get("RESMON_COMPONENT", "").strip()
    if explicit:
        return explicit
    args = sys.argv if argv is None else argv
    command = next((arg for arg in args[1:] if not arg.startswith("-")), "")
    return COMMAND_COMPONENTS.get(command, command or "resmon")


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return str(value)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring for the fields)."""

    def __init__(self, *args: Any, component: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.component = component or current_component()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "component": self.component,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = _jsonable(value)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["traceback"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii=False keeps device names readable; json escapes newlines anyway.
        return json.dumps(entry, ensure_ascii=False, default=str)
