// The dashboard's entry point: read the page's config, load every device once, then poll
// for changes every couple of seconds while the tab is visible.
//
//   main.js    wiring: filters, URL state, polling, keyboard
//   store.js   the client's device list (full load + changed_since merges, filter, sort)
//   views.js   counts, problems panel, tiles, table (node reuse, patch in place)
//   structure.js  the grouped (site, kind) and topology (parent/child) views
//   drawer.js  the device side panel; charts.js its SVG latency chart and timeline
//   api.js     fetch with timeouts; poll.js visible-only polling with back-off
//   dom.js     element builders (text only, never innerHTML); format.js words and numbers

import { createClient } from "./api.js";
import { h, setText } from "./dom.js";
import { Drawer } from "./drawer.js";
import * as fmt from "./format.js";
import { adaptivePoll } from "./poll.js";
import { Store } from "./store.js";
import { Views } from "./views.js";

const config = JSON.parse(document.getElementById("dashboard-config").textContent);
const api = createClient(config.api);
const store = new Store(config.statusMeta);
const views = new Views(document, config, store);
const FILTERS = ["q", "status", "kind", "site", "tag"];
const VIEWS = ["tiles", "table", "groups", "topology"];
const BENCH = new URLSearchParams(location.search).has("bench");
const filters = { q: "", status: "", kind: "", site: "", tag: "" };
let lastFullLoad = 0;
let lastSuccess = null;
let failingSince = null;

const el = {
  toolbar: document.querySelector('[data-testid="toolbar"]'),
  search: document.querySelector('[data-testid="search"]'),
  selects: Object.fromEntries(
    ["status", "kind", "site", "tag"].map((name) => [name, document.querySelector(`[data-testid="filter-${name}"]`)]),
  ),
  clear: document.querySelector('[data-testid="clear-filters"]'),
  counts: document.querySelector('[data-testid="status-counts"]'),
  updated: document.querySelector('[data-testid="last-updated"]'),
  updatedText: document.querySelector(".updated__text"),
  staleBanner: document.querySelector('[data-testid="stale-banner"]'),
  errorBanner: document.querySelector('[data-testid="error-banner"]'),
};

// --- filters and URL state ---------------------------------------------------------------

function readUrl() {
  const params = new URLSearchParams(location.search);
  for (const name of FILTERS) filters[name] = params.get(name) || "";
  views.view = VIEWS.includes(params.get("view")) ? params.get("view") : "tiles";
  const minutes = Number(params.get("at"));
  timeTravel.minutes = Number.isInteger(minutes) && minutes < 0 && minutes >= -MAX_BACK_MIN ? minutes : 0;
  const device = Number(params.get("device"));
  return Number.isInteger(device) && device > 0 ? device : null;
}

function writeUrl() {
  const params = new URLSearchParams();
  for (const name of FILTERS) if (filters[name]) params.set(name, filters[name]);
  if (views.view !== "tiles") params.set("view", views.view);
  if (timeTravel.minutes) params.set("at", timeTravel.minutes);
  if (drawer.isOpen) params.set("device", drawer.deviceId);
  const query = params.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
}

function ensureOption(select, value, label = value) {
  if (value && ![...select.options].some((option) => option.value === value)) {
    select.append(h("option", { value, text: label }));
  }
}

function fillSelect(select, values, labels = {}) {
  const current = select.value || filters[select.name];
  const fragment = document.createDocumentFragment();
  fragment.append(h("option", { value: "", text: "All" }));
  for (const value of values) fragment.append(h("option", { value, text: labels[value] || value }));
  select.replaceChildren(fragment);
  ensureOption(select, current); // a bookmarked filter survives even if nothing matches now
  select.value = current;
}

function refreshSelects() {
  fillSelect(el.selects.kind, store.distinct("kind"), config.kinds);
  fillSelect(el.selects.site, store.distinct("site"));
  fillSelect(el.selects.tag, store.distinct("tags"));
}

function syncControls() {
  if (el.search.value !== filters.q) el.search.value = filters.q;
  for (const [name, select] of Object.entries(el.selects)) {
    ensureOption(select, filters[name]);
    select.value = filters[name];
  }
  for (const button of el.counts.querySelectorAll(".count")) {
    const value = button.dataset.flag || button.dataset.status;
    button.setAttribute("aria-pressed", String(filters.status === value));
  }
  for (const button of el.toolbar.querySelectorAll("[data-view]")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === views.view));
  }
  el.clear.hidden = !FILTERS.some((name) => filters[name]);
}

function rerender(changed = null) {
  performance.mark("resmon:filter-start");
  views.matches = store.matcher(filters);
  views.render(store.select(filters), changed);
  // The benchmark reads this measure; with ?bench=1 it includes style and layout.
  if (BENCH) void document.body.offsetHeight;
  performance.measure("resmon:filter", "resmon:filter-start");
  showProblemCount();
}

