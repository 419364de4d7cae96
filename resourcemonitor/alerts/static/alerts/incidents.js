// The incidents page: polls /api/v1/incidents, renders with textContent only (device
// names come from devices and feeds), acknowledges with the session's CSRF token.
import { adaptivePoll } from "../dashboard/js/poll.js";

const config = JSON.parse(document.getElementById("incidents-config").textContent);
const tbody = document.querySelector("[data-testid=incidents-table] tbody");
const empty = document.querySelector("[data-testid=incidents-empty]");
const errorBox = document.querySelector("[data-testid=incidents-error]");
const detail = document.querySelector("[data-testid=incident-detail]");
let state = "active";
let selected = null;

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
  return td;
}

function when(iso) {
  return iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—";
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function getJson(path, options = {}) {
  const response = await fetch(config.api + path, { credentials: "same-origin", ...options });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`);
  return body;
}

function stateLabel(item) {
  if (item.state === "acknowledged") return `acknowledged by ${item.acknowledged_by || "?"}`;
  if (item.state === "resolved") return item.suppressed_reason ? `closed: ${item.suppressed_reason}` : "resolved";
  return item.notified_at ? "open, notified" : "open, waiting";
}

function render(items) {
  tbody.replaceChildren();
  empty.hidden = items.length > 0;
  for (const item of items) {
    const row = document.createElement("tr");
    row.dataset.id = item.id;
    cell(row, when(item.opened_at));
    cell(row, item.severity, `sev--${item.severity}`);
    const title = cell(row, item.title);
    title.title = item.summary;
    cell(row, stateLabel(item));
    cell(row, `${item.notifications_sent} sent` + (item.notifications_pending ? `, ${item.notifications_pending} pending` : "") + (item.notifications_failed ? `, ${item.notifications_failed} failed` : ""));
    cell(row, String(item.flap_count));
    const actions = document.createElement("td");
    const show = document.createElement("button");
    show.type = "button";
    show.textContent = "Details";
    show.addEventListener("click", () => showDetail(item.id));
    actions.append(show);
    if (config.canAck && item.state === "open") {
      const ack = document.createElement("button");
      ack.type = "button";
      ack.textContent = "Acknowledge";
      ack.dataset.testid = "ack";
      ack.addEventListener("click", () => acknowledge(item.id));
      actions.append(" ", ack);
    }
    row.append(actions);
    tbody.append(row);
  }
}

async function refresh() {
  const query = state ? `?state=${state}&limit=200` : "?limit=200";
  try {
    const data = await getJson(`incidents${query}`);
    errorBox.hidden = true;
    render(data.items);
    if (selected !== null) await showDetail(selected);
  } catch (error) {
    errorBox.textContent = `Could not load incidents: ${error.message}`;
    errorBox.hidden = false;
    throw error;
  }
}

async function showDetail(id) {
  selected = id;
  const item = await getJson(`incidents/${id}`);
  detail.hidden = false;
  detail.querySelector(".incident-detail__title").textContent = `#${item.id} ${item.title}`;
  const timeline = detail.querySelector(".incident-detail__timeline");
  timeline.replaceChildren(
    ...item.timeline.map((entry) => {
      const li = document.createElement("li");
      li.textContent = `${when(entry.at)} ${entry.kind}: ${entry.message}`;
      return li;
    }),
  );
  const deliveries = detail.querySelector(".incident-detail__deliveries tbody");
  deliveries.replaceChildren(
    ...item.deliveries.map((d) => {
      const row = document.createElement("tr");
      cell(row, d.channel);
      cell(row, d.kind);
      cell(row, d.status + (d.sent_at ? ` ${when(d.sent_at)}` : ""));
      cell(row, String(d.attempts));
      cell(row, d.last_error || "");
      return row;
    }),
  );
}

async function acknowledge(id) {
  const note = window.prompt("Acknowledge: a note for the timeline (optional)", "") ?? null;
  if (note === null) return;
  try {
    await getJson(`incidents/${id}/ack`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ note }),
    });
    await refresh();
  } catch (error) {
    errorBox.textContent = `Could not acknowledge: ${error.message}`;
    errorBox.hidden = false;
  }
}

for (const button of document.querySelectorAll(".incidents__filters button")) {
  button.addEventListener("click", () => {
    state = button.dataset.state;
    for (const other of document.querySelectorAll(".incidents__filters button")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    poller.runNow();
  });
}

const poller = adaptivePoll(refresh, { intervalMs: config.pollMs });
poller.runNow();
