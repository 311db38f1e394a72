// The /v1 API with the bearer token the user typed. The token lives in this tab's
// sessionStorage only; a 401 from any call signs the page out.

const TOKEN_KEY = "quarry.token";
const BASE = document.body.dataset.apiBase || "";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

let unauthorized = () => {};

/** Called with the error's message when a call is answered 401. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

function detailOf(status, body, fallback) {
  const detail = body && body.detail;
  if (Array.isArray(detail)) {
    // FastAPI's validation errors: name each bad field
    return detail
      .map((e) => `${(e.loc || []).slice(1).join(".") || "request"}: ${e.msg}`)
      .join("; ");
  }
  if (typeof detail === "string" && detail) return detail;
  return `${status} ${fallback}`.trim();
}

/**
 * Call the API: ``api("/v1/jobs", {method: "POST", body: {...}})``. Empty parameters
 * are left out. ``token`` overrides the stored one (the sign-in check). Resolves to
 * the JSON body; rejects with an ApiError naming what went wrong.
 */
export async function api(path, { method = "GET", params, body, token, signal } = {}) {
  const url = new URL(BASE + path, window.location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && String(value).trim() !== "") {
      url.searchParams.set(name, String(value).trim());
    }
  }
  const headers = {
    Accept: "application/json",
    Authorization: `Bearer ${token ?? storedToken() ?? ""}`,
  };
  const init = { method, headers, credentials: "omit", cache: "no-store", signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, `the API did not answer (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, detailOf(response.status, data, response.statusText));
    if (response.status === 401 && token === undefined) unauthorized(error.message);
    throw error;
  }
  return data;
}
