// The JSON API under /api/v1: the session cookie travels by itself; requests that change
// something echo the CSRF cookie in X-CSRF-Token. Errors become ApiError with the API's own
// message and hint (never raw internal text).

export interface ErrorDetail {
  code: string;
  message: string;
  field?: string | null;
  hint?: string | null;
  position?: number | null;
  sqlstate?: string | null;
}

export class ApiError extends Error {
  readonly status: number;
  readonly detail: ErrorDetail;
  constructor(status: number, detail: ErrorDetail) {
    super(detail.message);
    this.status = status;
    this.detail = detail;
  }
}

export const CSRF_COOKIE = "sluice_csrf";
export const CSRF_HEADER = "X-CSRF-Token";

export function csrfToken(): string {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(rest.join("="));
  }
  return "";
}

/** Called when the API answers 401 (the session ended): the app goes to sign-in. */
let onUnauthenticated: () => void = () => {};
export function setUnauthenticatedHandler(handler: () => void): void {
  onUnauthenticated = handler;
}

export function headers(method: string, extra: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = { Accept: "application/json", ...extra };
  if (method !== "GET" && method !== "HEAD") out[CSRF_HEADER] = csrfToken();
  return out;
}

/** Reads an error response's body as the API's error, or makes one from the status alone. */
export async function errorOf(response: Response): Promise<ApiError> {
  let detail: ErrorDetail = { code: "http", message: `The service answered ${response.status} ${response.statusText}.` };
  try {
    const body = await response.json();
    if (body && typeof body === "object" && body.error && typeof body.error.message === "string") {
      detail = body.error as ErrorDetail;
    }
  } catch {
    // Not JSON (a proxy's page): keep the status line.
  }
  if (response.status === 401 && detail.code !== "invalid_credentials") onUnauthenticated();
  return new ApiError(response.status, detail);
}

export function networkError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof DOMException && e.name === "AbortError") {
    return new ApiError(0, { code: "aborted", message: "Cancelled." });
  }
  return new ApiError(0, {
    code: "network",
    message: "The service could not be reached.",
    hint: "Check that sluice serve is running and your network is up, then try again.",
  });
}

export async function api<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      credentials: "same-origin",
      headers: headers(method, body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (e) {
    throw networkError(e);
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export const get = <T>(path: string, signal?: AbortSignal) => api<T>("GET", path, undefined, signal);
export const post = <T>(path: string, body?: unknown) => api<T>("POST", path, body ?? {});
export const patch = <T>(path: string, body: unknown) => api<T>("PATCH", path, body);
export const del = <T>(path: string) => api<T>("DELETE", path);

export type Role = "admin" | "analyst";
export interface Me {
  login: string;
  role: Role;
  user_id: number | null;
  source: string | null;
  via: { kind: "session" | "token"; token?: string | null };
  csrf_token: string | null;
}
