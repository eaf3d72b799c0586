// A stand-in for webhook receivers: accepts a POST of JSON on any path under /hooks/ and records the path,
// the headers and the raw body, so a test can verify the signature itself (the stand-in checks none).
// Fault injection as the other stand-ins: permanentRecipients and failRecipients name paths.
import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  BodyTooLargeError,
  closeServer,
  createSafeServer,
  handleControl,
  listen,
  localUrl,
  readBody,
  type StandIn,
  type StandInOptions,
  StandInState,
  sendJson,
} from './common.ts'

export interface WebhookStandInOptions extends StandInOptions {
  /** HTTP port: 4030 by default, 0 for any free port. */
  port?: number
}

/** Statuses a permanent recipient may get (410 by default). */
const permanentStatuses = new Set([400, 401, 403, 404, 409, 410, 413, 415, 422])

function headersOf(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value
  }
  return headers
}

export async function startWebhookStandIn(options: WebhookStandInOptions = {}): Promise<StandIn> {
  const state = new StandInState('webhook', options)
  const host = options.host ?? '127.0.0.1'
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (await handleControl(req, res, state)) return
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    if (!/^\/hooks\/[^/]+/.test(path)) return sendJson(res, 404, { error: 'not_found' })
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'POST' })
    let raw: string
    try {
      raw = (await readBody(req)).toString('utf8')
    } catch (error) {
      if (error instanceof BodyTooLargeError) return sendJson(res, 413, { error: 'too_large' })
      throw error
    }
    await state.delay()
    if (state.faults.authFail) return sendJson(res, 401, { error: 'unauthorized' })
    const gone = state.permanentError(path)
    if (gone) {
      const status = gone.code !== undefined && permanentStatuses.has(gone.code) ? gone.code : 410
      return sendJson(res, status, { error: 'refused' })
    }
    if (!(req.headers['content-type'] ?? '').startsWith('application/json'))
      return sendJson(res, 415, { error: 'unsupported_media_type' })
    let payload: Record<string, unknown>
    try {
      const parsed: unknown = JSON.parse(raw)
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object')
      payload = parsed as Record<string, unknown>
    } catch {
      return sendJson(res, 400, { error: 'invalid_json' })
    }
    if (state.shouldFail(path)) {
      const status = state.faults.status ?? 503
      return sendJson(res, status, { error: 'injected' }, state.retryAfterHeader())
    }
    const notification = payload.notification as { id?: unknown; message?: unknown } | undefined
    state.record({
      to: path,
      text: typeof notification?.message === 'string' ? notification.message : raw,
      ...(typeof notification?.id === 'string' ? { heraldId: notification.id } : {}),
      size: Buffer.byteLength(raw),
      headers: headersOf(req),
      body: raw,
    })
    sendJson(res, 200, { ok: true })
  }
  const server = createSafeServer(handle, (res) => sendJson(res, 500, { error: 'internal' }))
  const port = await listen(server, options.port ?? 4030, host, 'webhook stand-in')
  return {
    provider: 'webhook',
    port,
    url: localUrl('http', host, port),
    messages: () => state.messages(),
    clear: () => state.clear(),
    faults: () => state.faults,
    setFaults: (f) => state.setFaults(f),
    close: () => closeServer(server),
  }
}
