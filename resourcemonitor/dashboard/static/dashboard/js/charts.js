// Two small inline-SVG charts built with DOM calls (no library): a latency chart from
// one-minute rollups, and a status timeline strip from events. Colours come from CSS
// (rect[data-status=...]), and every mark has a <title> and text nearby: never colour alone.

import { s } from "./dom.js";
import * as fmt from "./format.js";

const MINUTE_MS = 60000;

function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

function timeTicks(startMs, endMs) {
  const spanMin = (endMs - startMs) / MINUTE_MS;
  const stepMin = [5, 10, 15, 30, 60, 120, 180, 360].find((step) => spanMin / step <= 6) || 720;
  const step = stepMin * MINUTE_MS;
  const ticks = [];
  const offset = new Date(startMs).getTimezoneOffset() * MINUTE_MS;
  for (let t = Math.ceil((startMs - offset) / step) * step + offset; t <= endMs; t += step) {
    ticks.push(t);
  }
  return ticks;
}

/**
 * points: [{t, count, ok, latency_avg_ms, latency_max_ms}] oldest first.
 * Average as a line, maximum as a faint band above it, failed minutes as marks on the axis.
 */
export function latencyChart(points, { start, end, width = 420, height = 150 }) {
  const margin = { top: 8, right: 8, bottom: 20, left: 46 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const startMs = Date.parse(start);
  const endMs = Date.parse(end);
  const x = (ms) => margin.left + ((ms - startMs) / (endMs - startMs)) * plotW;
  const withLatency = points.filter((p) => p.latency_avg_ms !== null);
  const top = niceCeiling(Math.max(0, ...withLatency.map((p) => p.latency_max_ms ?? p.latency_avg_ms)));
  const y = (ms) => margin.top + plotH - (Math.min(ms, top) / top) * plotH;

  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": "Latency over the last hour, one point a minute",
    "data-testid": "latency-chart",
  });

  // Grid and axes.
  for (const fraction of [0, 0.5, 1]) {
    const value = top * fraction;
    const gy = y(value);
    svg.append(
      s("line", { class: "chart__grid", x1: margin.left, x2: width - margin.right, y1: gy, y2: gy }),
      s("text", { class: "chart__label", x: margin.left - 6, y: gy + 3, "text-anchor": "end", text: fmt.latencyTick(value) }),
    );
  }
  for (const t of timeTicks(startMs, endMs)) {
    svg.append(
      s("line", { class: "chart__tick", x1: x(t), x2: x(t), y1: margin.top + plotH, y2: margin.top + plotH + 4 }),
      s("text", { class: "chart__label", x: x(t), y: height - 4, "text-anchor": "middle", text: fmt.clockShort(t) }),
    );
  }

  if (!points.length) {
    svg.append(s("text", {
      class: "chart__empty", x: margin.left + plotW / 2, y: margin.top + plotH / 2,
      "text-anchor": "middle", text: "No checks recorded in this period",
    }));
    return svg;
  }

  // Lines break where a minute has no latency (no checks, or all failed).
  const avgPaths = [];
  const maxPaths = [];
  let previous = null;
  for (const point of points) {
    const t = Date.parse(point.t) + MINUTE_MS / 2;
    if (point.latency_avg_ms === null) {
      previous = null;
      continue;
    }
    const gap = previous === null || t - previous > MINUTE_MS * 1.5;
    const cmd = gap ? "M" : "L";
    avgPaths.push(`${cmd}${x(t).toFixed(1)},${y(point.latency_avg_ms).toFixed(1)}`);
    maxPaths.push(`${cmd}${x(t).toFixed(1)},${y(point.latency_max_ms ?? point.latency_avg_ms).toFixed(1)}`);
    previous = t;
  }
  svg.append(
    s("path", { class: "chart__max", d: maxPaths.join("") }),
    s("path", { class: "chart__avg", d: avgPaths.join("") }),
  );
  // Single points (isolated minutes) would be invisible as paths: draw dots too.
  for (const point of withLatency) {
    const t = Date.parse(point.t) + MINUTE_MS / 2;
    const dot = s("circle", { class: "chart__dot", cx: x(t), cy: y(point.latency_avg_ms), r: 1.6 });
    dot.append(s("title", {
      text: `${fmt.clockShort(Date.parse(point.t))}: avg ${fmt.latency(point.latency_avg_ms)}, max ${fmt.latency(point.latency_max_ms)}, ${point.ok}/${point.count} checks ok`,
    }));
    svg.append(dot);
  }
  // Minutes with failed checks: a mark below the plot, taller for more failures.
  for (const point of points) {
    const failed = point.count - point.ok;
    if (failed <= 0) continue;
    const t0 = Date.parse(point.t);
    const markH = 3 + 7 * (failed / point.count);
    const mark = s("rect", {
      class: "chart__fail",
      x: x(t0), width: Math.max(1.5, x(t0 + MINUTE_MS) - x(t0) - 0.5),
      y: margin.top + plotH - markH, height: markH,
    });
    mark.append(s("title", { text: `${fmt.clockShort(t0)}: ${failed} of ${point.count} checks failed` }));
    svg.append(mark);
  }
  return svg;
}

/** Status segments over [windowStart, now] from events (any order) and the current status. */
export function statusSegments(events, currentStatus, windowStartMs, nowMs) {
  const sorted = [...events].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  const before = sorted.filter((e) => Date.parse(e.at) <= windowStartMs);
  const inside = sorted.filter((e) => Date.parse(e.at) > windowStartMs && Date.parse(e.at) <= nowMs);
  let status;
  if (before.length) status = before[before.length - 1].to_status;
  else if (inside.length) status = inside[0].from_status;
  else status = currentStatus;
  const segments = [];
  let from = windowStartMs;
  for (const event of inside) {
    const at = Date.parse(event.at);
    if (at > from) segments.push({ status, from, to: at });
    status = event.to_status;
    from = Math.max(from, at);
  }
  segments.push({ status, from, to: nowMs });
  return segments;
}

export function timelineStrip(segments, meta, { start, end, width = 420, height = 34 }) {
  const barH = 16;
  const x = (ms) => ((ms - start) / (end - start)) * width;
  const svg = s("svg", {
    class: "timeline",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": "Status timeline",
    "data-testid": "status-timeline",
  });
  for (const segment of segments) {
    const x0 = x(segment.from);
    const w = Math.max(0.5, x(segment.to) - x0);
    const label = meta[segment.status]?.label || segment.status;
    const rect = s("rect", { x: x0, y: 0, width: w, height: barH, dataset: { status: segment.status } });
    rect.append(s("title", {
      text: `${label}: ${fmt.clock(segment.from)} – ${fmt.clock(segment.to)} (${fmt.formatDuration((segment.to - segment.from) / 1000)})`,
    }));
    svg.append(rect);
    if (w > 16) {
      svg.append(s("text", {
        class: "timeline__glyph", x: x0 + w / 2, y: barH / 2 + 4, "text-anchor": "middle",
        dataset: { status: segment.status }, text: meta[segment.status]?.icon || "",
      }));
    }
  }
  for (const t of timeTicks(start, end)) {
    const tx = x(t);
    if (tx < 14 || tx > width - 14) continue;
    svg.append(s("text", { class: "chart__label", x: tx, y: height - 2, "text-anchor": "middle", text: fmt.clockShort(t) }));
  }
  return svg;
}
