// Calls to /api/v1 with the token in the Authorization header (never in a URL), and the server's
// own words when it refuses: a 403, 409, 422 or 429 is shown as the server explained it.
import { t } from "./i18n.js";

export const session = {
  token: sessionStorage.getItem("desk.token"),
  onUnauthorized: () => {},
};

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Why `token` cannot be a token, or "": the browser refuses to send a header with a character
 * outside visible ASCII (a pasted full-width space or Chinese character), which would otherwise be
 * reported as the server being unreachable. */
export function tokenProblem(token) {
  return /^[\x21-\x7e]+$/.test(token || "") ? "" : t("badTokenChars");
}

/** JSON from `path` (under /api/v1); `as: "text"` or `"blob"` for reports. Throws ApiError. */
export async function api(path, { method = "GET", body, as = "json" } = {}) {
  const headers = { Authorization: `Bearer ${session.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const problem = tokenProblem(session.token);
  if (problem) throw new ApiError(0, problem);
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, t("networkError"));
  }
  if (response.status === 401) {
    session.onUnauthorized();
    throw new ApiError(401, t("badToken"));
  }
  if (!response.ok) throw new ApiError(response.status, await explain(response));
  if (as === "text") return response.text();
  if (as === "blob") return response.blob();
  return response.status === 204 ? null : response.json();
}

/** The refusal in the server's words: its `detail`, a 422's fields, a 429's wait. */
async function explain(response) {
  let detail = null;
  try {
    detail = (await response.json()).detail;
  } catch {
    detail = null;
  }
  let text;
  if (Array.isArray(detail)) {
    text = detail.map((d) => {
      const where = (d.loc || []).filter((part) => part !== "body").join(".");
      return where ? `${where}: ${d.msg}` : d.msg;
    }).join("; ");
  } else if (typeof detail === "string") {
    text = detail;
  } else {
    text = `${response.status} ${response.statusText}`;
  }
  if (response.status === 429) {
    const wait = response.headers.get("Retry-After");
    if (wait) text += ` (${t("retryAfter", { n: wait })})`;
  }
  return text;
}
