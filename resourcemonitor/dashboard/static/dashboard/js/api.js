// Small JSON client for /api/v1/: a timeout on every request and errors that say why.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export function createClient(base, timeoutMs = 10000) {
  async function get(path, params) {
    const query = params ? `?${new URLSearchParams(params)}` : "";
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    let response;
    try {
      response = await fetch(`${base}${path}${query}`, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        signal: controller.signal,
      });
    } catch (error) {
      const why = error.name === "AbortError"
        ? `no answer within ${timeoutMs / 1000} s`
        : "connection refused or network down";
      throw new ApiError(why, 0);
    } finally {
      clearTimeout(timer);
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      } catch {
        // Not JSON (a proxy's error page): the status text will do.
      }
      throw new ApiError(`${response.status} ${detail}`, response.status);
    }
    return response.json();
  }
  return { get };
}
