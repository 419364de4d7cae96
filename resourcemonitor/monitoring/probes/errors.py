"""Why a check failed: short codes for samples, words for people. Defined once, here.

A code is what ``Sample.error`` stores (a few bytes per failed row, groupable in SQL);
the human text is what ``DeviceState.last_error`` and an ``Event`` message show. Every
probe classifies its failures through this module, so ``refused`` means the same thing
whether a TCP or an HTTP check saw it.
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Final

REFUSED: Final = "refused"
TIMEOUT: Final = "timeout"
RESET: Final = "reset"
DNS: Final = "dns"
UNREACHABLE: Final = "unreachable"
TLS: Final = "tls"
BODY_MISMATCH: Final = "body_mismatch"
INVALID_HTTP: Final = "invalid_http"
FEED_DOWN: Final = "feed_down"
FEED_ERROR: Final = "feed_error"
ICMP_PERMISSION: Final = "icmp_permission"
ERROR: Final = "error"
# HTTP status failures are ``http_<status>``, e.g. ``http_503``.
HTTP_PREFIX: Final = "http_"

# The code → text table. Templates take ``timeout`` (seconds), ``detail``, ``match``.
ERROR_TEXT: Final[dict[str, str]] = {
    REFUSED: "connection refused",
    TIMEOUT: "timeout after {timeout} s",
    RESET: "connection reset",
    DNS: "DNS lookup failed",
    UNREACHABLE: "host unreachable",
    TLS: "TLS error: {detail}",
    BODY_MISMATCH: "body does not contain '{match}'",
    INVALID_HTTP: "invalid HTTP response: {detail}",
    FEED_DOWN: "reported down by feed",
    FEED_ERROR: "feed error: {detail}",
    ICMP_PERMISSION: (
        "no permission for ICMP sockets (run as root, or give the interpreter "
        "cap_net_raw with setcap, or widen net.ipv4.ping_group_range)"
    ),
    ERROR: "{detail}",
}

# The widest texts fit DeviceState.last_error and Event.message (300 characters).
MAX_TEXT = 300

_ERRNO_CODES: Final[dict[int, str]] = {
    errno.ECONNREFUSED: REFUSED,
    errno.ETIMEDOUT: TIMEOUT,
    errno.ECONNRESET: RESET,
    errno.ECONNABORTED: RESET,
    errno.EPIPE: RESET,
    errno.EHOSTUNREACH: UNREACHABLE,
    errno.ENETUNREACH: UNREACHABLE,
    errno.EHOSTDOWN: UNREACHABLE,
    errno.ENETDOWN: UNREACHABLE,
}


def format_seconds(seconds: float) -> str:
    """2.0 → "2", 0.5 → "0.5": people read "timeout after 2 s", not "2.0 s"."""
    return f"{seconds:g}"


def describe(code: str, *, timeout: float | None = None, detail: str = "", match: str = "") -> str:
    """The human text for an error code (the one place that maps codes to words)."""
    if code.startswith(HTTP_PREFIX):
        return f"HTTP {code.removeprefix(HTTP_PREFIX)}"
    template = ERROR_TEXT.get(code, ERROR_TEXT[ERROR])
    text = template.format(
        timeout=format_seconds(timeout) if timeout is not None else "?",
        detail=detail or code,
        match=match,
    )
    return text[:MAX_TEXT]


def http_status_code(status: int) -> str:
    return f"{HTTP_PREFIX}{status}"


def exception_detail(exc: BaseException) -> str:
    """A one-line description of an exception, never empty."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def classify_exception(exc: BaseException) -> tuple[str, str]:
    """Map an OS-level failure to ``(code, detail)``; probes call this last.

    The order matters: ``TimeoutError`` and ``ConnectionRefusedError`` are both
    ``OSError`` subclasses, and SSL errors are too.
    """
    if isinstance(exc, TimeoutError):
        return TIMEOUT, ""
    if isinstance(exc, socket.gaierror):
        return DNS, exception_detail(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLS, f"certificate verify failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        # "WRONG_VERSION_NUMBER" reads better as "wrong version number".
        reason = exc.reason.replace("_", " ").lower() if exc.reason else exception_detail(exc)
        return TLS, reason
    if isinstance(exc, ssl.CertificateError):
        return TLS, exception_detail(exc)
    if isinstance(exc, OSError) and exc.errno in _ERRNO_CODES:
        return _ERRNO_CODES[exc.errno], exception_detail(exc)
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return RESET, exception_detail(exc)
    return ERROR, exception_detail(exc)
