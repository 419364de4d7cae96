"""RESMON_LOG_FORMAT=json: one JSON object per line with component and extra fields."""

from __future__ import annotations

import json
import logging
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

import resourcemonitor
from resourcemonitor.logging import JsonFormatter, current_component

SETTINGS_PATH = Path(resourcemonitor.__file__).parent / "settings.py"


def format_record(formatter: logging.Formatter, **kwargs) -> dict:
    logger = logging.getLogger("resourcemonitor.test")
    record = logger.makeRecord(
        "resourcemonitor.test",
        logging.WARNING,
        __file__,
        1,
        "check failed: %s",
        ("timeout",),
        kwargs.pop("exc_info", None),
        extra=kwargs or None,
    )
    line = formatter.format(record)
    assert "\n" not in line
    return json.loads(line)


def test_fields_and_extras():
    entry = format_record(JsonFormatter(component="collector"), device="lon-core-1", attempt=3)
    assert entry["level"] == "warning"
    assert entry["component"] == "collector"
    assert entry["logger"] == "resourcemonitor.test"
    assert entry["message"] == "check failed: timeout"
    assert entry["device"] == "lon-core-1"
    assert entry["attempt"] == 3
    assert entry["time"].endswith("+00:00")


def test_exceptions_stay_on_one_line():
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        entry = format_record(JsonFormatter(component="web"), exc_info=sys.exc_info())
    assert entry["exc_type"] == "ValueError"
    assert "Traceback" in entry["traceback"]


def test_component_from_the_command(monkeypatch):
    monkeypatch.delenv("RESMON_COMPONENT", raising=False)
    assert current_component(["resmon", "collect", "--shard", "1/2"]) == "collector"
    assert current_component(["resmon", "web"]) == "web"
    assert current_component(["resmon", "migrate"]) == "migrate"
    monkeypatch.setenv("RESMON_COMPONENT", "ingester")
    assert current_component(["resmon", "collect"]) == "ingester"


def run_resmon(tmp_path, **env_vars) -> subprocess.CompletedProcess[str]:
    code = (
        "import logging, django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', "
        "'resourcemonitor.settings'); django.setup(); "
        "logging.getLogger('resourcemonitor.x').warning('hello', extra={'device': 'sw-1'})"
    )
    env = {**os.environ, "RESMON_DATA_DIR": str(tmp_path), **env_vars}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def test_settings_wire_the_json_formatter(tmp_path):
    result = run_resmon(tmp_path, RESMON_LOG_FORMAT="json", RESMON_COMPONENT="collector")
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(
        e["message"] == "hello" and e["device"] == "sw-1" and e["component"] == "collector"
        for e in lines
    ), result.stderr


def load_settings(monkeypatch, tmp_path, **env_vars) -> dict:
    """Execute settings.py afresh with these variables (in-process: no Django start-up)."""
    monkeypatch.setenv("RESMON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RESMON_SECRET_KEY", "test-key")
    for name, value in env_vars.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_PATH))


def console_formatter(loaded: dict) -> str:
    return loaded["LOGGING"]["handlers"]["console"]["formatter"]


def test_plain_is_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("RESMON_LOG_FORMAT", raising=False)
    assert console_formatter(load_settings(monkeypatch, tmp_path)) == "plain"


def test_json_names_the_formatter_class(monkeypatch, tmp_path):
    loaded = load_settings(monkeypatch, tmp_path, RESMON_LOG_FORMAT="JSON")
    assert console_formatter(loaded) == "json"
    factory = loaded["LOGGING"]["formatters"]["json"]["()"]
    assert import_string(factory) is JsonFormatter


def test_a_bad_format_stops_the_start(monkeypatch, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="RESMON_LOG_FORMAT='xml'"):
        load_settings(monkeypatch, tmp_path, RESMON_LOG_FORMAT="xml")


def test_a_bad_deadman_url_stops_the_start(monkeypatch, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="RESMON_DEADMAN_URL='ftp://nope'"):
        load_settings(monkeypatch, tmp_path, RESMON_DEADMAN_URL="ftp://nope")
