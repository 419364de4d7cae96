// The device drawer: details, last hour's latency, a status timeline and recent events.

import { latencyChart, statusSegments, timelineStrip } from "./charts.js";
import { h, setText } from "./dom.js";
import * as fmt from "./format.js";

const DETAIL_REFRESH_MS = 15000;

/** Error budget left, in words: a spent budget reads "exhausted", not "-5000 %". */
function budgetWords(percent) {
  if (percent === null || percent === undefined) return "—";
  return percent <= 0 ? "exhausted" : fmt.percent(percent, 1);
}
const WINDOWS = { "1h": 3600e3, "24h": 86400e3 };

export class Drawer {
  constructor(root, config, api, { onClose }) {
    this.root = root;
    this.config = config;
    this.meta = config.statusMeta;
    this.api = api;
    this.onClose = onClose;
    this.el = {
      drawer: root.querySelector('[data-testid="drawer"]'),
      title: root.querySelector('[data-testid="drawer-title"]'),
      status: root.querySelector('[data-testid="drawer-status"]'),
      body: root.querySelector('[data-testid="drawer-body"]'),
      close: root.querySelector('[data-testid="drawer-close"]'),
    };
    this.deviceId = null;
    this.device = null; // the list item, kept current by the poll
    this.detail = null;
    this.latency = null;
    this.events = [];
    this.window = "24h"; // the day at a glance; 1 h on demand
    this.loadedAt = 0;
    this.returnFocus = null;
    this.el.close.addEventListener("click", () => this.close());
    this.el.body.addEventListener("click", (event) => {
      const button = event.target.closest("[data-window]");
      if (button) {
        this.window = button.dataset.window;
        this.renderBody();
      }
    });
  }

  get isOpen() {
    return this.deviceId !== null;
  }

  open(device) {
    const switching = this.deviceId !== device.id;
    if (!this.isOpen) this.returnFocus = document.activeElement;
    this.deviceId = device.id;
    this.device = device;
    if (switching) {
      this.slo = null;
      this.incidents = null;
      this.detail = null;
      this.latency = null;
      this.events = [];
    }
    this.el.drawer.hidden = false;
    this.el.drawer.dataset.deviceId = device.id;
    document.body.classList.add("drawer-open");
    this.renderHead();
    this.renderBody();
    this.el.close.focus({ preventScroll: true });
    this.load();
  }

  close() {
    if (!this.isOpen) return;
    this.deviceId = null;
    this.device = null;
    this.el.drawer.hidden = true;
    delete this.el.drawer.dataset.deviceId;
    document.body.classList.remove("drawer-open");
    if (this.returnFocus && document.contains(this.returnFocus)) {
      this.returnFocus.focus({ preventScroll: true });
    }
    this.onClose();
  }

  /** Called by every poll with the current list item (or undefined if it is gone). */
  update(device) {
    if (!this.isOpen) return;
    if (!device) {
      this.close();
      return;
    }
    const previous = this.device;
    if (previous === device) return; // the store replaces an item when it changes
    this.device = device;
    this.renderHead();
    this.renderBody();
    // A new check only moves "last check" and latency (shown from the list item); a
    // state change also brings new events and chart points worth fetching at once.
    const moved = previous.status !== device.status || previous.flapping !== device.flapping ||
      previous.last_error !== device.last_error;
    if (moved || Date.now() - this.loadedAt > DETAIL_REFRESH_MS) this.load();
  }

  async load() {
    const id = this.deviceId;
    this.loadedAt = Date.now();
    try {
      const [detail, latency, events] = await Promise.all([
        this.api.get(`devices/${id}`),
        this.api.get(`devices/${id}/latency`, { minutes: 60 }),
        this.api.get("events", { device: id, limit: 1000 }),
      ]);
      if (id !== this.deviceId) return; // switched or closed meanwhile
      this.detail = detail;
      this.latency = latency;
      this.events = events.items;
      this.error = null;
    } catch (error) {
      if (id !== this.deviceId) return;
      this.error = error.message;
    }
    this.renderHead();
    this.renderBody();
    this.loadOptional(id);
  }

  // SLO figures and incidents come from other parts of the product: a server without
  // them (404), or a failure, leaves their sections out instead of breaking the drawer.
  async loadOptional(id) {
    const optional = (promise) => promise.catch(() => null);
    const [slo, incidents] = await Promise.all([
      optional(this.api.get(`devices/${id}/slo`)),
      optional(this.api.get("incidents", { device: id, state: "active", limit: 5 })),
    ]);
    if (id !== this.deviceId) return;
    this.slo = slo;
    this.incidents = incidents ? incidents.items : null;
    this.renderBody();
  }

