"""The one console script, ``resmon``.

``resmon simulate`` goes straight to the simulator, which never imports Django (it may run
on another host). Every other command is a Django management command, so ``resmon
migrate`` and ``resmon createsuperuser`` pass through as they are.
"""

from __future__ import annotations

import os
import sys

# Django names commands after their module (ingest_mqtt); people type dashes.
DASHED_ALIASES = {"ingest-mqtt": "ingest_mqtt"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "simulate":
        from simulator.cli import main as simulate

        return simulate(argv[1:], prog="resmon simulate")

    if argv and argv[0] in DASHED_ALIASES:
        argv[0] = DASHED_ALIASES[argv[0]]

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resourcemonitor.settings")
    from django.core.exceptions import ImproperlyConfigured

    try:
        from django.core.management import execute_from_command_line

        execute_from_command_line(["resmon", *argv])
    except ImproperlyConfigured as exc:
        print(f"resmon: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
