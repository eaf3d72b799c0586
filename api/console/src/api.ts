// The console's only way to the api: the documented endpoints under /api/v1, with the signed-in API key as
// a bearer token. The key lives in session storage: gone when the tab closes, never in a cookie.
const storageKey = 'herald.apiKey'

export class ApiFailure extends Error {
  readonly status: number
  readonly code: string
  constructor(status: number, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

export const apiKey = {
  get: (): string | null => sessionStorage.getItem(storageKey),
  set: (key: string) => sessionStorage.setItem(storageKey, key),
  clear: () => sessionStorage.removeItem(storageKey),
}

/** Called when the api refuses the key (401): the app signs out. */
let onUnauthorized: (message: string) => void = () => {}
export function whenUnauthorized(handler: (message: string) => void): void {
  onUnauthorized = handler
}

// Relative to the page (/console/), so the console also works behind a path prefix.
const base = new URL('../api/v1', window.location.href).pathname

export async function call<T>(method: string, path: string, body?: unknown, key = apiKey.get()): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (key) headers.authorization = `Bearer ${key}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  let res: Response
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
  } catch {
    throw new ApiFailure(0, 'unreachable', 'The api did not answer; check the connection and retry.')
  }
  const text = await res.text()
  let parsed: unknown
  try {
    parsed = text ? JSON.parse(text) : undefined
  } catch {
    parsed = undefined
  }
  if (!res.ok) {
    const e = (parsed ?? {}) as {
      error?: string
      message?: string
      details?: Array<{ field: string; reason: string }>
    }
    const details = e.details?.map((d) => `${d.field} ${d.reason}`).join('; ')
    const message = `${e.message ?? `${res.status} ${res.statusText}`}${details ? ` (${details})` : ''}`
    if (res.status === 401) onUnauthorized(message)
    throw new ApiFailure(res.status, e.error ?? 'error', message)
  }
  return parsed as T
}

export const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error))
