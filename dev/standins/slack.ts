// A stand-in for Slack incoming webhooks: POST JSON {text, blocks?} to /services/..., answers `ok`, and the
// error statuses and bodies Slack documents for webhooks (invalid_payload, no_text, invalid_blocks,
// no_service, channel_is_archived, invalid_token, rate_limited, ...), as text/html like Slack.
import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  closeServer,
  createSafeServer,
  handleControl,
  listen,
  localUrl,
  readBody,
  type StandIn,
  type StandInOptions,
  StandInState,
} from './common.ts'

export interface SlackStandInOptions extends StandInOptions {
  /** HTTP port: 4020 by default, 0 for any free port. */
  port?: number
}

function reply(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'text/html', ...headers })
  res.end(text)
}

/** Bodies of injected failures by status. */
const transient: Record<number, string> = {
  429: 'rate_limited',
  500: 'internal_error',
  502: 'internal_error',
  503: 'service_unavailable',
  504: 'request_timeout',
}

/** Bodies of the permanent webhook errors by status (404 by default). */
const permanent: Record<number, string> = {
  400: 'invalid_payload',
  403: 'action_prohibited',
  404: 'no_service',
  410: 'channel_is_archived',
}

/** Why Slack would refuse this payload, or undefined when it would post it. */
function payloadError(payload: Record<string, unknown>): string | undefined {
  const { text, blocks, attachments } = payload
  if (blocks !== undefined) {
    if (!Array.isArray(blocks)) return 'invalid_blocks_format'
    const wellFormed = blocks.every(
      (b: unknown) =>
        typeof b === 'object' && b !== null && typeof (b as { type?: unknown }).type === 'string',
    )
    if (!wellFormed) return 'invalid_blocks'
  }
  if (attachments !== undefined && !Array.isArray(attachments)) return 'invalid_attachments'
  const hasText = typeof text === 'string' && text.trim() !== ''
  const hasBlocks = Array.isArray(blocks) && blocks.length > 0
  const hasAttachments = Array.isArray(attachments) && attachments.length > 0
  return hasText || hasBlocks || hasAttachments ? undefined : 'no_text'
}

export async function startSlackStandIn(options: SlackStandInOptions = {}): Promise<StandIn> {
  const state = new StandInState('slack', options)
  const host = options.host ?? '127.0.0.1'
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (await handleControl(req, res, state)) return
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    if (!/^\/services\/[^/]+/.test(path)) return reply(res, 404, 'no_service')
    if (req.method !== 'POST') return reply(res, 405, 'invalid_method')
    const raw = (await readBody(req)).toString('utf8')
    await state.delay()
    if (state.faults.authFail) return reply(res, 403, 'invalid_token')
    const gone = state.permanentError(path)
    if (gone) {
      const status = gone.code !== undefined && permanent[gone.code] ? gone.code : 404
      return reply(res, status, permanent[status] ?? 'no_service')
    }
    let payload: Record<string, unknown>
    try {
      const parsed: unknown = JSON.parse(raw)
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object')
      payload = parsed as Record<string, unknown>
    } catch {
      return reply(res, 400, 'invalid_payload')
    }
    const refused = payloadError(payload)
    if (refused) return reply(res, 400, refused)
    if (state.shouldFail(path)) {
      const status = state.faults.status ?? 503
      return reply(res, status, transient[status] ?? 'internal_error', state.retryAfterHeader())
    }
    const text =
      typeof payload.text === 'string' && payload.text !== ''
        ? payload.text
        : JSON.stringify(payload.blocks ?? payload.attachments)
    state.record({ to: path, text, size: Buffer.byteLength(raw) })
    reply(res, 200, 'ok')
  }
  const server = createSafeServer(handle, (res) => reply(res, 400, 'invalid_payload'))
  const port = await listen(server, options.port ?? 4020, host, 'Slack stand-in')
  return {
    provider: 'slack',
    port,
    url: localUrl('http', host, port),
    messages: () => state.messages(),
    clear: () => state.clear(),
    faults: () => state.faults,
    setFaults: (f) => state.setFaults(f),
    close: () => closeServer(server),
  }
}
