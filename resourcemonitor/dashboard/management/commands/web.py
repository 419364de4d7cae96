"""``resmon web``: the dashboard, API and /metrics under gunicorn (not runserver)."""

from __future__ import annotations

import argparse
import gc
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from resourcemonitor.netaddr import BindError, parse_bind


def _serve(bind: str, workers: int, threads: int) -> None:
    from gunicorn.app.base import BaseApplication

    from resourcemonitor.api import metrics
    from resourcemonitor.monitoring import selfmon

    selfmon.serve_from_workers()  # heartbeats come from the workers (post_fork below)
    from resourcemonitor.wsgi import application

    # Every worker's request metrics in shared files, so any worker's /metrics counts all.
    metrics.prepare_multiprocess()

    class WebApplication(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": bind,
                "workers": workers,
                "threads": threads,
                "worker_class": "gthread",
                "accesslog": None,
                "graceful_timeout": 5,
                "timeout": 30,
                # Keep-alive lets the dashboard's 2 s poll reuse its connection.
                "keepalive": 5,
                "post_fork": metrics.gunicorn_post_fork,
                "child_exit": metrics.gunicorn_child_exit,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return application

    # Everything loaded so far (Django, the apps, the WSGI application) lives as long as
    # the process: move it out of the garbage collector's sight before forking, so that
    # a full collection in a worker (the 10,000-device list's allocations set them off)
    # walks what requests made, not ~100,000 long-lived objects (50-70 ms with every
    # thread of the worker stopped; docs/scaling.md). Workers inherit the frozen set.
    gc.freeze()
    WebApplication().run()


class Command(BaseCommand):
    help = "Serve the dashboard, the REST API and /metrics with gunicorn."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT to listen on")
        parser.add_argument("--workers", type=int, default=2, help="worker processes")
        parser.add_argument("--threads", type=int, default=4, help="threads per worker")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            host, port = parse_bind(options["bind"])
        except BindError as exc:
            raise CommandError(f"--bind: {exc}") from None
        if options["workers"] < 1 or options["threads"] < 1:
            raise CommandError("--workers and --threads must be at least 1")
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        _serve(bind, options["workers"], options["threads"])
