// The system page: poll GET /api/v1/system and redraw the components table.
// Every value from a component lands through textContent (h() never parses markup).

import { createClient } from "./api.js";
import { h, setText } from "./dom.js";
import { clock, formatDuration } from "./format.js";
import { adaptivePoll } from "./poll.js";

const config = JSON.parse(document.getElementById("system-config").textContent);
const api = createClient(config.api.replace(/\/$/, ""));
const tbody = document.querySelector("[data-testid=component-table] tbody");
const updated = document.querySelector("[data-testid=last-updated] .updated__text");
const collectors = document.querySelector("[data-testid=collectors-alive]");
const banner = document.querySelector("[data-testid=no-collector-banner]");
const deadman = document.querySelector("[data-testid=deadman] .deadman__text");

const dash = (value, suffix = "") =>
  value === null || value === undefined ? "—" : `${value}${suffix}`;

function row(component) {
  const status = component.alive ? "up" : "down";
  const errors = component.recent_errors.length
    ? component.recent_errors.join("; ")
    : component.last_error;
  return h(
    "tr",
    { dataset: { instance: component.instance, status } },
    h("td", { class: "name", text: component.component }),
    h("td", { class: "nowrap", text: component.instance }),
    h(
      "td",
      null,
      h(
        "span",
        { class: "pill pill--small", dataset: { status } },
        h("span", { class: "glyph", "aria-hidden": "true", text: component.alive ? "●" : "✖" }),
        component.alive ? "reporting" : component.stopped ? "stopped" : "not reporting",
      ),
    ),
    h("td", { text: component.version }),
    h("td", { class: "nowrap", text: `${formatDuration(component.age_s)} ago` }),
    h("td", { text: dash(component.rate_per_s) }),
    h("td", {
      text: component.lag_p99_ms === null ? "—" : `${component.lag_p99_ms.toFixed(1)} ms`,
    }),
    h("td", { text: dash(component.spool) }),
    h("td", { text: dash(component.queue_depth) }),
    h("td", { text: dash(component.errors_total) }),
    h("td", { class: "error", text: errors }),
  );
}

function render(status) {
  const rows = status.components.map(row);
  if (!rows.length) {
    rows.push(h("tr", { class: "empty" }, h("td", { colspan: "11", text: "No component has reported yet." })));
  }
  tbody.replaceChildren(...rows);
  setText(collectors, status.collectors_alive);
  banner.hidden = status.collectors_alive > 0;
  const man = status.deadman;
  setText(
    deadman,
    !man.configured
      ? "Not configured (set RESMON_DEADMAN_URL)."
      : man.last_ping_at
        ? `Last ping ${man.last_ping_at}: ${man.last_result}`
        : "Configured; not pinged yet.",
  );
  setText(updated, `Updated ${clock(new Date())}`);
}

const poller = adaptivePoll(
  async () => {
    try {
      render(await api.get("/system"));
    } catch (error) {
      setText(updated, `Update failed: ${error.message}`);
      throw error;
    }
  },
  { intervalMs: config.pollMs },
);
poller.runNow();
