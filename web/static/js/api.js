// Talking to Privia's API from a page: same-origin fetches that carry the
// session cookie, and one error type that holds what the server said.

export class ApiError extends Error {
  constructor(status, detail, retryAfter = null) {
    super(detail);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

// Turn a failed response into an ApiError with the server's {"detail"}.
export async function errorFrom(response) {
  let detail = `The server answered ${response.status}`;
  try {
    const body = await response.json();
    if (typeof body.detail === "string") detail = body.detail;
  } catch {
    // Not JSON (a proxy's page, say): keep the status line.
  }
  const wait = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  return new ApiError(response.status, detail, Number.isFinite(wait) ? wait : null);
}

export async function api(path, { method = "GET", body } = {}) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new ApiError(0, "Privia could not be reached. Check your connection.");
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  return response.json();
}

// "Try again in 42 seconds" for a 429, else the server's own words.
export function describe(error) {
  if (error.status === 429) {
    const wait = error.retryAfter;
    const when = wait ? `in ${wait} second${wait === 1 ? "" : "s"}` : "shortly";
    return `Too many attempts. Try again ${when}.`;
  }
  return error.message;
}
