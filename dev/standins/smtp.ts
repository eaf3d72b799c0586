// An SMTP relay stand-in (smtp-server): accepts mail like a relay would, records what it received, and
// answers with real SMTP reply codes when faults are injected. Inspection and control over HTTP on a
// second port. Plain SMTP only (no STARTTLS), AUTH optional: any credentials pass unless `authFail`.
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SMTPServer } from 'smtp-server'
import {
  closeServer,
  createSafeServer,
  type Faults,
  handleControl,
  listen,
  localUrl,
  type StandIn,
  type StandInOptions,
  StandInState,
  sendJson,
} from './common.ts'

export interface SmtpStandInOptions extends StandInOptions {
  /** SMTP port: 1025 by default, 0 for any free port. */
  port?: number
  /** Port of the HTTP inspection and control server: 1080 by default, 0 for any free port. */
  httpPort?: number
  /** Largest message accepted (bytes); bigger ones get 552. 10 MiB by default. */
  maxMessageBytes?: number
}

export interface SmtpStandIn extends StandIn {
  readonly httpPort: number
  /** Base URL of the HTTP inspection and control server. */
  readonly httpUrl: string
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
  for (const line of head.replace(/\r?\n(?=[ \t])/g, '').split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  return { headers, body }
}

/** Bytes of quoted-printable text (RFC 2045 6.7): soft line breaks removed, =XX decoded. */
function fromQuotedPrintable(text: string): Buffer {
  const input = text.replace(/=\r?\n/g, '')
  const bytes: number[] = []
  for (let i = 0; i < input.length; i++) {
    const hex = input.slice(i + 1, i + 3)
    if (input[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16))
      i += 2
    } else {
      for (const b of Buffer.from(input[i] ?? '', 'utf8')) bytes.push(b)
    }
  }
  return Buffer.from(bytes)
}

function decodeCharset(bytes: Buffer, charset: string): string {
  try {
    return new TextDecoder(charset.trim().toLowerCase()).decode(bytes)
  } catch {
    return bytes.toString('latin1')
  }
}

/** Header text with RFC 2047 encoded words (=?utf-8?Q?...?= / =?utf-8?B?...?=) decoded. */
export function decodeHeader(value: string): string {
  return value
    .replace(/(\?=)\s+(?==\?)/g, '$1')
    .replace(
      /=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g,
      (_all, charset: string, encoding: string, data: string) => {
        const bytes =
          encoding.toUpperCase() === 'B'
            ? Buffer.from(data, 'base64')
            : fromQuotedPrintable(data.replaceAll('_', ' '))
        return decodeCharset(bytes, charset.split('*')[0] ?? charset)
      },
    )
}

const parameter = (header: string, name: string) =>
  new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, 'i').exec(header)

/**
 * The readable text of a MIME entity: the body decoded (base64, quoted-printable, charset); of a multipart
 * one, its first text/plain part (else its first part with any text).
 */
export function textOf(headers: Map<string, string>, body: string, depth = 0): string {
  const type = headers.get('content-type') ?? 'text/plain'
  const boundaryMatch = parameter(type, 'boundary')
  const boundary = boundaryMatch?.[1] ?? boundaryMatch?.[2]
  if (/^multipart\//i.test(type) && boundary && depth < 5) {
    const parts = body
      .split(`--${boundary}`)
      .slice(1)
      .filter((p) => !p.startsWith('--'))
      .map((p) => parseMessage(p.replace(/^[ \t]*\r?\n/, '')))
    const plain = parts.find((p) => /^text\/plain/i.test(p.headers.get('content-type') ?? 'text/plain'))
    for (const part of plain ? [plain] : parts) {
      const text = textOf(part.headers, part.body, depth + 1)
      if (text) return text
    }
    return ''
  }
  const encoding = (headers.get('content-transfer-encoding') ?? '7bit').toLowerCase()
  const charsetMatch = parameter(type, 'charset')
  const charset = charsetMatch?.[1] ?? charsetMatch?.[2] ?? 'utf-8'
  const decoded =
    encoding === 'base64'
      ? decodeCharset(Buffer.from(body.replace(/\s+/g, ''), 'base64'), charset)
      : encoding === 'quoted-printable'
        ? decodeCharset(fromQuotedPrintable(body), charset)
        : body
  return decoded.replace(/\r\n/g, '\n').trimEnd()
}

/** What the stand-in keeps of a received message. */
export function readMail(raw: string): {
  subject?: string
  text: string
  messageId?: string
  heraldId?: string
} {
  const { headers, body } = parseMessage(raw)
  const subject = headers.get('subject')
  const messageId = headers.get('message-id')
  const heraldId =
    headers.get('x-herald-id') ?? (messageId ? /^<(.+)@herald>$/.exec(messageId)?.[1] : undefined)
  return {
    ...(subject !== undefined ? { subject: decodeHeader(subject) } : {}),
    text: textOf(headers, body),
    ...(messageId ? { messageId } : {}),
    ...(heraldId ? { heraldId } : {}),
  }
}

