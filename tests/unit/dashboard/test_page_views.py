"""The dashboard shell's hooks for the views, time travel and the module preloads."""

from __future__ import annotations

import re
from pathlib import Path

from resourcemonitor.dashboard.views import MODULES, TABLE_COLUMNS

JS_DIR = Path(__file__).resolve().parents[3] / "resourcemonitor/dashboard/static"


def test_shell_has_every_view_and_the_time_slider(client, public, network):
    html = client.get("/").content.decode()
    for hook in (
        "view-tiles",
        "view-table",
        "view-groups",
        "view-topology",
        "groups",
        "topology",
        "timetravel-range",
        "history-banner",
    ):
        assert f'data-testid="{hook}"' in html, hook
    for key, _label in TABLE_COLUMNS:
        assert f'data-col="{key}"' in html and f'data-sort="{key}"' in html


def test_preloads_name_every_module_main_imports(client, public, network):
    html = client.get("/").content.decode()
    preloaded = set(re.findall(r'rel="modulepreload" href="[^"]*/(dashboard/js/\w+\.js)"', html))
    assert preloaded == set(MODULES)
    for module in MODULES:
        assert (JS_DIR / module).is_file(), module
    # Every module the dashboard's scripts import is preloaded (a missing one costs a round trip).
    imported = set()
    for module in [*MODULES, "dashboard/js/main.js"]:
        imported |= set(re.findall(r'from "\./(\w+)\.js"', (JS_DIR / module).read_text()))
    assert {f"dashboard/js/{name}.js" for name in imported} <= set(MODULES)


def test_title_counts_problems_at_first_paint(client, public, network):
    from tests.unit.api.helpers import set_state

    set_state(network.core, "down")
    set_state(network.pc, "unreachable")
    html = client.get("/").content.decode()
    assert "<title>(2) Resource Monitor</title>" in html
