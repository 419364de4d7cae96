// The SLO page: re-read GET /api/v1/slo when the window or group changes (and every
// minute while visible), filter rows as you type, and draw a budget burn-down chart for a
// device on demand. Names, sites and groups land through textContent (h() never parses).

import { createClient } from "./api.js";
import { h, s } from "./dom.js";
import { clock, formatDuration } from "./format.js";
import { adaptivePoll } from "./poll.js";

const config = JSON.parse(document.getElementById("slo-config").textContent);
const api = createClient(config.api.replace(/\/$/, ""));
const form = document.querySelector("[data-testid=slo-form]");
const windowSelect = form.querySelector("[data-testid=slo-window]");
const groupInput = form.querySelector("[data-testid=slo-group]");
const filterInput = form.querySelector("[data-testid=slo-filter]");
const csvLink = form.querySelector("[data-testid=slo-csv]");
const errorBox = form.querySelector("[data-testid=slo-error]");
const deviceBody = document.querySelector("[data-testid=slo-table] tbody");
const groupBody = document.querySelector("[data-testid=slo-group-table] tbody");
const groupPanel = document.querySelector("[data-testid=slo-groups]");
const count = document.querySelector("[data-testid=slo-count]");
const updated = document.querySelector("[data-testid=last-updated] .updated__text");

const fixed = (value, digits, suffix = "") =>
  value === null || value === undefined ? "—" : `${value.toFixed(digits)}${suffix}`;

function budgetClass(remaining) {
  if (remaining === null || remaining === undefined) return "none";
  if (remaining <= 0) return "spent";
  return remaining < 50 ? "low" : "ok";
}

function exhaustedText(item) {
  if (item.exhausted_in_s === null) return "—";
  return item.exhausted_in_s <= 0 ? "spent" : formatDuration(item.exhausted_in_s);
}

function row(item, kind) {
  const place = kind === "device"
    ? `${item.site || "—"} · ${item.kind}`
    : `${item.devices} device${item.devices === 1 ? "" : "s"}`;
  return h(
    "tr",
    {
      dataset: {
        kind,
        id: kind === "device" ? String(item.id) : undefined,
        budget: budgetClass(item.budget_remaining_pct),
      },
    },
    h("td", { class: "name", text: item.name }),
    h("td", { text: place }),
    h("td", { class: "num", text: item.sli === null ? "not measured" : fixed(item.sli, 3, " %") }),
    h("td", { class: "num", text: `${+item.target.toFixed(3)} %` }),
    h("td", { class: "num", text: fixed(item.coverage, 1, " %") }),
    h("td", { class: "num budget", text: fixed(item.budget_remaining_pct, 1, " %") }),
    h("td", { class: "num", text: fixed(item.budget_remaining_min, 1) }),
    h("td", { class: "num", text: fixed(item.burn_rates["1h"], 2, "×") }),
    h("td", { class: "num", text: fixed(item.burn_rates["1d"], 2, "×") }),
    h("td", { class: "nowrap", text: exhaustedText(item) }),
    h(
      "td",
      null,
      kind === "device"
        ? h("button", {
            type: "button",
            class: "linklike",
            "data-action": "burndown",
            "aria-expanded": "false",
            text: "Burn-down",
          })
        : null,
    ),
  );
}

function render(body) {
  deviceBody.replaceChildren(...body.items.map((item) => row(item, "device")));
  if (!body.items.length) {
    deviceBody.append(h("tr", { class: "empty" }, h("td", { colspan: "11", text: "No devices." })));
  }
  groupBody.replaceChildren(...body.groups.map((item) => row(item, "group")));
  groupPanel.hidden = body.groups.length === 0;
  count.textContent = String(body.count);
  applyFilter();
}