/**
 * The reply for an injected transient failure. SMTP has no Retry-After: 503 (and 429) are "service not
 * available" 421, which also closes the connection; the SMTP codes 421/450/451/452 are used as they are;
 * anything else is 451 "local error in processing".
 */
function transientReply(faults: Faults): Error {
  switch (faults.status) {
    case 421:
    case 429:
    case 503:
      return smtpError(421, '4.3.2 Service not available, closing transmission channel')
    case 450:
      return smtpError(450, '4.2.1 Mailbox unavailable, try again later')
    case 452:
      return smtpError(452, '4.3.1 Insufficient system storage')
    default:
      return smtpError(451, '4.3.0 Temporary failure, please try again later')
  }
}

/** The RCPT TO reply for a permanently failing recipient (550 by default). */
function permanentReply(address: string, code: number | undefined): Error {
  switch (code) {
    case 551:
      return smtpError(551, `5.1.6 <${address}>: Recipient address rejected: User has moved`)
    case 552:
      return smtpError(552, `5.2.2 <${address}>: Recipient address rejected: Mailbox full`)
    case 553:
      return smtpError(553, `5.1.3 <${address}>: Recipient address rejected: Bad address syntax`)
    case 554:
      return smtpError(554, `5.7.1 <${address}>: Relay access denied`)
    default:
      return smtpError(550, `5.1.1 <${address}>: Recipient address rejected: User unknown`)
  }
}

export async function startSmtpStandIn(options: SmtpStandInOptions = {}): Promise<SmtpStandIn> {
  const state = new StandInState('smtp', options)
  const host = options.host ?? '127.0.0.1'
  const maxBytes = options.maxMessageBytes ?? 10 * 1024 * 1024
  const smtp = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    allowInsecureAuth: true,
    logger: false,
    banner: 'Herald SMTP stand-in',
    size: maxBytes,
    // Pooled clients keep connections open; do not wait the default 30 s for them on close.
    closeTimeout: 500,
    onAuth(_auth, _session, callback) {
      if (state.faults.authFail) callback(smtpError(535, '5.7.8 Authentication credentials invalid'))
      else callback(null, { user: 'herald' })
    },
    onMailFrom(_address, session, callback) {
      // With credentials rejected, a client that skipped AUTH is told it must authenticate.
      if (state.faults.authFail && !session.user) callback(smtpError(530, '5.7.0 Authentication required'))
      else callback()
    },
    onRcptTo(address, _session, callback) {
      const permanent = state.permanentError(address.address)
      if (permanent) callback(permanentReply(address.address, permanent.code))
      else callback()
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      let size = 0
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size <= maxBytes) chunks.push(chunk)
      })
      stream.on('error', (error) => callback(error))
      stream.on('end', () => {
        void (async () => {
          await state.delay()
          // Over `size`: smtp-server answers 552 whatever this callback says.
          if (stream.sizeExceeded) return callback()
          if (state.shouldFail(session.envelope.rcptTo[0]?.address))
            return callback(transientReply(state.faults))
          state.record({
            to: session.envelope.rcptTo.map((r) => r.address).join(', '),
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            ...readMail(Buffer.concat(chunks).toString('utf8')),
            size,
          })
          callback()
        })().catch((error: Error) => callback(smtpError(451, `4.3.0 ${error.message}`)))
      })
    },
  })
  smtp.on('error', (error) => {
    if (!options.quiet) console.error(`[smtp] ${error.message}`)
  })
  const smtpPort = options.port ?? 1025
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(`SMTP stand-in: port ${smtpPort} on ${host} is already in use`, { cause: error })
          : error,
      )
    smtp.server.once('error', onError)
    smtp.listen(smtpPort, host, () => {
      smtp.server.off('error', onError)
      resolve()
    })
  })
  const port = (smtp.server.address() as AddressInfo).port
  const closeSmtp = () => new Promise<void>((resolve) => smtp.close(() => resolve()))

  const http: Server = createSafeServer(
    async (req, res) => {
      if (!(await handleControl(req, res, state)))
        sendJson(res, 404, { error: 'not_found', message: 'GET|DELETE /messages, GET|PUT|DELETE /faults' })
    },
    (res) => sendJson(res, 400, { error: 'bad_request' }),
  )
  let httpPort: number
  try {
    httpPort = await listen(http, options.httpPort ?? 1080, host, 'SMTP stand-in (HTTP)')
  } catch (error) {
    await closeSmtp()
    throw error
  }
  return {
    provider: 'smtp',
    port,
    httpPort,
    url: localUrl('smtp', host, port),
    httpUrl: localUrl('http', host, httpPort),
    messages: () => state.messages(),
    clear: () => state.clear(),
    faults: () => state.faults,
    setFaults: (f) => state.setFaults(f),
    close: async () => {
      await Promise.all([closeSmtp(), closeServer(http)])
    },
  }
}
