// An SMTP relay stand-in (smtp-server): accepts mail like a relay would, records what it received, and
// answers with real SMTP reply codes when faults are injected. Inspection and control over HTTP.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SMTPServer } from 'smtp-server'
import { type Faults, handleControl, type StandIn, StandInState, sendJson } from './common.ts'

export interface SmtpStandInOptions {
  port?: number
  /** Interface to listen on (127.0.0.1; 0.0.0.0 in a container). */
  host?: string
  httpPort?: number
  faults?: Faults
  recordDir?: string
  quiet?: boolean
}

export interface SmtpStandIn extends StandIn {
  readonly httpPort: number
}

/** An SMTP error reply: smtp-server sends `responseCode` and the message. */
function smtpError(code: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode: code })
}

/** Splits an RFC 5322 message into headers (lower-cased names, unfolded) and body. */
export function parseMessage(raw: string): { headers: Map<string, string>; body: string } {
  const split = raw.search(/\r?\n\r?\n/)
  const head = split >= 0 ? raw.slice(0, split) : raw
  const body = split >= 0 ? raw.slice(split).replace(/^\r?\n\r?\n/, '') : ''
  const headers = new Map<string, string>()
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  return { headers, body: body.replace(/\r\n/g, '\n').trimEnd() }
}

/** 429/503 are "try later" (421 service not available); anything else transient is 451. */
function transientReply(faults: Faults): Error {
  return faults.status === 503 || faults.status === 429
    ? smtpError(421, '4.3.2 Service not available, closing transmission channel')
    : smtpError(451, '4.3.0 Temporary failure, please try again later')
}

export async function startSmtpStandIn(options: SmtpStandInOptions = {}): Promise<SmtpStandIn> {
  const state = new StandInState('smtp', options)
  const smtp = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    allowInsecureAuth: true,
    logger: false,
    size: 10 * 1024 * 1024,
    onAuth(_auth, _session, callback) {
      if (state.faults.authFail) callback(smtpError(535, '5.7.8 Authentication credentials invalid'))
      else callback(null, { user: 'herald' })
    },
    onMailFrom(_address, session, callback) {
      if (state.faults.authFail && !session.user) callback(smtpError(530, '5.7.0 Authentication required'))
      else callback()
    },
    onRcptTo(address, _session, callback) {
      if (state.isPermanent(address.address)) {
        callback(smtpError(550, `5.1.1 <${address.address}>: Recipient address rejected: User unknown`))
      } else callback()
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      stream.on('error', (error) => callback(error))
      stream.on('end', () => {
        void (async () => {
          await state.delay()
          if (state.shouldFail()) return callback(transientReply(state.faults))
          const raw = Buffer.concat(chunks).toString('utf8')
          const { headers, body } = parseMessage(raw)
          const messageId = headers.get('message-id')
          state.record({
            to: session.envelope.rcptTo.map((r) => r.address).join(', '),
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            ...(headers.get('subject') ? { subject: headers.get('subject') } : {}),
            text: body,
            ...(messageId ? { messageId } : {}),
            ...(messageId && /^<(.+)@herald>$/.test(messageId)
              ? { heraldId: /^<(.+)@herald>$/.exec(messageId)?.[1] }
              : {}),
            size: chunks.reduce((n, c) => n + c.length, 0),
          })
          callback()
        })()
      })
    },
  })
  smtp.on('error', (error) => {
    if (!options.quiet) console.error(`[smtp] ${error.message}`)
  })
  await new Promise<void>((resolve, reject) => {
    smtp.once('error', reject)
    smtp.listen(options.port ?? 1025, options.host ?? '127.0.0.1', () => resolve())
  })
  const port = (smtp.server.address() as AddressInfo).port
  const http: Server = createServer((req, res) => {
    handleControl(req, res, state)
      .then((handled) => {
        if (!handled) sendJson(res, 404, { error: 'not_found', message: 'GET /messages, PUT /faults' })
      })
      .catch(() => sendJson(res, 400, { error: 'bad_request' }))
  })
  http.on('clientError', (_e, socket) => socket.destroy())
  await new Promise<void>((resolve) =>
    http.listen(options.httpPort ?? 1080, options.host ?? '127.0.0.1', resolve),
  )
  const httpPort = (http.address() as AddressInfo).port
  return {
    port,
    httpPort,
    url: `smtp://127.0.0.1:${port}`,
    messages: () => state.messages(),
    clear: () => state.clear(),
    setFaults: (f) => state.setFaults(f),
    close: async () => {
      await new Promise<void>((resolve) => smtp.close(() => resolve()))
      await new Promise<void>((resolve) => http.close(() => resolve()))
    },
  }
}
