// A stand-in for Twilio's REST API (sending messages): the path, form encoding, basic auth, JSON answers
// and error bodies with Twilio error codes are those of the real service, so the twilio SDK works against
// it when its base URL is set (`client.api.baseUrl`, TWILIO_API_URL in Herald).
import { randomBytes } from 'node:crypto'
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

export interface TwilioStandInOptions extends StandInOptions {
  /** HTTP port: 4010 by default, 0 for any free port. */
  port?: number
  /**
   * When set, only this account is served and only its credentials pass (username = account SID,
   * password = auth token; or `apiKeySid`/`apiKeySecret`). When not set, any credentials pass.
   */
  accountSid?: string
  authToken?: string
  apiKeySid?: string
  apiKeySecret?: string
}

const messagesPath = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/
const e164 = /^\+[1-9]\d{6,14}$/
/** A phone number, optionally on a channel (whatsapp:+1...), as Twilio takes in To and From. */
const phone = (value: string) => e164.test(value.replace(/^(whatsapp|messenger|rcs):/, ''))
/** From may also be an alphanumeric sender id (up to 11 characters, one letter at least) or a short code. */
const sender = (value: string) =>
  phone(value) || /^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$/.test(value) || /^\d{3,8}$/.test(value)

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
  if (!/^basic /i.test(header)) return undefined
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon <= 0 || colon === decoded.length - 1) return undefined
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

/** Twilio's error code and message for an HTTP status of an injected failure. */
const transient: Record<number, [number, string]> = {
  429: [20429, 'Too Many Requests'],
  500: [20500, 'Internal Server Error'],
  502: [20500, 'Internal Server Error'],
  503: [20503, 'Service Unavailable'],
  504: [20500, 'Internal Server Error'],
}

/** Messages for the permanent recipient codes. */
function permanentMessage(code: number, to: string): string {
  switch (code) {
    case 21610:
      return 'Attempt to send to unsubscribed recipient'
    case 21614:
      return `'To' number ${to} is not a valid mobile number`
    case 21408:
      return `Permission to send an SMS has not been enabled for the region indicated by the 'To' number: ${to}`
    case 30007:
      return 'Message filtered'
    default:
      return `The 'To' number ${to} is not a valid phone number.`
  }
}

const gsm7 =
  /^[@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&'()*+,\-./0-9:;<=>?¡A-ZÄÖÑÜ§¿a-zäöñüà^{}\\[~\]|€\f]*$/u

/** SMS segments: GSM-7 160 characters (153 when split; ^{}\[~]|€ take two), else UCS-2 70 (67). */
export function countSegments(text: string): number {
  if (gsm7.test(text)) {
    const units = [...text].reduce((n, c) => n + ('^{}\\[~]|€\f'.includes(c) ? 2 : 1), 0)
    return units <= 160 ? 1 : Math.ceil(units / 153)
  }
  return text.length <= 70 ? 1 : Math.ceil(text.length / 67)
}

/** RFC 2822 date as Twilio writes it: "Tue, 25 Nov 2025 03:10:00 +0000". */
const rfc2822 = (date: Date) => date.toUTCString().replace('GMT', '+0000')

export async function startTwilioStandIn(options: TwilioStandInOptions = {}): Promise<StandIn> {
  const state = new StandInState('twilio', options)
  const host = options.host ?? '127.0.0.1'

  const authorized = (auth: ReturnType<typeof credentials>, accountSid: string) => {
    if (!auth) return false
    if (options.accountSid === undefined) return true
    if (accountSid !== options.accountSid) return false
    const asAccount = auth.user === options.accountSid && auth.password === options.authToken
    const asKey =
      options.apiKeySid !== undefined &&
      auth.user === options.apiKeySid &&
      auth.password === options.apiKeySecret
    return asAccount || asKey
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (await handleControl(req, res, state)) return
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const match = messagesPath.exec(path)
    if (!match) return twilioError(res, 404, 20404, `The requested resource ${path} was not found`)
    if (req.method !== 'POST') return twilioError(res, 405, 20004, 'Method not allowed')
    let accountSid: string
    try {
      accountSid = decodeURIComponent(match[1] ?? '')
    } catch {
      return twilioError(res, 404, 20404, `The requested resource ${path} was not found`)
    }
    const raw = await readBody(req)
    await state.delay()
    if (state.faults.authFail || !authorized(credentials(req), accountSid)) {
      return twilioError(res, 401, 20003, 'Authenticate', { 'www-authenticate': 'Basic realm="Twilio API"' })
    }
    const body = new URLSearchParams(raw.toString('utf8'))
    const to = (body.get('To') ?? '').trim()
    const serviceSid = body.get('MessagingServiceSid')
    const from = (body.get('From') ?? '').trim()
    const text = body.get('Body') ?? ''
    if (!to) return twilioError(res, 400, 21604, "A 'To' phone number is required.")
    if (!text && !body.get('MediaUrl') && !body.get('ContentSid'))
      return twilioError(res, 400, 21602, 'Message body is required.')
    if (!from && !serviceSid) return twilioError(res, 400, 21603, "A 'From' phone number is required.")
    if (!phone(to)) return twilioError(res, 400, 21211, `The 'To' number ${to} is not a valid phone number.`)
    if (from && !sender(from))
      return twilioError(
        res,
        400,
        21212,
        `The 'From' number ${from} is not a valid phone number, shortcode, or alphanumeric sender ID.`,
      )
    if (text.length > 1600)
      return twilioError(res, 400, 21617, 'The concatenated message body exceeds the 1600 character limit.')
    const permanent = state.permanentError(to)
    if (permanent) {
      const code = permanent.code ?? 21211
      return twilioError(res, 400, code, permanentMessage(code, to))
    }
    if (state.shouldFail(to)) {
      const status = state.faults.status ?? 503
      const [code, message] = transient[status] ?? [20500, 'Internal Server Error']
      return twilioError(res, status, code, message, state.retryAfterHeader())
    }
    const sid = `SM${randomBytes(16).toString('hex')}`
    const now = rfc2822(new Date())
    state.record({ to, from: from || (serviceSid ?? ''), text, messageId: sid, size: raw.length })
    const uri = `/2010-04-01/Accounts/${accountSid}/Messages/${sid}`
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
      // With only a Messaging Service, Twilio picks the sender later: `from` is null while queued.
      from: from || null,
      messaging_service_sid: serviceSid,
      num_media: body.getAll('MediaUrl').length.toString(),
      num_segments: String(countSegments(text)),
      price: null,
      price_unit: 'USD',
      sid,
      status: serviceSid && !from ? 'accepted' : 'queued',
      subresource_uris: { media: `${uri}/Media.json` },
      to,
      uri: `${uri}.json`,
    })
  }

  const server = createSafeServer(handle, (res, error) =>
    error instanceof BodyTooLargeError
      ? twilioError(res, 413, 70002, 'Bad request: body too large')
      : twilioError(res, 400, 70002, 'Bad request'),
  )
  const port = await listen(server, options.port ?? 4010, host, 'Twilio stand-in')
  return {
    provider: 'twilio',
    port,
    url: localUrl('http', host, port),
    messages: () => state.messages(),
    clear: () => state.clear(),
    faults: () => state.faults,
    setFaults: (f) => state.setFaults(f),
    close: () => closeServer(server),
  }
}
