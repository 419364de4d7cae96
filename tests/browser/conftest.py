"""Browser tests share the Chromium fixture defined once in tests/chromium.py."""

from tests.chromium import CHROMIUM, CHROMIUM_ARGS, browser

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "browser"]
