// The client's copy of the device list: a full load, then only what changed.

// A change to any of these can move a device in the order or in or out of a filter, so
// the views re-flow; any other change (latency, last check) only patches its own nodes.
const LAYOUT_FIELDS = ["status", "flapping", "name", "address", "kind", "site", "enabled"];

export class Store {
  constructor(statusMeta) {
    this.meta = statusMeta;
    this.devices = new Map();
    this.cursor = null; // the server's "now" of the last answer: next changed_since
    this.complete = false; // true when the full load held every device
    this.needsReload = false;
    this.order = null; // every device, problems first then by name; rebuilt on layout changes
    this.history = null; // {at, statuses: Map id -> {status, since}} while time-travelling
  }

  /** Every device in display order; sorted once per layout change, not per keystroke. */
  ordered() {
    if (!this.order) {
      this.order = [...this.devices.values()];
      this.order.sort((a, b) => a.sortRank - b.sortRank || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    }
    return this.order;
  }

  /** Show the network as it was at `answer.at` (status-at endpoint); null returns to now. */
  setHistory(answer) {
    if (!answer) {
      if (this.history) {
        this.history = null;
        for (const device of this.devices.values()) this.prepare(device);
        this.order = null;
      }
      return;
    }
    const statuses = new Map(answer.items.map((item) => [item.id, item]));
    this.history = { at: answer.at, statuses };
    for (const device of this.devices.values()) this.prepare(device);
    this.order = null;
  }

  rank(device) {
    const meta = this.meta[device.status];
    // Flapping devices come right after the problem statuses (the server orders alike).
    if (device.flapping && !meta.problem) return Math.min(meta.rank, 2.5);
    return meta.rank;
  }

  isProblem(device) {
    return this.meta[device.status].problem || device.flapping;
  }

  prepare(device) {
    if (device.live === undefined) device.live = { status: device.status, since: device.since, flapping: device.flapping, stale: device.stale, last_error: device.last_error };
    if (this.history) {
      const then = this.history.statuses.get(device.id);
      device.status = then ? then.status : "unknown";
      device.since = then ? then.since : null;
      device.flapping = false;
      device.stale = false;
      device.last_error = null;
    } else {
      Object.assign(device, device.live);
    }
    device.searchText = `${device.name}\n${device.address}`.toLowerCase();
    device.sortRank = this.rank(device);
    return device;
  }

  replaceAll(answer) {
    this.devices = new Map();
    for (const device of answer.items) this.devices.set(device.id, this.prepare(device));
    this.order = null;
    this.complete = answer.count === answer.items.length;
    this.cursor = answer.now;
    this.needsReload = false;
  }

  /** Merge a changed_since answer; returns {layout, changed} for the views. */
  applyChanges(answer) {
    const changed = new Set();
    let layout = false;
    for (const device of answer.items) {
      const old = this.devices.get(device.id);
      if (!old || LAYOUT_FIELDS.some((field) => old[field] !== device[field]) ||
          String(old.tags) !== String(device.tags)) {
        layout = true;
      }
      this.devices.set(device.id, this.prepare(device));
      changed.add(device.id);
    }
    if (layout) this.order = null;
    this.cursor = answer.now;
    // More changes than one answer holds, or devices deleted: start again from scratch.
    if (answer.count > answer.items.length) this.needsReload = true;
    if (this.complete && answer.total_devices !== undefined &&
        answer.total_devices !== this.devices.size) {
      this.needsReload = true;
    }
    return { layout, changed };
  }

  /** Devices passing the filters, problems first, then by name. */
  select(filters) {
    const q = filters.q.trim().toLowerCase();
    const { status, kind, site, tag } = filters;
    const out = [];
    for (const device of this.ordered()) {
      if (q && !device.searchText.includes(q)) continue;
      if (status) {
        if (status === "problems") {
          if (!this.isProblem(device)) continue;
        } else if (status === "flapping") {
          if (!device.flapping) continue;
        } else if (device.status !== status) {
          continue;
        }
      }
      if (kind && device.kind !== kind) continue;
      if (site && (device.site || "") !== site) continue;
      if (tag && !device.tags.includes(tag)) continue;
      out.push(device);
    }
    return out;
  }

  /** Distinct values of a field across all devices, for the filter selects. */
  distinct(field) {
    const values = new Set();
    for (const device of this.devices.values()) {
      const value = device[field];
      if (Array.isArray(value)) value.forEach((v) => values.add(v));
      else if (value) values.add(value);
    }
    return [...values].sort((a, b) => a.localeCompare(b));
  }
}