// --- the tab: title and favicon carry the number of problems -------------------------------

let shownProblems = -1;
const favicon = document.querySelector('link[rel="icon"]');
function showProblemCount() {
  if (store.history) return; // the past does not change the tab
  const problems = store.problemCount;
  if (problems === shownProblems) return;
  shownProblems = problems;
  document.title = problems ? `(${problems}) Resource Monitor` : "Resource Monitor";
  favicon.type = "image/svg+xml";
  favicon.href = `${config.faviconUrl}?problems=${problems}`;
}

function setFilter(name, value) {
  if (filters[name] === value) return;
  filters[name] = value;
  views.el.tableWrap.scrollTop = 0;
  syncControls();
  writeUrl();
  rerender();
}

// Typing filters on the next frame, so a fast typist does not queue 10 re-renders.
let searchFrame = 0;
el.search.addEventListener("input", () => {
  cancelAnimationFrame(searchFrame);
  searchFrame = requestAnimationFrame(() => setFilter("q", el.search.value));
});
el.toolbar.addEventListener("submit", (event) => event.preventDefault());
for (const [name, select] of Object.entries(el.selects)) {
  select.addEventListener("change", () => setFilter(name, select.value));
}
el.clear.addEventListener("click", () => {
  for (const name of FILTERS) filters[name] = "";
  views.el.tableWrap.scrollTop = 0;
  syncControls();
  writeUrl();
  rerender();
});
el.counts.addEventListener("click", (event) => {
  const button = event.target.closest(".count");
  if (!button) return;
  const value = button.dataset.flag || button.dataset.status;
  setFilter("status", filters.status === value ? "" : value);
});
el.toolbar.addEventListener("click", (event) => {
  const button = event.target.closest("[data-view]");
  if (!button || views.view === button.dataset.view) return;
  views.view = button.dataset.view;
  syncControls();
  writeUrl();
  rerender();
  refreshGroupSlo();
});
document.querySelector('[data-testid="groups"]').addEventListener("click", (event) => {
  const button = event.target.closest("[data-filter-site]");
  if (!button) return;
  filters.site = button.dataset.filterSite;
  filters.kind = button.dataset.filterKind || "";
  views.view = "tiles";
  syncControls();
  writeUrl();
  rerender();
});
document.querySelector('[data-testid="problems-more"]').addEventListener("click", () => {
  views.view = "table";
  filters.status = "problems";
  views.el.tableWrap.scrollTop = 0;
  syncControls();
  writeUrl();
  rerender();
  document.querySelector('[data-testid="devices"]').scrollIntoView({ block: "start" });
});

// --- the drawer ------------------------------------------------------------------------------

const drawer = new Drawer(document, config, api, { onClose: () => writeUrl() });

function openDevice(id) {
  const device = store.devices.get(id);
  if (!device) return;
  drawer.open(device);
  writeUrl();
}

document.querySelector("main").addEventListener("click", (event) => {
  const target = event.target.closest("[data-device-id]");
  if (target) openDevice(Number(target.dataset.deviceId));
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && drawer.isOpen) {
    drawer.close();
    return;
  }
  const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement?.tagName);
  if (event.key === "/" && !typing) {
    event.preventDefault();
    el.search.focus();
    el.search.select();
  } else if (event.key === "Enter" && !typing && document.activeElement?.matches("[data-device-id]:not(button)")) {
    // Else the Enter goes on to the drawer's close button, focused by open(): it clicks.
    event.preventDefault();
    openDevice(Number(document.activeElement.dataset.deviceId));
  } else if ((event.key === "j" || event.key === "k") && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
    event.preventDefault();
    moveCursor(event.key === "j" ? 1 : -1);
  }
});

/** j/k: the next or previous device in the page's order (problems, then the view). */
function moveCursor(step) {
  // The table holds only the rows in view: step through its order, not its DOM.
  const active = document.activeElement;
  if (views.view === "table" && active?.closest?.('[data-testid="device-table-body"]')) {
    const next = views.tableStep(Number(active.dataset.deviceId), step);
    if (next) {
      next.focus({ preventScroll: true });
      if (drawer.isOpen) openDevice(Number(next.dataset.deviceId));
      return;
    }
  }
  const items = [...document.querySelectorAll("main [data-device-id]")].filter((node) => node.offsetParent !== null);
  if (!items.length) return;
  const index = items.indexOf(document.activeElement);
  const next = items[index < 0 ? (step > 0 ? 0 : items.length - 1) : Math.min(items.length - 1, Math.max(0, index + step))];
  if (!next.hasAttribute("tabindex") && next.tagName !== "BUTTON") next.setAttribute("tabindex", "-1");
  next.focus();
  next.scrollIntoView({ block: "nearest" });
  if (drawer.isOpen) openDevice(Number(next.dataset.deviceId));
}

