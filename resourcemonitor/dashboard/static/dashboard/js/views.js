// The page's live parts: status counts, the problems panel, tiles and the table.
//
// At 10,000 devices the rules are: build in one pass into a DocumentFragment, keep one
// node per device and reuse it, move only the tiles of devices that changed (problems
// have their own section; each section stays in display order), patch only the nodes
// of devices that changed, and keep only the table rows in view in the DOM.

import { h, setText } from "./dom.js";
import { insertionIndex } from "./store.js";
import * as fmt from "./format.js";
import { renderGroups, renderTopology } from "./structure.js";

const PROBLEM_ROWS = 50;
// Up to this many tiles show their names; more become small squares.
const NAMED_TILES_MAX = 240;
// Must match .tile / .tiles__chunk in dashboard.css.
const TILE_SIZE = 16;
const TILE_GAP = 3;
const TILE_CHUNK_ROWS = 4;
// The virtual table: rows drawn beyond the visible ones, each side; a first guess at a
// row's height (measured after the first rows are drawn).
const TABLE_OVERSCAN = 12;
const ROW_HEIGHT_GUESS = 33;
// Tiles moved across chunk edges per idle moment while restoring whole rows.
const REBALANCE_MOVES = 150;
// Up to this many changed devices move one by one; more, and the tiles are built afresh.
const INCREMENTAL_MAX = 2000;

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
    this.view = "tiles";
    this.selected = [];
    this.sort = null; // {key, dir} for the table; null: problems first, then by name
    this.tileModel = null; // the tiles on screen: sections of entries in display order
    this.moves = 0; // tiles moved by the current rebalancing step
    this.matches = () => true; // the page's filters, for one device (set by main.js)
    this.tableRows = null; // the table's devices in its order; only a window is in the DOM
    this.el = {
      tiles: root.querySelector('[data-testid="tiles"]'),
      tableWrap: root.querySelector('[data-testid="table-wrap"]'),
      tableBody: root.querySelector('[data-testid="device-table-body"]'),
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
    // Chunks hold whole rows: a new width means new chunks. The observer also keeps the
    // column count, so an update never has to ask for layout to learn it.
    this.columnsSeen = 0;
    new ResizeObserver((entries) => {
      const width = entries[entries.length - 1].contentRect.width;
      this.columnsSeen = width > 0 ? Views.columnsFor(width) : 0;
      const model = this.view === "tiles" ? this.tileModel : null;
      if (model && !model.named && this.columnsSeen && this.columnsSeen !== model.columns) {
        this.renderTiles(this.selected);
      }
    }).observe(this.el.tiles);
    let scrollFrame = 0;
    this.el.tableWrap.addEventListener("scroll", () => {
      cancelAnimationFrame(scrollFrame);
      scrollFrame = requestAnimationFrame(() => this.renderTableWindow());
    }, { passive: true });
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
      // Up squares (most of them) are round and carry no text: a text node per square is
      // an inline layout and a text blob per square, the larger part of the frame after
      // a big filter change (see .tiles__chunk > .tile in the CSS).
      setText(tile, device.status === "up" ? "" : meta.icon);
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
    // A deleted device's tile is not among the next update's changes: start afresh.
    if (this.tileModel && [...this.tileModel.entries.keys()].some((id) => !this.store.devices.has(id))) {
      this.tileModel = null;
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
    // A hidden view is not kept up to date: the tiles start afresh when shown again.
    if (this.view !== "tiles") this.tileModel = null;
    if (this.view === "tiles") this.renderTiles(selected, changed);
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
      // Rows off screen (the table is virtual, the panel shows 50) are built again
      // when next shown, not refilled now.
      const row = this.rows.get(id);
      if (row?.isConnected) this.fillRow(row, device);
      else if (row) this.rows.delete(id);
      const problemRow = this.problemRows.get(id);
      if (problemRow?.isConnected) this.fillProblemRow(problemRow, device);
      else if (problemRow) this.problemRows.delete(id);
    }
    if (refreshSince) this.tick();
  }

  renderProblems(selected) {
    const problems = selected.filter((device) => this.store.isProblem(device));
    const rows = problems.slice(0, PROBLEM_ROWS).map((device) => this.problemRow(device));
    const body = this.el.problemsBody;
    // The same rows in the same order (most updates): leave the panel alone.
    const same = rows.length > 0 && rows.length === body.children.length && rows.every((row, i) => body.children[i] === row);
    const fragment = document.createDocumentFragment();
    if (!same) fragment.append(...rows);
    if (!same && !problems.length) {
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
    if (!same) body.replaceChildren(fragment);
    setText(this.el.problemsCount, problems.length);
    this.el.problemsPanel.classList.toggle("problems--clear", problems.length === 0);
    const hidden = problems.length - PROBLEM_ROWS;
    this.el.problemsMore.hidden = hidden <= 0;
    if (hidden > 0) setText(this.el.problemsMore, `${hidden} more problems — show all in the table`);
  }

  renderStructure(node, count) {
    const target = this.view === "groups" ? this.el.groups : this.el.topology;
    target.replaceChildren(node);
    setText(this.el.shown, this.shownText(count, count));
  }

  static sameList(a, b) {
    if (!a || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
    return true;
  }

  /** The tiles for `selected`. With `changed` (a poll's device ids, or null after a
   * filter change), only what differs moves: each tile section keeps its devices in
   * display order, a changed device leaves its place and is inserted at its new one
   * (binary search), and the chunks after it pass one tile along at their edges. A
   * 100-device update touches ~100 tiles and a few chunk edges, never all 10,000. */
  renderTiles(selected, changed = null) {
    const named = selected.length <= NAMED_TILES_MAX;
    const columns = named ? 0 : this.tileColumns();
    const model = this.tileModel;
    const fits = model && model.named === named && model.columns === columns;
    if (fits && Views.sameList(model.list, selected)) return; // "s", "si": same devices
    let done = false;
    if (fits && changed && changed.size <= INCREMENTAL_MAX) {
      done = this.moveTiles(changed);
    } else if (fits && !changed) {
      done = this.diffTiles(selected);
    }
    if (!done) this.buildTiles(selected, named, columns);
    this.tileModel.list = selected;
    setText(this.el.shown, this.shownText(selected.length, selected.length));
  }

  /** Problems (and flapping devices) in a section of their own, then the rest. */
  static sectionIndex(device) {
    return device.sortRank < 3 ? 0 : 1;
  }

  buildTiles(selected, named, columns) {
    const container = this.el.tiles;
    container.classList.toggle("tiles--named", named);
    const perChunk = named ? Infinity : columns * TILE_CHUNK_ROWS;
    const model = { named, columns, perChunk, list: selected, entries: new Map(), sections: [] };
    const fragment = document.createDocumentFragment();
    for (const label of ["Problems", "Other devices"]) {
      const el = h("div", { class: "tiles__section", role: "group", "aria-label": label });
      model.sections.push({ el, items: [], chunks: [] });
      fragment.append(el);
    }
    for (const device of selected) {
      const entry = this.tileEntry(device, named);
      const section = model.sections[Views.sectionIndex(device)];
      entry.section = section;
      section.items.push(entry);
      model.entries.set(device.id, entry);
    }
    this.tileModel = model;
    for (const section of model.sections) this.fillSection(section, 0);
    container.replaceChildren(fragment);
  }

  tileEntry(device, named) {
    return { id: device.id, sortRank: device.sortRank, name: device.name, tile: this.tile(device, named) };
  }

  /** Take the changed devices out of their places and put them where they now belong.
   * Only their own tiles move: a chunk may hold a tile more or less than whole rows
   * until the idle-time rebalancing (rebalance()) passes tiles along chunk edges. */
  moveTiles(changed) {
    const model = this.tileModel;
    const dirty = new Map(); // section -> first index that moved
    const touch = (section, index) => dirty.set(section, Math.min(index, dirty.get(section) ?? Infinity));
    for (const id of changed) {
      const device = this.store.devices.get(id);
      const wanted = device && this.matches(device);
      const entry = model.entries.get(id);
      if (entry && wanted && entry.sortRank === device.sortRank && entry.name === device.name) continue;
      if (entry) {
        const items = entry.section.items;
        const at = insertionIndex(items, entry);
        if (items[at] !== entry) return false; // out of order somehow: rebuild
        items.splice(at, 1);
        entry.tile.remove();
        touch(entry.section, at);
        model.entries.delete(id);
      }
      if (wanted) this.insertTile(device, touch);
    }
    for (const [section, from] of dirty) {
      section.el.hidden = section.items.length === 0;
      if (model.named) continue; // one grid per section: nothing to balance
      section.pending = Math.min(section.pending ?? Infinity, Math.floor(from / model.perChunk));
    }
    if (dirty.size && !model.named) this.scheduleRebalance();
    return true;
  }

  insertTile(device, touch) {
    const model = this.tileModel;
    const entry = this.tileEntry(device, model.named);
    const section = model.sections[Views.sectionIndex(device)];
    entry.section = section;
    const items = section.items;
    const at = insertionIndex(items, entry);
    items.splice(at, 0, entry);
    model.entries.set(device.id, entry);
    // The DOM follows the items' order: go before the next tile, or after the previous.
    const next = items[at + 1]?.tile;
    const previous = items[at - 1]?.tile;
    if (next?.parentNode) next.before(entry.tile);
    else if (previous?.parentNode) previous.after(entry.tile);
    else this.sectionChunk(section, 0).append(entry.tile);
    touch(section, at);
  }

  sectionChunk(section, index) {
    let chunk = section.chunks[index];
    if (!chunk) {
      chunk = h("div", { class: this.tileModel.named ? "tiles__grid" : "tiles__chunk" });
      section.chunks[index] = chunk;
      section.el.append(chunk);
    }
    return chunk;
  }

  /** Whole rows again, a few chunks per idle moment: no long task, ever. */
  scheduleRebalance() {
    if (this.rebalancing) return;
    this.rebalancing = true;
    const idle = window.requestIdleCallback || ((fn) => setTimeout(() => fn({ timeRemaining: () => 8 }), 16));
    const step = (deadline) => {
      const model = this.tileModel;
      let more = false;
      // Few moves per go: the browser styles and lays out what moved before the next
      // go, so each frame stays short (one go moving them all was a 200 ms task).
      this.moves = 0;
      for (const section of model ? model.sections : []) {
        while (section.pending !== undefined && this.moves < REBALANCE_MOVES && deadline.timeRemaining() > 1) {
          if (!this.fillChunk(section, section.pending)) section.pending = undefined;
          else section.pending += 1;
        }
        if (section.pending !== undefined) more = true;
      }
      if (more) idle(step, { timeout: 500 });
      else this.rebalancing = false;
    };
    idle(step, { timeout: 500 });
  }

  /** After a filter change: when few devices come or go, move those rather than all. */
  diffTiles(selected) {
    const model = this.tileModel;
    const ids = new Set();
    for (const device of selected) ids.add(device.id);
    let leaving = 0;
    for (const id of model.entries.keys()) if (!ids.has(id)) leaving += 1;
    const coming = selected.length - (model.entries.size - leaving);
    // Past this, building afresh is as cheap as moving (and simpler for the browser).
    if (leaving + coming > Math.max(INCREMENTAL_MAX, selected.length / 4)) return false;
    const changed = new Set();
    for (const id of model.entries.keys()) if (!ids.has(id)) changed.add(id);
    for (const device of selected) if (!model.entries.has(device.id)) changed.add(device.id);
    const keep = this.matches;
    this.matches = (device) => ids.has(device.id);
    try {
      return this.moveTiles(changed);
    } finally {
      this.matches = keep;
    }
  }

  /** Make the section's chunks hold its items in order, from item `from` on. */
  fillSection(section, from) {
    const first = this.tileModel.named ? 0 : Math.floor(from / this.tileModel.perChunk);
    for (let c = first; this.fillChunk(section, c); c += 1);
    section.pending = undefined;
  }

  /** Chunk `c` gets its share of the section's items: pulled from the head of the next
   * chunk, or passed on to it. The DOM stays in order after each chunk (every tile on
   * screen, none detached), so this can stop between any two chunks. Returns false
   * after the last chunk (and drops empty ones). */
  fillChunk(section, c) {
    const { perChunk } = this.tileModel;
    const items = section.items;
    const start = c === 0 ? 0 : c * perChunk; // named: one chunk (0 x Infinity is NaN)
    if (start >= items.length && c > 0) {
      while (section.chunks.length > c) section.chunks.pop().remove();
      section.el.hidden = items.length === 0;
      return false;
    }
    const chunk = this.sectionChunk(section, c);
    let ref = chunk.firstChild;
    const end = Math.min(items.length, start + perChunk);
    for (let i = start; i < end; i += 1) {
      const tile = items[i].tile;
      if (ref === tile) {
        ref = ref.nextSibling;
      } else {
        chunk.insertBefore(tile, ref);
        this.moves += 1;
      }
    }
    if (ref) {
      // What is left belongs further on: the next chunk takes it at its head.
      const rest = [];
      for (; ref; ref = ref.nextSibling) rest.push(ref);
      this.moves += rest.length;
      this.sectionChunk(section, c + 1).prepend(...rest);
    }
    section.el.hidden = items.length === 0;
    return end < items.length || section.chunks.length > c + 1;
  }

  /** How many squares fit in a row of the tiles panel (see .tiles__chunk in the CSS):
   * from the ResizeObserver when it has seen the panel, else measured (a forced layout). */
  tileColumns() {
    if (this.columnsSeen) return this.columnsSeen;
    const style = getComputedStyle(this.el.tiles);
    return Views.columnsFor(this.el.tiles.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight));
  }

  static columnsFor(contentWidth) {
    return Math.max(1, Math.floor((contentWidth + TILE_GAP) / (TILE_SIZE + TILE_GAP)));
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

  /** The table is virtual: every matching device is in `tableRows`, but only the rows
   * in view (plus a margin) are in the DOM, between two spacer rows that keep the
   * scrollbar true. Sorting re-orders the array; scrolling swaps a few dozen rows. */
  renderTable(unsorted) {
    for (const th of this.el.tableHead.querySelectorAll("th[data-col]")) {
      const active = this.sort && this.sort.key === th.dataset.col;
      th.setAttribute("aria-sort", active ? (this.sort.dir === 1 ? "ascending" : "descending") : "none");
    }
    this.tableRows = this.sorted(unsorted);
    this.tableIndex = null;
    this.el.tableBody.parentElement.setAttribute("aria-rowcount", String(this.tableRows.length + 1));
    setText(this.el.shown, this.shownText(this.tableRows.length, this.tableRows.length));
    this.renderTableWindow();
  }

  spacer() {
    const cell = h("td", { colspan: String(this.el.tableHead.querySelectorAll("th").length) });
    return h("tr", { class: "spacer", "aria-hidden": "true" }, cell);
  }

  renderTableWindow() {
    const rows = this.tableRows || [];
    const wrap = this.el.tableWrap;
    const rowHeight = this.rowHeight || ROW_HEIGHT_GUESS;
    const head = this.el.tableHead.offsetHeight;
    const top = Math.max(0, wrap.scrollTop - head);
    const start = Math.max(0, Math.floor(top / rowHeight) - TABLE_OVERSCAN);
    const end = Math.min(rows.length, Math.ceil((top + (wrap.clientHeight || 800)) / rowHeight) + TABLE_OVERSCAN);
    this.tableSpacers = this.tableSpacers || [this.spacer(), this.spacer()];
    const [before, after] = this.tableSpacers;
    before.firstChild.style.height = `${start * rowHeight}px`; // CSSOM: allowed by the CSP
    after.firstChild.style.height = `${(rows.length - end) * rowHeight}px`;
    // A spacer only where rows are left out: at the top, the first row is the first child.
    const nodes = start > 0 ? [before] : [];
    for (let i = start; i < end; i += 1) {
      const row = this.row(rows[i]);
      row.setAttribute("aria-rowindex", String(i + 2)); // 1 is the header
      nodes.push(row);
    }
    if (end < rows.length) nodes.push(after);
    const focused = document.activeElement;
    this.el.tableBody.replaceChildren(...nodes);
    if (focused?.isConnected && document.activeElement !== focused) focused.focus({ preventScroll: true });
    this.tableWindow = [start, end];
    if (!this.rowHeight && end > start) {
      // Rows are one line high (see .grid--devices in the CSS): measure one, once.
      const measured = this.rows.get(rows[start].id).getBoundingClientRect().height;
      if (measured > 0) {
        this.rowHeight = measured;
        if (Math.abs(measured - rowHeight) > 1) this.renderTableWindow();
      }
    }
  }

  /** The row `step` rows from device `id` in the table's order, scrolled into view and
   * in the DOM; null past the first row (the caller moves on to what comes before). */
  tableStep(id, step) {
    const rows = this.tableRows || [];
    const index = rows.findIndex((device) => device.id === id);
    const target = index < 0 ? 0 : index + step;
    if (target < 0 || !rows.length) return null;
    return this.revealTableRow(rows[Math.min(rows.length - 1, target)].id);
  }

  /** Scroll the table to device `id`'s row (a deep link, j/k) and return the row. */
  revealTableRow(id) {
    const rows = this.tableRows || [];
    const index = rows.findIndex((device) => device.id === id);
    if (index < 0) return null;
    const wrap = this.el.tableWrap;
    const rowHeight = this.rowHeight || ROW_HEIGHT_GUESS;
    const head = this.el.tableHead.offsetHeight;
    const top = head + index * rowHeight;
    if (top - head < wrap.scrollTop) wrap.scrollTop = top - head;
    else if (top + rowHeight > wrap.scrollTop + wrap.clientHeight) wrap.scrollTop = top + rowHeight - wrap.clientHeight;
    this.renderTableWindow();
    return this.rows.get(id) || null;
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
