// Words and numbers for people: durations, clock times, latencies, errors.

/** 4 m 12 s, 3 h 5 m, 2 d 4 h (the same words as the server's first paint). */
export function formatDuration(seconds) {
  let total = Math.max(0, Math.floor(seconds));
  const days = Math.floor(total / 86400);
  total -= days * 86400;
  const hours = Math.floor(total / 3600);
  total -= hours * 3600;
  const minutes = Math.floor(total / 60);
  const secs = total - minutes * 60;
  if (days) return `${days} d ${hours} h`;
  if (hours) return `${hours} h ${minutes} m`;
  if (minutes) return `${minutes} m ${secs} s`;
  return `${secs} s`;
}

export function since(iso, nowMs = Date.now()) {
  if (!iso) return "";
  return formatDuration((nowMs - Date.parse(iso)) / 1000);
}

const pad = (n) => String(n).padStart(2, "0");

/** HH:MM:SS in the viewer's time zone. */
export function clock(date) {
  const d = date instanceof Date ? date : new Date(date);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function clockShort(date) {
  const d = date instanceof Date ? date : new Date(date);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** 2025-01-31 14:02:03, local. */
export function dateTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(d)}`;
}

export function latency(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${Math.round(ms)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

/** Axis labels: 0, 2.5 ms, 50 ms, 1.5 s (no trailing zeros). */
export function latencyTick(ms) {
  if (ms === 0) return "0";
  if (ms >= 1000) return `${+(ms / 1000).toFixed(2)} s`;
  return `${+ms.toFixed(2)} ms`;
}

export function seconds(value) {
  if (value === null || value === undefined) return "—";
  return Number.isInteger(value) ? `${value} s` : `${value.toFixed(1)} s`;
}

export function percent(value, digits = 2) {
  return `${value.toFixed(digits)} %`;
}

// Probes report terse causes; a NOC reads sentences. Unknown errors pass through as sent.
const ERROR_WORDS = [
  [/^timeout$|timed? ?out/i, "No answer within the timeout"],
  [/^refused$|connection refused|ECONNREFUSED/i, "Connection refused"],
  [/unreachable|EHOSTUNREACH|ENETUNREACH/i, "Host unreachable"],
  [/^reset$|connection reset|ECONNRESET/i, "Connection reset"],
  [/^dns$|name or service not known|getaddrinfo|NXDOMAIN/i, "Name does not resolve"],
  [/^http[ _:]?(\d{3})$/i, (m) => `HTTP status ${m[1]}`],
  [/^status[ _:]?(\d{3})$/i, (m) => `HTTP status ${m[1]}`],
  [/^tls$|ssl|certificate/i, null],
];

/** The last error in words, or what the status itself says when there is none. */
export function describeProblem(device) {
  // Its own error says little when the parent is the cause: name the parent instead.
  if (device.status === "unreachable" && device.parent_name) {
    return `Behind ${device.parent_name}, which is down`;
  }
  const raw = device.last_error;
  if (raw) {
    for (const [pattern, words] of ERROR_WORDS) {
      const match = raw.match(pattern);
      if (match) {
        if (words === null) break;
        return typeof words === "function" ? words(match) : words;
      }
    }
    return raw;
  }
  if (device.stale) {
    return device.last_check_at
      ? `No check for ${since(device.last_check_at)}`
      : "Not checked yet";
  }
  if (device.status === "unreachable" && device.parent_name) {
    return `Behind ${device.parent_name}, which is down`;
  }
  if (device.status === "unknown" && !device.last_check_at) {
    return device.enabled ? "Not checked yet" : "Checks paused";
  }
  if (device.status === "degraded") return "Slower than its latency threshold";
  if (device.flapping) return "Changing state often (flapping)";
  return "";
}
