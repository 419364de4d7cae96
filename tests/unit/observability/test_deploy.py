"""deploy/: compose, Dockerfile, systemd units, Prometheus and Grafana configs stay true to
the code (Docker has no engine here, so these files are checked, not run)."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

from resourcemonitor.monitoring import metrics

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
SETTINGS = (ROOT / "resourcemonitor" / "settings.py").read_text()
ENV_NAME = re.compile(r"\b(RESMON_[A-Z0-9_]+|DATABASE_URL)\b")


def deploy_files() -> list[Path]:
    return sorted(path for path in DEPLOY.rglob("*") if path.is_file())


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def resmon_commands() -> set[str]:
    """What `resmon X` accepts: Django's commands, their dashed aliases, and simulate."""
    from resourcemonitor.cli import DASHED_ALIASES

    return set(get_commands()) | set(DASHED_ALIASES) | {"simulate"}


def test_every_env_var_named_in_deploy_files_is_a_setting():
    named = {name for path in deploy_files() for name in ENV_NAME.findall(path.read_text())}
    assert "DATABASE_URL" in named and "RESMON_SECRET_KEY" in named
    unknown = sorted(name for name in named if f'"{name}"' not in SETTINGS)
    assert unknown == [], f"deploy files name variables settings.py never reads: {unknown}"


def test_compose_parses_and_has_every_process():
    services = compose()["services"]
    for name in ("web", "collector", "simulator", "alerts", "ingester", "postgres", "mosquitto"):
        assert name in services, name
    assert services["web"]["environment"]["DATABASE_URL"].startswith("postgres://")
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])


def test_compose_commands_are_real_resmon_commands():
    commands = resmon_commands()
    for name, service in compose()["services"].items():
        command = service.get("command")
        if not command or service.get("image", "").startswith(("postgres", "eclipse", "prom")):
            continue
        text = command if isinstance(command, str) else " ".join(command)
        for used in re.findall(r"\bresmon ([a-z][a-z_-]*)", text):
            assert used in commands, f"{name}: resmon {used} does not exist"


def test_dockerfile_is_slim_non_root_and_serves_the_web():
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in {"root", "0"}
    assert 'CMD ["resmon", "web"' in text
    assert "pip install ." in text


def test_systemd_units_run_real_commands():
    commands = resmon_commands()
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {unit.name for unit in units} >= {"resmon-web.service", "resmon-collector.service"}
    for unit in units:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(unit)
        service = parser["Service"]
        argv = shlex.split(service["ExecStart"])
        assert argv[0].endswith("/resmon") and argv[1] in commands, unit.name
        assert service["User"] != "root"
        assert service["EnvironmentFile"] == "/etc/resmon/resmon.env"


def test_prometheus_config_scrapes_metrics():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["web:8000"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_prometheus_config():
    result = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(DEPLOY / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_dashboard_uses_only_exported_metric_names(db):
    dashboard = json.loads((DEPLOY / "grafana" / "resource-monitor.json").read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    used = {name for expr in expressions for name in re.findall(r"\bresmon_[a-z0-9_]+", expr)}
    from resourcemonitor.api.metrics import process_metrics_text

    exposition = metrics.render() + process_metrics_text()
    families = set(re.findall(r"^# TYPE (\S+) ", exposition, re.M))
    histogram_parts = {
        f"{family}{suffix}" for family in families for suffix in ("_bucket", "_sum", "_count")
    }
    unknown = sorted(used - families - histogram_parts)
    assert used and unknown == [], f"the Grafana dashboard queries unknown metrics: {unknown}"
