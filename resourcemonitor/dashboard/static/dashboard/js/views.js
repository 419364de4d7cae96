// The page's live parts: status counts, the problems panel, tiles and the table.
//
// At 10,000 devices the rules are: build in one pass into a DocumentFragment, keep one
// node per device and reuse it (a re-sort moves nodes, it does not rebuild them), patch
// only the nodes of devices that changed, and never put more than a few hundred table
// rows in the DOM (tiles are tiny; the table grows by "Show more").

import { h, setText } from "./dom.js";
import * as fmt from "./format.js";
import { renderGroups, renderTopology } from "./structure.js";

const PROBLEM_ROWS = 50;
export const TABLE_PAGE = 200;
// Up to this many tiles show their names; more become small squares.
const NAMED_TILES_MAX = 240;
// Must match .tile / .tiles__chunk in dashboard.css.
const TILE_SIZE = 16;
const TILE_GAP = 3;
const TILE_CHUNK_ROWS = 8;

export class Views {
  constructor(root, config, store) {
    this.root = root;
    this.config = config;
    this.store = store;
    this.meta = config.statusMeta;
    this.kinds = config.kinds;
    this.tiles = new Map(); // device id -> small square tile
    this.namedTiles = new Map(); // device id -> labelled tile button
    this.rows = new Map(); // device id -> table row
    this.problemRows = new Map(); // device id -> problems row
    this.tableLimit = TABLE_PAGE;
    this.view = "tiles";
    this.selected = [];
    this.sort = null; // {key, dir} for the table; null: problems first, then by name
    this.lastTiles = null; // the selection the tiles show, to skip identical re-renders
    this.el = {
      tiles: root.querySelector('[data-testid="tiles"]'),
      tableWrap: root.querySelector('[data-testid="table-wrap"]'),
      tableBody: root.querySelector('[data-testid="device-table-body"]'),
      showMore: root.querySelector('[data-testid="show-more"]'),
      noMatch: root.querySelector('[data-testid="no-match"]'),
      shown: root.querySelector('[data-testid="shown-count"]'),
      problemsBody: root.querySelector('[data-testid="problems-body"]'),
      problemsCount: root.querySelector('[data-testid="problems-count"]'),
      problemsMore: root.querySelector('[data-testid="problems-more"]'),
      problemsPanel: root.querySelector('[data-testid="problems"]'),
      groups: root.querySelector('[data-testid="groups"]'),
      topology: root.querySelector('[data-testid="topology"]'),
      tableHead: root.querySelector('[data-testid="device-table"] thead'),
    };
    this.el.tableHead.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-sort]");
      if (!button) return;
      const key = button.dataset.sort;
      if (!this.sort || this.sort.key !== key) this.sort = { key, dir: 1 };
      else if (this.sort.dir === 1) this.sort = { key, dir: -1 };
      else this.sort = null;
      this.renderTable(this.selected);
    });
    // Chunks hold whole rows: a new width means new chunks.
    this.columns = 0;
    new ResizeObserver(() => {
      const compact = this.view === "tiles" && !this.el.tiles.classList.contains("tiles--named");
      if (compact && this.columns && this.tileColumns() !== this.columns) this.renderTiles(this.selected);
    }).observe(this.el.tiles);
  }

  // --- one device, as a status pill, a tile, a row -----------------------------------

  pill(device) {
    const meta = this.meta[device.status];
    return h(
      "span",
      { class: "pill", dataset: { status: device.status } },
      h("span", { class: "glyph", "aria-hidden": "true", text: meta.icon }),
      meta.label,
    );
  }

  badges(device) {
    const out = [];
    if (device.flapping) {
      out.push(h("span", { class: "badge badge--flapping", title: "Flapping: changing state often", text: "≋ flapping" }));
    }
    if (device.stale) {
      const last = device.last_known_status ? this.meta[device.last_known_status].label : "none";
      out.push(h("span", { class: "badge badge--stale", title: `No recent check; last known status: ${last}`, text: "stale" }));
    }
    if (!device.enabled) out.push(h("span", { class: "badge", text: "paused" }));
    return out;
  }

  tileLabel(device) {
    const meta = this.meta[device.status];
    const last = device.stale && device.last_known_status ? this.meta[device.last_known_status].label : "";
    const extra = [
      device.flapping ? "flapping" : "",
      device.stale ? `stale${last ? `, last known ${last}` : ""}` : "",
    ].filter(Boolean);
    return `${device.name} — ${meta.label}${extra.length ? ` (${extra.join(", ")})` : ""} — ${device.address}`;
  }

  fillTile(tile, device, named) {
    const meta = this.meta[device.status];
    tile.dataset.status = device.status;
    tile.classList.toggle("is-flapping", device.flapping);
    tile.classList.toggle("is-stale", device.stale);
    if (device.stale && device.last_known_status) tile.dataset.lastStatus = device.last_known_status;
    else delete tile.dataset.lastStatus;
    const label = this.tileLabel(device);
    tile.title = label;
    if (named) {
      tile.setAttribute("aria-label", label);
      setText(tile.firstChild, meta.icon);
      setText(tile.lastChild, device.name);
    } else {
      setText(tile, meta.icon);
    }
  }

  // Two shapes: with few devices, a labelled button; with many, a bare square with one
  // text node (no children, no form control), which lays out ~10x faster at 10,000.
  tile(device, named) {
    const cache = named ? this.namedTiles : this.tiles;
    let tile = cache.get(device.id);
    if (!tile) {
      tile = named
        ? h(
            "button",
            { type: "button", class: "tile", dataset: { deviceId: device.id } },
            h("span", { class: "tile__glyph", "aria-hidden": "true" }),
            h("span", { class: "tile__name" }),
          )
        : h("span", { class: "tile", role: "img", dataset: { deviceId: device.id } });
      cache.set(device.id, tile);
      this.fillTile(tile, device, named);
    }
    return tile;
  }

  fillRow(row, device) {
    row.dataset.status = device.status;
    row.replaceChildren(
      h("td", { class: "name" }, h("span", { text: device.name }), ...this.badges(device)),
      h("td", null, this.pill(device)),
      h("td", { text: device.site || "—" }),
      h("td", { class: "nowrap", text: this.kinds[device.kind] || device.kind }),
      h("td", { class: "mono nowrap", text: device.address }),
      h("td", { class: "num", text: fmt.latency(device.latency_ms) }),
      h("td", { class: "num", dataset: device.since ? { since: device.since } : {}, text: fmt.since(device.since) }),
      h("td", { class: "error", text: fmt.describeProblem(device) }),
    );
  }

  row(device) {
    let row = this.rows.get(device.id);
    if (!row) {
      row = h("tr", { tabindex: "0", dataset: { deviceId: device.id } });
      this.rows.set(device.id, row);
      this.fillRow(row, device);
    }
    return row;
  }

  incidentLink(device) {
    const incident = this.incidentByDevice?.get(device.id);
    if (!incident || !this.config.incidentsUrl) return null;
    return h("a", {
      class: "badge badge--incident", href: `${this.config.incidentsUrl}#incident-${incident.id}`,
      title: incident.title || "Open incident", text: `incident #${incident.id}`,
    });
  }

  fillProblemRow(row, device) {
    row.dataset.status = device.status;
    row.replaceChildren(
      h("td", null, this.pill(device)),
      h("td", { class: "name" }, h("span", { text: device.name }), ...this.badges(device), this.incidentLink(device)),
      h("td", { class: "mono nowrap", text: device.address }),
      h("td", { class: "nowrap", text: this.kinds[device.kind] || device.kind }),
      h("td", { text: device.site || "—" }),
      h("td", { class: "num", dataset: device.since ? { since: device.since } : {}, text: fmt.since(device.since) }),
      h("td", { class: "error", text: fmt.describeProblem(device) }),
      h("td", { class: "nowrap", text: device.parent_name || "—" }),
    );
  }

  problemRow(device) {
    let row = this.problemRows.get(device.id);
    if (!row) {
      row = h("tr", { tabindex: "0", dataset: { deviceId: device.id } });
      this.problemRows.set(device.id, row);
      this.fillProblemRow(row, device);
    }
    return row;
  }

  // --- whole views ------------------------------------------------------------------

  /** Forget nodes of devices that no longer exist (after a full reload). */
  prune() {
    for (const cache of [this.tiles, this.namedTiles, this.rows, this.problemRows]) {
      for (const id of cache.keys()) if (!this.store.devices.has(id)) cache.delete(id);
    }
  }

  /** Re-flow everything for a new selection; nodes of `changed` devices are refreshed. */
  render(selected, changed = null) {
    // Re-flowing moves nodes, and a moved node loses focus: keep the j/k cursor in place.
    const focused = document.activeElement?.closest?.("main [data-device-id]");
    this.renderNow(selected, changed);
    if (focused && focused.isConnected && document.activeElement !== focused) {
      focused.focus({ preventScroll: true });
    }
  }

  renderNow(selected, changed) {
    this.selected = selected;
    if (changed) this.patch(changed, false);
    this.renderProblems(selected);
    // Shown before rendering: the tiles measure their panel's width.
    this.el.tiles.hidden = this.view !== "tiles";
    this.el.tableWrap.hidden = this.view !== "table";
    this.el.groups.hidden = this.view !== "groups";
    this.el.topology.hidden = this.view !== "topology";
    if (this.view !== "tiles") this.lastTiles = null;
    if (this.view === "tiles") this.renderTiles(selected);
    else if (this.view === "table") this.renderTable(selected);
    else if (this.view === "groups") this.renderStructure(renderGroups(this, selected), selected.length);
    else this.renderStructure(renderTopology(this, selected), selected.length);
    this.el.noMatch.hidden = selected.length !== 0 || this.store.devices.size === 0;
  }

  /** Refresh the nodes of changed devices in place, without re-flowing. */
  patch(changed, refreshSince = true) {
    for (const id of changed) {
      const device = this.store.devices.get(id);
      if (!device) continue;
      const tile = this.tiles.get(id);
      if (tile) this.fillTile(tile, device, false);
      const namedTile = this.namedTiles.get(id);
      if (namedTile) this.fillTile(namedTile, device, true);
      const row = this.rows.get(id);
      if (row) this.fillRow(row, device);
      const problemRow = this.problemRows.get(id);
      if (problemRow) this.fillProblemRow(problemRow, device);
    }
    if (refreshSince) this.tick();
  }

  renderProblems(selected) {
    const problems = selected.filter((device) => this.store.isProblem(device));
    const fragment = document.createDocumentFragment();
    for (const device of problems.slice(0, PROBLEM_ROWS)) fragment.append(this.problemRow(device));
    if (!problems.length) {
      const filtered = selected.length !== this.store.devices.size;
      fragment.append(
        h("tr", { class: "empty" }, h("td", {
          colspan: "8",
          text: filtered
            ? "No problems among the devices shown."
            : "No problems: every device is up, in maintenance or not checked yet.",
        })),
      );
    }
    this.el.problemsBody.replaceChildren(fragment);
    setText(this.el.problemsCount, problems.length);
    this.el.problemsPanel.classList.toggle("problems--clear", problems.length === 0);
    const hidden = problems.length - PROBLEM_ROWS;
    this.el.problemsMore.hidden = hidden <= 0;
    if (hidden > 0) setText(this.el.problemsMore, `${hidden} more problems — show all in the table`);
  }

  renderStructure(node, count) {
    const target = this.view === "groups" ? this.el.groups : this.el.topology;
    target.replaceChildren(node);
    this.el.showMore.hidden = true;
    setText(this.el.shown, this.shownText(count, count));
  }

  static sameList(a, b) {
    if (!a || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
    return true;
  }

  renderTiles(selected) {
    // Typing "s", "si", "sit" often keeps the same devices: nothing to move.
    if (Views.sameList(this.lastTiles, selected) && this.columns === this.tileColumns()) return;
    this.lastTiles = selected;
    const named = selected.length <= NAMED_TILES_MAX;
    const container = this.el.tiles;
    container.classList.toggle("tiles--named", named);
    const fragment = document.createDocumentFragment();
    if (named) {
      for (const device of selected) fragment.append(this.tile(device, true));
    } else {
      // Squares go in chunks of whole rows, each skipped by layout and paint while off
      // screen (content-visibility: auto): at 10,000 devices most of them are.
      this.columns = this.tileColumns();
      const perChunk = this.columns * TILE_CHUNK_ROWS;
      for (let start = 0; start < selected.length; start += perChunk) {
        const chunk = this.tileChunk(start / perChunk);
        const end = Math.min(start + perChunk, selected.length);
        const tiles = new Array(end - start);
        for (let i = start; i < end; i += 1) tiles[i - start] = this.tile(selected[i], false);
        // One call per chunk rather than one per tile: fewer trips into the DOM.
        chunk.replaceChildren(...tiles);
        fragment.append(chunk);
      }
    }
    container.replaceChildren(fragment);
    this.el.showMore.hidden = true;
    setText(this.el.shown, this.shownText(selected.length, selected.length));
  }

  /** How many squares fit in a row of the tiles panel (see .tiles__chunk in the CSS). */
  tileColumns() {
    const style = getComputedStyle(this.el.tiles);
    const width = this.el.tiles.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return Math.max(1, Math.floor((width + TILE_GAP) / (TILE_SIZE + TILE_GAP)));
  }

  tileChunk(index) {
    this.chunks = this.chunks || [];
    if (!this.chunks[index]) this.chunks[index] = h("div", { class: "tiles__chunk" });
    return this.chunks[index];
  }

  sorted(selected) {
    if (!this.sort) return selected;
    const { key, dir } = this.sort;
    const value = {
      name: (d) => d.name,
      status: (d) => d.sortRank,
      site: (d) => d.site || "",
      kind: (d) => d.kind,
      address: (d) => d.address,
      latency: (d) => (d.latency_ms === null ? Infinity : d.latency_ms),
      since: (d) => (d.since ? -Date.parse(d.since) : Infinity),
      error: (d) => fmt.describeProblem(d),
    }[key];
    const keyed = selected.map((device) => [value(device), device]);
    keyed.sort((a, b) => (a[0] < b[0] ? -dir : a[0] > b[0] ? dir : 0));
    return keyed.map((pair) => pair[1]);
  }

  renderTable(unsorted) {
    for (const th of this.el.tableHead.querySelectorAll("th[data-col]")) {
      const active = this.sort && this.sort.key === th.dataset.col;
      th.setAttribute("aria-sort", active ? (this.sort.dir === 1 ? "ascending" : "descending") : "none");
    }
    const selected = this.sorted(unsorted);
    const limit = Math.min(this.tableLimit, selected.length);
    const fragment = document.createDocumentFragment();
    for (let i = 0; i < limit; i += 1) fragment.append(this.row(selected[i]));
    this.el.tableBody.replaceChildren(fragment);
    const rest = selected.length - limit;
    this.el.showMore.hidden = rest <= 0;
    if (rest > 0) setText(this.el.showMore, `Show ${Math.min(TABLE_PAGE, rest)} more (${rest} not shown)`);
    setText(this.el.shown, this.shownText(limit, selected.length));
  }

  shownText(shown, matching) {
    const total = this.store.devices.size;
    if (shown < matching) return `${shown} of ${matching}${matching < total ? ` (of ${total})` : ""}`;
    return matching < total ? `${matching} of ${total}` : `${total}`;
  }

  /** Relative times ("4 m 12 s") move every second; only the few rendered cells. */
  tick() {
    const now = Date.now();
    for (const body of [this.el.problemsBody, this.el.tableBody]) {
      for (const cell of body.querySelectorAll("[data-since]")) {
        setText(cell, fmt.since(cell.dataset.since, now));
      }
    }
  }

  // --- header -----------------------------------------------------------------------

  renderSummary(summary) {
    for (const button of this.root.querySelectorAll(".counts .count")) {
      const value = button.dataset.flag ? summary.flapping : summary.counts[button.dataset.status];
      setText(button.querySelector(".count__num"), value);
      button.classList.toggle("count--zero", !value);
    }
    setText(this.root.querySelector(".total__num"), summary.total);
  }
}
