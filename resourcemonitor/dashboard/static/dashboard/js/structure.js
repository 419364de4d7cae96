// Two views of how the network is put together: groups (site, then kind, each with its
// health and its availability against its SLO) and topology (parents and children, where a down parent visibly takes its
// subtree with it).

import { h } from "./dom.js";

// Beyond this many devices the topology shows only the branches that hold a problem
// (with their ancestors); filtering by site brings the whole tree back.
export const TOPOLOGY_FULL_MAX = 1500;

function countBy(devices, meta) {
  const counts = {};
  let problems = 0;
  for (const device of devices) {
    counts[device.status] = (counts[device.status] || 0) + 1;
    if (meta[device.status].problem) problems += 1;
  }
  return { counts, problems, up: counts.up || 0, total: devices.length };
}

/** A bar of status shares, worst first, with its words for screen readers. */
function healthBar(stats, meta, order) {
  const bar = h("span", { class: "hbar", role: "img" });
  const words = [];
  for (const status of order) {
    const n = stats.counts[status];
    if (!n) continue;
    const part = h("span", { class: "hbar__part", dataset: { status } });
    part.style.flexGrow = String(n); // CSSOM, not a style attribute: allowed by a strict CSP
    bar.append(part);
    words.push(`${n} ${meta[status].label.toLowerCase()}`);
  }
  bar.setAttribute("aria-label", words.join(", "));
  bar.title = words.join(", ");
  return bar;
}

function statusCells(stats, meta, order) {
  const cells = h("span", { class: "gcounts" });
  for (const status of order) {
    const n = stats.counts[status];
    if (!n || status === "up") continue;
    cells.append(h("span", { class: "pill pill--small", dataset: { status } },
      h("span", { class: "glyph", "aria-hidden": "true", text: meta[status].icon }), `${n} ${meta[status].label.toLowerCase()}`));
  }
  return cells;
}

/** The group's availability against its SLO (GET /api/v1/summary/groups), as a cell. */
function sloCell(views, site, kind) {
  const item = views.groupSlo?.get(`${site}\u0000${kind || ""}`);
  const cell = h("td", { class: "slo nowrap", dataset: { testid: "group-slo" } });
  if (!item) {
    cell.append(h("span", { class: "muted", text: views.groupSlo ? "not measured" : "—" }));
    return cell;
  }
  const target = `${fmtPct(item.target)} %`;
  if (item.sli === null) {
    cell.dataset.slo = "none";
    cell.append(h("span", { class: "muted", text: `no checks yet (target ${target})` }));
    return cell;
  }
  const met = item.sli >= item.target;
  cell.dataset.slo = met ? "met" : "missed";
  cell.title = `${item.checks} checks, ${item.failed} failed over ${views.groupSloWindow}; ` +
    `${item.defined ? `group SLO “${item.name}”` : "strictest device target"}` +
    (item.budget_remaining_pct === null ? "" : `; ${fmtPct(item.budget_remaining_pct)} % of the error budget left`);
  cell.append(
    h("span", { class: `slo__mark slo__mark--${met ? "met" : "missed"}`, "aria-hidden": "true", text: met ? "✓" : "✖" }),
    h("span", { text: `${fmtPct(item.sli)} % of ${target}` }),
    h("span", { class: "visually-hidden", text: met ? ", SLO met" : ", SLO missed" }),
  );
  return cell;
}

function fmtPct(value) {
  // 99.95, not 99.9500; 100, not 100.00.
  return String(Number(value.toFixed(value >= 99 ? 3 : 2)));
}

function health(stats) {
  return stats.total ? `${((100 * stats.up) / stats.total).toFixed(stats.up === stats.total ? 0 : 1)} % up` : "—";
}

