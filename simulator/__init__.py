"""A simulated network for Resource Monitor: many devices on loopback addresses.

Each device listens on its own 127.x.y.z address and answers TCP connects and
``GET /health`` with its own latency and failure behaviour; a small control API
forces devices up or down and serves the original exercise's JSON feed.

This package never imports Django or ``resourcemonitor`` so that it can run on a
host of its own. ``python -m simulator`` and ``resmon simulate`` both start it.
"""
