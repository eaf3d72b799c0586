// A stand-in for Slack incoming webhooks: POST JSON {text, blocks?} to /services/..., answers `ok`, and the
// error statuses and bodies Slack documents for webhooks (invalid_payload, no_text, rate_limited, ...).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Faults, handleControl, readBody, type StandIn, StandInState } from './common.ts'

export interface SlackStandInOptions {
  port?: number
  /** Interface to listen on (127.0.0.1; 0.0.0.0 in a container). */
  host?: string
  faults?: Faults
  recordDir?: string
  quiet?: boolean
}

function reply(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'text/html', ...headers })
  res.end(text)
}

const transient: Record<number, string> = {
  429: 'rate_limited',
  500: 'internal_error',
  503: 'service_unavailable',
}

export async function startSlackStandIn(options: SlackStandInOptions = {}): Promise<StandIn> {
  const state = new StandInState('slack', options)
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (await handleControl(req, res, state)) return
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    if (!path.startsWith('/services/')) return reply(res, 404, 'no_service')
    if (req.method !== 'POST') return reply(res, 405, 'invalid_method')
    const raw = (await readBody(req)).toString('utf8')
    await state.delay()
    if (state.faults.authFail) return reply(res, 403, 'invalid_token')
    if (state.isPermanent(path)) {
      return state.faults.permanentCode === 410
        ? reply(res, 410, 'channel_is_archived')
        : reply(res, 404, 'no_service')
    }
    let payload: { text?: unknown; blocks?: unknown }
    try {
      payload = JSON.parse(raw) as { text?: unknown; blocks?: unknown }
      if (typeof payload !== 'object' || payload === null) throw new Error('not an object')
    } catch {
      return reply(res, 400, 'invalid_payload')
    }
    if ((typeof payload.text !== 'string' || payload.text === '') && !Array.isArray(payload.blocks)) {
      return reply(res, 400, 'no_text')
    }
    if (state.shouldFail()) {
      const status = state.faults.status ?? 503
      const headers: Record<string, string> =
        state.faults.retryAfter !== undefined ? { 'retry-after': String(state.faults.retryAfter) } : {}
      return reply(res, status, transient[status] ?? 'internal_error', headers)
    }
    const text = typeof payload.text === 'string' ? payload.text : JSON.stringify(payload.blocks)
    state.record({ to: path, text, size: raw.length })
    reply(res, 200, 'ok')
  }
  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) reply(res, 400, 'invalid_payload')
    })
  })
  server.on('clientError', (_e, socket) => socket.destroy())
  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 4020, options.host ?? '127.0.0.1', resolve),
  )
  const port = (server.address() as AddressInfo).port
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    messages: () => state.messages(),
    clear: () => state.clear(),
    setFaults: (f) => state.setFaults(f),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