  /** Edit, pause/resume and delete, for operators (config.manage is absent otherwise). */
  actions(device) {
    const manage = this.config.manage;
    if (!manage) return null;
    const url = (template) => template.replace("/0/", `/${device.id}/`);
    const pause = h("button", {
      type: "button", class: "button", "data-testid": "drawer-pause",
      text: device.enabled ? "Pause checks" : "Resume checks",
    });
    pause.addEventListener("click", () => {
      const form = document.getElementById("device-action-form");
      form.action = url(manage.pause);
      form.elements.enabled.value = device.enabled ? "0" : "1";
      form.submit();
    });
    return h("section", { class: "drawer__section drawer__actions" },
      h("a", { class: "button", href: url(manage.edit), "data-testid": "drawer-edit", text: "Edit" }),
      pause,
      h("a", { class: "button button--danger", href: url(manage.delete), "data-testid": "drawer-delete", text: "Delete…" }));
  }

  sloSection() {
    if (!this.slo || !this.slo.windows?.length) return null;
    const table = h("table", { class: "grid grid--slo", "data-testid": "drawer-slo" },
      h("thead", null, h("tr", null,
        h("th", { scope: "col", text: "Window" }), h("th", { scope: "col", class: "num", text: "Availability" }),
        h("th", { scope: "col", class: "num", text: "Target" }), h("th", { scope: "col", class: "num", text: "Budget left" }))));
    const body = h("tbody");
    for (const window of this.slo.windows) {
      const met = window.sli === null || window.sli >= window.target;
      body.append(h("tr", { dataset: { met: String(met) } },
        h("th", { scope: "row", text: window.window }),
        h("td", { class: "num", text: window.sli === null ? "—" : fmt.percent(window.sli, 3) }),
        h("td", { class: "num", text: fmt.percent(window.target, 2) }),
        h("td", { class: `num${met ? "" : " slo--missed"}`, text: budgetWords(window.budget_remaining_pct) })));
    }
    table.append(body);
    return this.section("SLO", table);
  }

  incidentSection() {
    if (!this.incidents || !this.incidents.length) return null;
    const list = h("ul", { class: "incidents", "data-testid": "drawer-incidents" });
    for (const incident of this.incidents) {
      const href = this.config.incidentsUrl ? `${this.config.incidentsUrl}#incident-${incident.id}` : null;
      list.append(h("li", null,
        href ? h("a", { href, text: incident.title || `Incident ${incident.id}` }) : incident.title,
        ` — ${incident.state}, opened ${fmt.since(incident.opened_at)} ago`));
    }
    return this.section("Open incident", list);
  }

  renderHead() {
    const device = this.detail ? { ...this.detail, ...this.device } : this.device;
    const meta = this.meta[device.status];
    this.el.status.dataset.status = device.status;
    this.el.status.replaceChildren(h("span", { class: "glyph", "aria-hidden": "true", text: meta.icon }), meta.label);
    setText(this.el.title, device.name);
  }

  section(title, ...content) {
    return h("section", { class: "drawer__section" }, h("h3", { text: title }), ...content);
  }

