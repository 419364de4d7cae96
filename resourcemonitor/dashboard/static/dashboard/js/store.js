// The client's copy of the device list: a full load, then only what changed.

// A change to any of these can move a device in the order or in or out of a filter, so
// the views re-flow; any other change (latency, last check) only patches its own nodes.
const LAYOUT_FIELDS = ["status", "flapping", "name", "address", "kind", "site", "enabled"];
// Of those, the ones that can change the filter selects' options.
const INVENTORY_FIELDS = ["kind", "site"];
const FILTER_NAMES = ["q", "status", "kind", "site", "tag"];

/** The display order: problems first (rank), then by name; the id breaks ties, so an
 * incremental insert lands exactly where a full sort would put it. */
export function compareDevices(a, b) {
  return a.sortRank - b.sortRank || (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id - b.id);
}

/** Where `item` goes in `list` (sorted by `compare`): the first index not before it. */
export function insertionIndex(list, item, compare = compareDevices) {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compare(list[mid], item) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class Store {
  constructor(statusMeta) {
    this.meta = statusMeta;
    this.devices = new Map();
    this.cursor = null; // the server's "now" of the last answer: next changed_since
    this.complete = false; // true when the full load held every device
    this.needsReload = false;
    this.order = null; // every device, problems first then by name; rebuilt on layout changes
    this.history = null; // {at, statuses: Map id -> {status, since}} while time-travelling
    this.problemCount = 0; // devices with a problem status, kept as changes arrive
  }

  countProblems() {
    let problems = 0;
    for (const device of this.devices.values()) if (this.meta[device.status].problem) problems += 1;
    this.problemCount = problems;
  }

  /** Every device in display order; sorted once per layout change, not per keystroke. */
  ordered() {
    if (!this.order) {
      this.order = [...this.devices.values()];
      this.order.sort(compareDevices);
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
        this.countProblems();
      }
      return;
    }
    const statuses = new Map(answer.items.map((item) => [item.id, item]));
    this.history = { at: answer.at, statuses };
    for (const device of this.devices.values()) this.prepare(device);
    this.order = null;
    this.countProblems();
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
    this.countProblems();
    this.complete = answer.count === answer.items.length;
    this.cursor = answer.now;
    this.needsReload = false;
  }

  /** Merge a changed_since answer; returns {layout, inventory, changed} for the views.
   * The display order is kept by moving only the changed devices (a binary search each),
   * not re-sorted: a poll of 100 changes costs 100 moves, not a sort of 10,000. */
  applyChanges(answer) {
    const changed = new Set();
    let layout = false;
    let inventory = false;
    for (const device of answer.items) {
      const old = this.devices.get(device.id);
      if (!old || LAYOUT_FIELDS.some((field) => old[field] !== device[field]) ||
          String(old.tags) !== String(device.tags)) {
        layout = true;
      }
      if (!old || INVENTORY_FIELDS.some((field) => old[field] !== device[field]) ||
          String(old.tags) !== String(device.tags)) {
        inventory = true;
      }
      const fresh = this.prepare(device);
      this.devices.set(device.id, fresh);
      if (old && this.meta[old.status].problem) this.problemCount -= 1;
      if (this.meta[fresh.status].problem) this.problemCount += 1;
      changed.add(device.id);
      if (this.order) {
        if (old) {
          const at = insertionIndex(this.order, old);
          if (this.order[at] === old) this.order.splice(at, 1);
          else this.order = null; // not where it should be: sort afresh, once
        }
        if (this.order) this.order.splice(insertionIndex(this.order, fresh), 0, fresh);
      }
    }
    this.cursor = answer.now;
    // More changes than one answer holds, or devices deleted: start again from scratch.
    if (answer.count > answer.items.length) this.needsReload = true;
    if (this.complete && answer.total_devices !== undefined &&
        answer.total_devices !== this.devices.size) {
      this.needsReload = true;
    }
    return { layout, inventory, changed };
  }

  /** A test for one device against the filters (the views use it for single changes). */
  matcher(filters) {
    const q = filters.q.trim().toLowerCase();
    const { status, kind, site, tag } = filters;
    return (device) => {
      if (q && !device.searchText.includes(q)) return false;
      if (status) {
        if (status === "problems") {
          if (!this.isProblem(device)) return false;
        } else if (status === "flapping") {
          if (!device.flapping) return false;
        } else if (device.status !== status) {
          return false;
        }
      }
      if (kind && device.kind !== kind) return false;
      if (site && (device.site || "") !== site) return false;
      if (tag && !device.tags.includes(tag)) return false;
      return true;
    };
  }

  /** Devices passing the filters, problems first, then by name. */
  select(filters) {
    const matches = this.matcher(filters);
    const ordered = this.ordered();
    // No filter: the order itself (a copy, so later moves do not change a rendered list).
    if (!FILTER_NAMES.some((name) => filters[name])) return ordered.slice();
    const out = [];
    for (const device of ordered) if (matches(device)) out.push(device);
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