function applyFilter() {
  const needle = filterInput.value.trim().toLowerCase();
  for (const tr of deviceBody.querySelectorAll("tr[data-kind]")) {
    const text = tr.cells[0].textContent + " " + tr.cells[1].textContent;
    tr.hidden = Boolean(needle) && !text.toLowerCase().includes(needle);
    const chart = tr.nextElementSibling;
    if (chart && chart.classList.contains("slo__chart-row")) chart.hidden = tr.hidden;
  }
}

// A 422's detail is a list of {loc, msg}: say "group: …" rather than show JSON.
function readable(message) {
  const match = /^(\d+) (\[.*\])$/s.exec(message);
  if (!match) return message;
  try {
    return JSON.parse(match[2]).map((item) => `${item.loc.at(-1)}: ${item.msg}`).join("; ");
  } catch {
    return message;
  }
}

function params() {
  const query = { window: windowSelect.value };
  if (groupInput.value.trim()) query.group = groupInput.value.trim();
  return query;
}

async function refresh() {
  const query = params();
  try {
    render(await api.get("/slo", query));
    errorBox.hidden = true;
    updated.textContent = `updated ${clock(new Date())}`;
  } catch (error) {
    errorBox.textContent = `Could not load the SLO report: ${readable(error.message)}`;
    errorBox.hidden = false;
    throw error;
  }
  csvLink.href = `${config.csv}?${new URLSearchParams(query)}`;
  const url = new URL(window.location.href);
  url.search = new URLSearchParams(query).toString();
  window.history.replaceState(null, "", url);
}

function burndownChart(points, { width = 640, height = 120 } = {}) {
  const values = points.map((p) => p.remaining_pct).filter((v) => v !== null);
  if (!values.length) return h("p", { class: "muted", text: "No checks in this window." });
  const top = Math.max(100, ...values);
  const bottom = Math.min(0, ...values);
  const times = points.map((p) => Date.parse(p.t));
  const t0 = times[0];
  const span = Math.max(1, times[times.length - 1] - t0);
  const x = (t) => 4 + ((t - t0) / span) * (width - 8);
  const y = (v) => 4 + ((top - v) / (top - bottom || 1)) * (height - 8);
  const path = points
    .map((p, i) => (p.remaining_pct === null ? null : `${x(times[i]).toFixed(1)},${y(p.remaining_pct).toFixed(1)}`))
    .filter(Boolean)
    .join(" L ");
  return s(
    "svg",
    {
      class: "slo__chart",
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": `Error budget remaining, from ${fixed(values[0], 1, " %")} to ${fixed(values[values.length - 1], 1, " %")}`,
    },
    s("line", { class: "slo__zero", x1: 0, x2: width, y1: y(0), y2: y(0) }),
    s("path", { class: "slo__line", d: `M ${path}` }),
  );
}

async function toggleBurndown(button) {
  const tr = button.closest("tr");
  const next = tr.nextElementSibling;
  if (next && next.classList.contains("slo__chart-row")) {
    next.remove();
    button.setAttribute("aria-expanded", "false");
    return;
  }
  const cell = h("td", { colspan: "11", text: "Loading…" });
  tr.after(h("tr", { class: "slo__chart-row", "data-testid": "slo-burndown" }, cell));
  button.setAttribute("aria-expanded", "true");
  try {
    const points = await api.get(`/devices/${tr.dataset.id}/slo/burndown`, { window: windowSelect.value });
    cell.replaceChildren(burndownChart(points));
  } catch (error) {
    cell.textContent = `Could not load the burn-down: ${error.message}`;
  }
}

// The first paint is the server's: the first poll comes one interval later.
const poller = adaptivePoll(refresh, { intervalMs: config.pollMs });
setTimeout(() => poller.runNow(), config.pollMs);

form.addEventListener("submit", (event) => {
  event.preventDefault();
  poller.runNow();
});
windowSelect.addEventListener("change", () => poller.runNow());
filterInput.addEventListener("input", applyFilter);
deviceBody.addEventListener("click", (event) => {
  const button = event.target.closest("[data-action=burndown]");
  if (button) toggleBurndown(button);
});

applyFilter();
document.body.dataset.loaded = "true";