/** Sites, then kinds within each, worst site first; each row filters the page to it. */
export function renderGroups(views, selected) {
  const meta = views.meta;
  const order = views.config.statusOrder;
  const bySite = new Map();
  for (const device of selected) {
    const site = device.site || "";
    if (!bySite.has(site)) bySite.set(site, new Map());
    const kinds = bySite.get(site);
    if (!kinds.has(device.kind)) kinds.set(device.kind, []);
    kinds.get(device.kind).push(device);
  }
  const sites = [...bySite.entries()].map(([site, kinds]) => {
    const all = [].concat(...kinds.values());
    return { site, kinds, stats: countBy(all, meta) };
  });
  sites.sort((a, b) => b.stats.problems / b.stats.total - a.stats.problems / a.stats.total || a.site.localeCompare(b.site));
  const table = h("table", { class: "grid grid--groups", "data-testid": "groups-table" },
    h("thead", null, h("tr", null,
      h("th", { scope: "col", text: "Site / kind" }), h("th", { scope: "col", class: "num", text: "Devices" }),
      h("th", { scope: "col", text: "Health" }), h("th", { scope: "col", class: "num", text: "Up" }),
      h("th", { scope: "col", text: "Problems" }),
      h("th", { scope: "col", text: `SLO (${views.groupSloWindow || "30d"})` }))));
  for (const group of sites) {
    const body = h("tbody", { class: group.stats.problems ? "group group--problem" : "group" });
    body.append(h("tr", { class: "group__site", dataset: { site: group.site, testid: "group-row" } },
      h("th", { scope: "rowgroup" }, h("button", { type: "button", class: "linklike", dataset: { filterSite: group.site }, text: group.site || "No site" })),
      h("td", { class: "num", text: group.stats.total }),
      h("td", null, healthBar(group.stats, meta, order)),
      h("td", { class: "num", text: health(group.stats) }),
      h("td", null, statusCells(group.stats, meta, order)),
      sloCell(views, group.site, null)));
    const kinds = [...group.kinds.entries()].sort((a, b) => a[0].localeCompare(b[0]));
    for (const [kind, devices] of kinds) {
      const stats = countBy(devices, meta);
      body.append(h("tr", { class: "group__kind" },
        h("td", null, h("button", { type: "button", class: "linklike", dataset: { filterSite: group.site, filterKind: kind }, text: views.kinds[kind] || kind })),
        h("td", { class: "num", text: stats.total }),
        h("td", null, healthBar(stats, meta, order)),
        h("td", { class: "num", text: health(stats) }),
        h("td", null, statusCells(stats, meta, order)),
        sloCell(views, group.site, kind)));
    }
    table.append(body);
  }
  if (!sites.length) return h("p", { class: "empty-note", text: "No device matches these filters." });
  return table;
}

/** An indented tree: each device under its parent; a down parent's subtree is marked. */
export function renderTopology(views, selected) {
  const meta = views.meta;
  const all = views.store.devices;
  const children = new Map();
  for (const device of all.values()) {
    const parent = device.parent_id && all.has(device.parent_id) ? device.parent_id : 0;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(device);
  }
  for (const list of children.values()) list.sort((a, b) => a.sortRank - b.sortRank || (a.name < b.name ? -1 : 1));

  // Which devices to draw: the selection and its ancestors (for context). Past the
  // limit, only the problem devices and their ancestors.
  let wanted = selected;
  let partial = false;
  if (selected.length > TOPOLOGY_FULL_MAX) {
    wanted = selected.filter((device) => views.store.isProblem(device));
    partial = true;
  }
  const keep = new Set();
  for (const device of wanted) {
    let node = device;
    let guard = 0;
    while (node && !keep.has(node.id) && guard < 64) {
      keep.add(node.id);
      node = node.parent_id ? all.get(node.parent_id) : null;
      guard += 1;
    }
  }
  const selectedIds = new Set(selected.map((device) => device.id));
  const subtreeSize = new Map();
  const size = (device) => {
    if (subtreeSize.has(device.id)) return subtreeSize.get(device.id);
    let n = 0;
    for (const child of children.get(device.id) || []) n += 1 + size(child);
    subtreeSize.set(device.id, n);
    return n;
  };

  const build = (list, depth) => {
    const ul = h("ul", { role: depth ? "group" : "tree", class: depth ? "tree__children" : "tree", "aria-label": depth ? null : "Devices by parent" });
    for (const device of list) {
      if (!keep.has(device.id) || depth > 60) continue;
      const kids = (children.get(device.id) || []).filter((child) => keep.has(child.id));
      const down = device.status === "down";
      const below = down ? size(device) : 0;
      const label = h("span", {
        class: `tree__node${selectedIds.has(device.id) ? "" : " tree__node--context"}`,
        dataset: { deviceId: device.id, status: device.status },
        tabindex: "-1",
      },
      h("span", { class: "glyph", "aria-hidden": "true", text: meta[device.status].icon }),
      h("span", { class: "tree__name", text: device.name }),
      h("span", { class: "tree__kind", text: views.kinds[device.kind] || device.kind }),
      h("span", { class: "visually-hidden", text: `, ${meta[device.status].label}` }),
      below ? h("span", { class: "tree__impact", text: `takes ${below} device${below === 1 ? "" : "s"} down with it` }) : null);
      const li = h("li", { role: "treeitem", "aria-expanded": kids.length ? "true" : null, class: down ? "tree__item tree__item--down" : "tree__item" }, label);
      if (kids.length) li.append(build(kids, depth + 1));
      ul.append(li);
    }
    return ul;
  };
  const wrap = h("div", { class: "topology" });
  if (partial) {
    wrap.append(h("p", { class: "muted topology__note", "data-testid": "topology-partial",
      text: `${selected.length} devices: showing only the branches with a problem. Filter by site to see a whole tree.` }));
  }
  if (!keep.size) {
    wrap.append(h("p", { class: "empty-note", text: partial ? "No problems: every branch is healthy." : "No device matches these filters." }));
  } else {
    wrap.append(build(children.get(0) || [], 0));
  }
  return wrap;
}
