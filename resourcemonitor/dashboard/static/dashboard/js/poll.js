// Poll while the tab is visible, pause while hidden, back off on errors (the idea of
// healthchecks' adaptive-setinterval.js). One request chain at a time: a slow answer
// delays the next poll instead of piling requests up.

export function adaptivePoll(task, { intervalMs, maxBackoffMs = 30000 }) {
  let timer = null;
  let running = false;
  let failures = 0;
  let again = false;

  async function tick() {
    timer = null;
    if (document.hidden || running) return;
    running = true;
    try {
      await task();
      failures = 0;
    } catch (error) {
      failures += 1;
      console.warn("poll failed:", error.message || error);
    } finally {
      running = false;
    }
    if (again && !failures) {
      again = false;
      tick();
    } else {
      schedule();
    }
  }

  function schedule() {
    if (timer !== null || document.hidden) return;
    const delay = failures ? Math.min(intervalMs * 2 ** failures, maxBackoffMs) : intervalMs;
    timer = setTimeout(tick, delay);
  }

  function runNow() {
    if (running) {
      again = true;
      return;
    }
    if (timer !== null) clearTimeout(timer);
    timer = null;
    tick();
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    } else {
      runNow();
    }
  });

  return { runNow, get failures() { return failures; } };
}