// --- time travel: the network as it was, up to a day back ----------------------------------

const MAX_BACK_MIN = 1440;
const timeTravel = {
  minutes: 0,
  range: document.querySelector('[data-testid="timetravel-range"]'),
  value: document.querySelector('[data-testid="timetravel-value"]'),
  live: document.querySelector('[data-testid="timetravel-now"]'),
  banner: document.querySelector('[data-testid="history-banner"]'),
  request: 0,
};

function timeTravelWords(minutes) {
  if (!minutes) return "now";
  const at = new Date(Date.now() + minutes * 60e3);
  return `${fmt.formatDuration(-minutes * 60)} ago (${fmt.clockShort(at)})`;
}

async function travel(minutes) {
  timeTravel.minutes = minutes;
  timeTravel.range.value = String(minutes);
  const words = timeTravelWords(minutes);
  setText(timeTravel.value, words);
  timeTravel.range.setAttribute("aria-valuetext", words);
  timeTravel.live.hidden = !minutes;
  writeUrl();
  const request = ++timeTravel.request;
  if (!minutes) {
    store.setHistory(null);
    timeTravel.banner.hidden = true;
    document.body.classList.remove("time-travel");
    rerender(new Set(store.devices.keys()));
    return;
  }
  const at = new Date(Date.now() + minutes * 60e3);
  let answer;
  try {
    answer = await api.get("devices/status-at", { t: at.toISOString() });
  } catch (error) {
    showConnection(error);
    return;
  }
  if (request !== timeTravel.request) return; // the slider moved on meanwhile
  store.setHistory(answer);
  document.body.classList.add("time-travel");
  setText(timeTravel.banner.querySelector(".banner__text"),
    `Showing the network as it was at ${fmt.dateTime(answer.at)}, rebuilt from recorded state changes. Live updates are paused.`);
  timeTravel.banner.hidden = false;
  rerender(new Set(store.devices.keys()));
}

let travelTimer = 0;
timeTravel.range.addEventListener("input", () => {
  const minutes = Number(timeTravel.range.value);
  setText(timeTravel.value, timeTravelWords(minutes));
  clearTimeout(travelTimer);
  travelTimer = setTimeout(() => travel(minutes), 150);
});
timeTravel.live.addEventListener("click", () => travel(0));

// --- polling -----------------------------------------------------------------------------------

function showCollector(collector) {
  const stale = !collector.alive;
  el.staleBanner.hidden = !stale;
  document.body.classList.toggle("collector-stale", stale);
  if (stale) {
    setText(
      el.staleBanner.querySelector(".banner__text"),
      collector.last_seen_at
        ? `Collector not reporting since ${fmt.clock(collector.last_seen_at)} (${fmt.since(collector.last_seen_at)} ago) — showing last known state`
        : "No collector has reported yet — showing last known state",
    );
  }
}

function showConnection(error) {
  if (!error) {
    failingSince = null;
    el.errorBanner.hidden = true;
    el.updated.classList.remove("updated--failing");
    setText(el.updatedText, `Updated ${fmt.clock(lastSuccess)}`);
    return;
  }
  failingSince = failingSince || new Date();
  el.updated.classList.add("updated--failing");
  setText(el.updatedText, lastSuccess ? `Last update ${fmt.clock(lastSuccess)}` : "Not loaded");
  const text = el.errorBanner.querySelector(".banner__text");
  if (error.status === 401 || error.status === 403) {
    text.replaceChildren(
      "Your session has ended. ",
      h("a", { href: `${config.loginUrl}?next=${encodeURIComponent(location.pathname + location.search)}`, text: "Log in" }),
      " to keep watching.",
    );
  } else {
    setText(text, `Cannot reach the server since ${fmt.clock(failingSince)} (${error.message}) — retrying; showing the last data received`);
  }
  el.errorBanner.hidden = false;
}

// Open incidents, to link each problem to its own: every few polls, and optional (a
// server without the incidents API, or an error, simply shows no links).
const INCIDENT_EVERY = 5;
let pollCount = 0;
async function refreshIncidents() {
  if (!config.incidentsUrl || pollCount++ % INCIDENT_EVERY) return;
  try {
    const answer = await api.get("incidents", { state: "active", limit: 1000 });
    views.incidentByDevice = new Map(answer.items.map((incident) => [incident.device_id, incident]));
  } catch {
    views.incidentByDevice = null;
  }
}

