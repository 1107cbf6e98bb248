/**
 * The API client: every call carries the bearer token kept in localStorage; a 401 signs the user
 * out (the app then shows the sign-in screen). Errors come back as `ApiError` with the server's
 * message and, for 422, the per-field `details`.
 */
const TOKEN_KEY = 'lockstep.token';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** `{field: message}` for validation errors. */
    readonly details: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type Listener = (reason: string | undefined) => void;
const signOutListeners = new Set<Listener>();

export const auth = {
  token(): string | null {
    try {
      return window.localStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  setToken(token: string): void {
    window.localStorage.setItem(TOKEN_KEY, token);
  },
  /** Forgets the token; `reason` is shown on the sign-in screen. */
  signOut(reason?: string): void {
    window.localStorage.removeItem(TOKEN_KEY);
    for (const listener of signOutListeners) listener(reason);
  },
  /** Called when a request is refused for want of a valid token. */
  onSignOut(listener: Listener): () => void {
    signOutListeners.add(listener);
    return () => signOutListeners.delete(listener);
  },
};

/** Turns the server's `details` into `{field: message}`, whatever nesting it used. */
function flattenDetails(details: unknown, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  if (details === null || typeof details !== 'object') {
    if (details !== undefined && prefix) out[prefix] = String(details);
    return out;
  }
  for (const [key, value] of Object.entries(details as Record<string, unknown>)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (typeof value === 'string') out[path] = value;
    else if (Array.isArray(value) && value.every((v) => typeof v === 'string')) out[path] = value.join('; ');
    else Object.assign(out, flattenDetails(value, path));
  }
  return out;
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  // Tells the server a person acts through the UI, so runs started here are recorded as manual.
  const headers: Record<string, string> = { Accept: 'application/json', 'X-Lockstep-Client': 'web' };
  const token = auth.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'Cannot reach the Lockstep server. Is `lockstep serve` running?');
  }
  const text = await response.text();
  let json: unknown = undefined;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  if (!response.ok) {
    const payload = (json ?? {}) as { message?: unknown; details?: unknown };
    const message = typeof payload.message === 'string' ? payload.message : `${method} ${path} failed with HTTP ${response.status}`;
    if (response.status === 401) auth.signOut('The server refused the token. Sign in again.');
    throw new ApiError(response.status, message, flattenDetails(payload.details));
  }
  return json as T;
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body ?? {}),
  put: <T>(path: string, body: unknown) => request<T>('PUT', path, body),
  patch: <T>(path: string, body: unknown) => request<T>('PATCH', path, body),
  delete: <T>(path: string) => request<T>('DELETE', path),
};

/** `encodeURIComponent` for slugs and ids in paths. */
export const seg = (value: string | number): string => encodeURIComponent(String(value));

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
