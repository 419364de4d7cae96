"""Query-parameter types shared by the endpoints: timestamps, and 422 errors that name a field."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from ninja.errors import ValidationError
from pydantic import BeforeValidator, WithJsonSchema

_EPOCH = re.compile(r"^[+-]?\d+(\.\d+)?$")
# A "+00:00" offset typed into a URL without encoding arrives as " 00:00".
_SPACED_OFFSET = re.compile(r"^(.*\d) (\d\d:?\d\d)$")


def parse_timestamp(value: Any) -> datetime:
    """An ISO 8601 timestamp (naive means UTC) or seconds since the Unix epoch, as UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(float(value))
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected an ISO 8601 timestamp or seconds since the Unix epoch")
    text = value.strip()
    if _EPOCH.match(text):
        return _from_epoch(float(text))
    spaced = _SPACED_OFFSET.match(text)
    if spaced and "T" in text:
        text = f"{spaced.group(1)}+{spaced.group(2)}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an ISO 8601 timestamp (2025-01-31T12:00:00Z) "
            "or seconds since the Unix epoch"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _from_epoch(seconds: float) -> datetime:
    if not math.isfinite(seconds) or not 0 <= seconds < 253402300800:
        raise ValueError("epoch seconds out of range")
    return datetime.fromtimestamp(seconds, tz=UTC)


Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_timestamp),
    WithJsonSchema(
        {
            "type": "string",
            "description": "ISO 8601 timestamp (naive means UTC) or seconds since the Unix epoch",
            "examples": ["2025-01-31T12:00:00Z", "1738324800"],
        }
    ),
]


def invalid(field: str, message: str) -> ValidationError:
    """A 422 shaped like the ones django-ninja raises for bad parameters."""
    return ValidationError([{"type": "value_error", "loc": ["query", field], "msg": message}])


def isoformat(moment: datetime | None) -> str | None:
    """UTC, millisecond precision, "Z" suffix: the same shape as Django's JSON encoder."""
    if moment is None:
        return None
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