// The grouped view's SLO roll-up: when that view is shown, at most once a minute (its
// figures come from rollups and move slowly). Optional, like the incidents.
const GROUP_SLO_EVERY_MS = 60_000;
const GROUP_SLO_WINDOW = "30d";
let groupSloAt = 0;
async function refreshGroupSlo() {
  if (views.view !== "groups" || Date.now() - groupSloAt < GROUP_SLO_EVERY_MS) return;
  groupSloAt = Date.now();
  try {
    const answer = await api.get("summary/groups", { window: GROUP_SLO_WINDOW });
    views.groupSloWindow = answer.window;
    views.groupSlo = new Map(answer.groups.map((group) => [`${group.site || ""}\u0000${group.kind || ""}`, group]));
  } catch {
    views.groupSlo = null; // the column says "—"; asked again in a minute
    return;
  }
  if (views.view === "groups" && store.cursor !== null) rerender();
}

async function poll() {
  const full = store.cursor === null || store.needsReload || Date.now() - lastFullLoad > config.fullRefreshMs;
  const params = { limit: 10000 };
  if (!full) params.changed_since = store.cursor;
  let list, summary;
  try {
    [list, summary] = await Promise.all([api.get("devices", params), api.get("summary"), refreshIncidents()]);
    refreshGroupSlo();
  } catch (error) {
    showConnection(error);
    throw error;
  }
  lastSuccess = new Date();
  const first = !document.body.dataset.loaded;
  if (first) performance.mark("resmon:first-data");
  if (store.history) {
    // The past is on screen: keep the data current underneath, show it when back to live.
    if (full) store.replaceAll(list);
    else store.applyChanges(list);
    store.setHistory({ at: store.history.at, items: [...store.history.statuses.values()] });
    views.renderSummary(summary);
    showConnection(null);
    return;
  }
  if (full) {
    store.replaceAll(list);
    lastFullLoad = Date.now();
    views.prune();
    refreshSelects();
    syncControls();
    rerender(new Set(store.devices.keys()));
    if (drawer.isOpen) drawer.update(store.devices.get(drawer.deviceId));
  } else {
    const { layout, inventory, changed } = store.applyChanges(list);
    if (layout) {
      performance.mark("resmon:update-start");
      if (inventory) refreshSelects();
      rerender(changed);
      performance.measure("resmon:update", "resmon:update-start");
    } else if (changed.size) {
      performance.mark("resmon:update-start");
      views.patch(changed);
      performance.measure("resmon:update", "resmon:update-start");
    }
    if (drawer.isOpen) drawer.update(store.devices.get(drawer.deviceId));
    if (store.needsReload) poller.runNow();
  }
  views.renderSummary(summary);
  showCollector(summary.collector);
  showConnection(null);
  if (first && timeTravel.minutes) travel(timeTravel.minutes);
  if (first) {
    // For benchmarks: navigation → data → rendered, readable with performance.getEntries().
    performance.mark("resmon:first-render");
    document.body.dataset.loaded = "true";
  }
}

// The drawer sits under the top bar, whose height changes as it wraps.
const topbar = document.querySelector(".topbar");
new ResizeObserver(() => {
  document.documentElement.style.setProperty("--topbar-height", `${topbar.offsetHeight}px`);
}).observe(topbar);

const initialDevice = readUrl();
syncControls();
const poller = adaptivePoll(poll, { intervalMs: config.pollMs });
poller.runNow();
setInterval(() => {
  if (!document.hidden) views.tick();
}, 1000);

// bench/dashboard.py: apply a poll that changed `n` devices, as the page would, and say
// how long it took including style and layout. Only with ?bench=1 in the URL.
if (BENCH) {
  window.__resmonBench = {
    views, store, // for poking at the page from a profiler (bench only)
    // Applied in a task of its own (as a poll's answer is), so that a PerformanceObserver
    // for long tasks sees it; the duration lands in `last`.
    later(n) {
      setTimeout(() => { this.last = this.update(n); }, 0);
    },
    update(n) {
      const start = performance.now();
      // Spread over the whole order (the worst case: every section and chunk moves).
      const all = [...store.devices.values()];
      const every = Math.max(1, Math.floor(all.length / n));
      const items = all.filter((_, i) => i % every === 0).slice(0, n).map((device) => ({
        ...device.live, ...device, ...{ live: undefined },
        status: device.status === "up" ? "degraded" : "up",
        latency_ms: (device.latency_ms || 1) + 1,
      }));
      const { layout, inventory, changed } = store.applyChanges({ items, count: items.length, now: store.cursor });
      if (inventory) refreshSelects();
      if (layout) rerender(changed);
      else views.patch(changed);
      document.body.offsetHeight; // force style and layout inside the measurement
      return performance.now() - start;
    },
  };
}

if (initialDevice) {
  // Open a bookmarked device once the first load has it.
  const wait = setInterval(() => {
    if (store.devices.has(initialDevice)) {
      clearInterval(wait);
      openDevice(initialDevice);
      if (views.view === "table") views.revealTableRow(initialDevice);
    } else if (store.cursor !== null) {
      clearInterval(wait);
    }
  }, 50);
}