  facts(pairs) {
    const dl = h("dl", { class: "facts" });
    for (const [term, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      dl.append(h("dt", { text: term }), h("dd", null, value));
    }
    return dl;
  }

  renderBody() {
    if (!this.isOpen) return;
    const device = this.device;
    const detail = this.detail;
    const kinds = this.config.kinds;
    const parts = [];
    if (this.error) parts.push(h("p", { class: "drawer__error", role: "alert", text: `Could not load details: ${this.error}` }));

    const problem = fmt.describeProblem(device);
    const since = device.since ? `${fmt.since(device.since)} (since ${fmt.dateTime(device.since)})` : "—";
    parts.push(this.section(
      "Now",
      this.facts([
        ["Status", `${this.meta[device.status].label}${device.flapping ? ", flapping" : ""}${device.stale ? ", stale" : ""}`],
        device.stale && device.last_known_status ? ["Last known", this.meta[device.last_known_status].label] : [null],
        ["For", since],
        ["Last check", device.last_check_at ? `${fmt.since(device.last_check_at)} ago` : "never"],
        ["Latency", fmt.latency(device.latency_ms)],
        ["Problem", problem || null],
      ]),
    ));

    const incidents = this.incidentSection();
    if (incidents) parts.push(incidents);
    parts.push(this.section("Latency, last hour", this.latencyBlock(detail)));
    parts.push(this.timelineSection(device));
    const slo = this.sloSection();
    if (slo) parts.push(slo);

    parts.push(this.section(
      "Device",
      this.facts([
        ["Address", h("span", { class: "mono", text: device.address })],
        ["Kind", kinds[device.kind] || device.kind],
        ["Site", device.site || "—"],
        ["Parent", device.parent_name || "—"],
        ["Children", detail ? String(detail.children_count) : null],
        ["Tags", device.tags.length ? device.tags.join(", ") : "—"],
        ["Checks", device.enabled ? "enabled" : "paused"],
      ]),
    ));

    if (detail) {
      const check = detail.check;
      const method = this.config.checkMethods[check.method] || check.method;
      const target = check.method === "http"
        ? `${check.tls ? "https" : "http"}://${device.address}${check.port ? `:${check.port}` : ""}${check.path}`
        : check.port ? `${device.address}:${check.port}` : device.address;
      parts.push(this.section(
        "Check",
        this.facts([
          ["Method", method],
          ["Target", h("span", { class: "mono", text: target })],
          ["Every", `${fmt.seconds(check.interval_s)}, timeout ${fmt.seconds(check.timeout_s)}`],
          ["Down after", `${check.fail_threshold} failed check${check.fail_threshold === 1 ? "" : "s"}`],
          ["Up after", `${check.recover_threshold} good check${check.recover_threshold === 1 ? "" : "s"}`],
          ["Degraded above", check.latency_threshold_ms === null ? "—" : fmt.latency(check.latency_threshold_ms)],
          check.method === "http" ? ["Expect", `HTTP ${check.expect_status}${check.body_match ? `, body contains “${check.body_match}”` : ""}`] : [null],
          ["SLO target", fmt.percent(detail.slo_target, 3).replace(/\.?0+ %$/, " %")],
        ]),
      ));
      parts.push(this.section("Recent events", this.eventList(detail.recent_events)));
    } else if (!this.error) {
      parts.push(h("p", { class: "muted", text: "Loading details…" }));
    }
    const actions = this.actions(device);
    if (actions) parts.push(actions);
    this.el.body.replaceChildren(...parts);
  }

  latencyBlock(detail) {
    if (!this.latency) return h("p", { class: "muted", text: "Loading…" });
    const points = this.latency.items;
    const chart = latencyChart(points, { start: this.latency.start, end: this.latency.end });
    const checks = points.reduce((sum, p) => sum + p.count, 0);
    const ok = points.reduce((sum, p) => sum + p.ok, 0);
    const summary = [];
    if (checks) {
      const availability = (100 * ok) / checks;
      summary.push(`${fmt.percent(availability, availability === 100 ? 0 : 2)} of ${checks} checks answered`);
      if (detail) {
        const met = availability >= detail.slo_target;
        summary.push(met ? `meets its ${detail.slo_target} % target` : `below its ${detail.slo_target} % target`);
      }
    }
    return h(
      "div",
      null,
      chart,
      h("p", { class: "chart__legend" },
        h("span", { class: "key key--avg" }), "average ",
        h("span", { class: "key key--max" }), "maximum ",
        h("span", { class: "key key--fail" }), "failed checks",
      ),
      summary.length ? h("p", { class: "muted", "data-testid": "availability", text: summary.join(" — ") }) : null,
    );
  }

  timelineSection(device) {
    const span = WINDOWS[this.window];
    const now = Date.now();
    const toggle = h("span", { class: "mini-toggle", role: "group", "aria-label": "Timeline period" },
      ...Object.keys(WINDOWS).map((key) => h("button", {
        type: "button", dataset: { window: key }, "aria-pressed": String(key === this.window), text: key.replace("h", " h"),
      })));
    const head = h("h3", null, "Status timeline ", toggle);
    const current = this.events.length ? this.events[0].to_status : device.last_known_status || device.status;
    const segments = statusSegments(this.events, current, now - span, now);
    const strip = timelineStrip(segments, this.meta, { start: now - span, end: now });
    const changes = segments.length - 1;
    const words = changes
      ? `${changes} change${changes === 1 ? "" : "s"} in the last ${this.window.replace("h", " h")}`
      : `${this.meta[segments[0].status]?.label || segments[0].status} for the whole period`;
    return h("section", { class: "drawer__section" }, head, strip, h("p", { class: "muted", text: words }));
  }

  eventList(events) {
    if (!events.length) return h("p", { class: "muted", text: "No state changes recorded." });
    const list = h("ol", { class: "events", "data-testid": "drawer-events" });
    for (const event of events) {
      const from = this.meta[event.from_status];
      const to = this.meta[event.to_status];
      list.append(h(
        "li", null,
        h("time", { datetime: event.at, title: fmt.dateTime(event.at), text: `${fmt.since(event.at)} ago` }),
        h("span", { class: "events__change" },
          h("span", { class: "pill pill--small", dataset: { status: event.from_status } }, h("span", { class: "glyph", "aria-hidden": "true", text: from.icon }), from.label),
          " → ",
          h("span", { class: "pill pill--small", dataset: { status: event.to_status } }, h("span", { class: "glyph", "aria-hidden": "true", text: to.icon }), to.label),
        ),
        event.message ? h("span", { class: "events__message", text: event.message }) : null,
      ));
    }
    return list;
  }
}
