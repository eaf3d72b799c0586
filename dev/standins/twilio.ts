// A stand-in for Twilio's REST API (sending messages): the path, form encoding, basic auth, JSON answers
// and error bodies with Twilio error codes are those of the real service, so the twilio SDK works against
// it when its base URL is set (TWILIO_API_URL).
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Faults, handleControl, readBody, type StandIn, StandInState, sendJson } from './common.ts'

export interface TwilioStandInOptions {
  port?: number
  /** Interface to listen on (127.0.0.1; 0.0.0.0 in a container). */
  host?: string
  /** When set, only these credentials are accepted (username = account SID, password = token). */
  accountSid?: string
  authToken?: string
  faults?: Faults
  recordDir?: string
  quiet?: boolean
}

const messagesPath = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/
const e164 = /^\+[1-9]\d{6,14}$/

function twilioError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
) {
  sendJson(
    res,
    status,
    { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status },
    headers,
  )
}

function credentials(req: IncomingMessage): { user: string; password: string } | undefined {
  const header = req.headers.authorization ?? ''
  if (!header.startsWith('Basic ')) return undefined
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

const transient: Record<number, [number, string]> = {
  429: [20429, 'Too Many Requests'],
  500: [20500, 'Internal Server Error'],
  503: [20503, 'Service Unavailable'],
}

export async function startTwilioStandIn(options: TwilioStandInOptions = {}): Promise<StandIn> {
  const state = new StandInState('twilio', options)
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (await handleControl(req, res, state)) return
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const match = messagesPath.exec(path)
    if (!match) return twilioError(res, 404, 20404, `The requested resource ${path} was not found`)
    if (req.method !== 'POST') return twilioError(res, 405, 20004, 'Method not allowed')
    const accountSid = decodeURIComponent(match[1] ?? '')
    const body = new URLSearchParams((await readBody(req)).toString('utf8'))
    await state.delay()
    const auth = credentials(req)
    const wrongCredentials =
      !auth ||
      state.faults.authFail ||
      (options.accountSid !== undefined &&
        (auth.user !== options.accountSid || auth.password !== options.authToken))
    if (wrongCredentials) return twilioError(res, 401, 20003, 'Authenticate')
    const to = body.get('To') ?? ''
    const from = body.get('From') ?? body.get('MessagingServiceSid') ?? ''
    const text = body.get('Body') ?? ''
    if (!to) return twilioError(res, 400, 21604, "A 'To' phone number is required.")
    if (!text && !body.get('MediaUrl')) return twilioError(res, 400, 21602, 'Message body is required.')
    if (!from) return twilioError(res, 400, 21603, "A 'From' phone number is required.")
    if (!e164.test(to))
      return twilioError(res, 400, 21211, `The 'To' number ${to} is not a valid phone number.`)
    if (state.isPermanent(to)) {
      const code = state.faults.permanentCode ?? 21211
      const message =
        code === 21610
          ? 'Attempt to send to unsubscribed recipient'
          : code === 21614
            ? `'To' number ${to} is not a valid mobile number`
            : `The 'To' number ${to} is not a valid phone number.`
      return twilioError(res, 400, code, message)
    }
    if (state.shouldFail()) {
      const status = state.faults.status ?? 503
      const [code, message] = transient[status] ?? [20500, 'Internal Server Error']
      const headers: Record<string, string> =
        state.faults.retryAfter !== undefined ? { 'retry-after': String(state.faults.retryAfter) } : {}
      return twilioError(res, status, code, message, headers)
    }
    const sid = `SM${randomBytes(16).toString('hex')}`
    const now = new Date().toUTCString().replace('GMT', '+0000')
    state.record({ to, from, text, messageId: sid, size: text.length })
    sendJson(res, 201, {
      account_sid: accountSid,
      api_version: '2010-04-01',
      body: text,
      date_created: now,
      date_sent: null,
      date_updated: now,
      direction: 'outbound-api',
      error_code: null,
      error_message: null,
      from,
      messaging_service_sid: body.get('MessagingServiceSid'),
      num_media: '0',
      num_segments: String(Math.max(1, Math.ceil(text.length / 153))),
      price: null,
      price_unit: 'USD',
      sid,
      status: 'queued',
      subresource_uris: { media: `/2010-04-01/Accounts/${accountSid}/Messages/${sid}/Media.json` },
      to,
      uri: `/2010-04-01/Accounts/${accountSid}/Messages/${sid}.json`,
    })
  }
  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) twilioError(res, 400, 21620, 'Invalid request')
    })
  })
  server.on('clientError', (_e, socket) => socket.destroy())
  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 4010, options.host ?? '127.0.0.1', resolve),
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
