// herald send, herald status <id> [--watch] and herald lag [--channel C]: send a notification, where it is,
// and how far behind each channel's distributors are, through the api (HERALD_URL, HERALD_API_KEY):
// POST /api/v1/notification, GET /api/v1/notification/:id and GET /api/v1/channels, as the console uses them.
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import type { CliIo } from './cli-config.ts'
import { describeError } from './cli-config.ts'

export const opsVerbs = ['send', 'status', 'lag'] as const

export const opsUsage = `usage (through the api: HERALD_URL, HERALD_API_KEY; --json prints the api's answer):
  npm run herald -- send --channel email|sms|slack|webhook [--to ADDRESS] --message TEXT|- [--subject TEXT]
                        [--idempotency-key KEY] [--json]
  npm run herald -- send --recipient ID [--channel email|sms|slack] --message TEXT|- [--subject TEXT] [--json]
  npm run herald -- status <id> [--watch [--interval SECONDS]] [--json]
  npm run herald -- lag [--channel email|sms|slack|webhook] [--json]
  send prints the id of the accepted notification (a recipient's: the parent id, then each child's id and
  channel); --message - reads the text from stdin; --to defaults to the channel's configured recipient
  status prints a line per notification (id, status, channel, attempts, updated, last error), then its
  timeline, a line per status change (time, status, attempts, error; --json: the api's answer, with history)
  status --watch reads the status every interval (1 s) and prints each change until it is final, with the
  timeline entries not printed yet (with --json, one JSON line per change)
  exit codes: 0 done (send: accepted; status --watch: delivered), 1 refused or unreachable, 2 usage (send: also
  a notification the api finds invalid, 400/422), 3 no such notification, 4 status --watch ended
  dead-lettered or expired, 130 interrupted`

export const exitCodes = {
  ok: 0,
  failed: 1,
  usage: 2,
  notFound: 3,
  notDelivered: 4,
  interrupted: 130,
} as const

interface Change {
  status: string
  at: string
  attempts?: number
  lastError?: string
}
interface Status {
  id: string
  status: string
  channel?: string
  attempts: number
  lastError?: string
  updatedAt?: string
  createdAt?: string
  /** The status changes kept with it, oldest first. */
  history?: Change[]
}
interface Parent {
  id: string
  recipient: string
  children: Status[]
}
interface Channels {
  at: string
  channels: Array<{
    channel: string
    replicas: number | null
    lag: number
    oldestUnfinishedAgeSeconds: number | null
    deliveriesPerSecond: number | null
    partitions: Array<{
      partition: number
      next: number
      end: number
      lag: number
      oldestUnfinishedAgeSeconds: number | null
    }>
  }>
}

const finalStatuses = new Set(['delivered', 'dead_lettered', 'expired'])
const statusesOf = (found: Status | Parent): Status[] => ('children' in found ? found.children : [found])

function statusLine(s: Status): string {
  return [
    s.id,
    s.status,
    s.channel ?? '-',
    `attempts ${s.attempts}`,
    s.updatedAt ?? s.createdAt ?? '-',
    s.lastError ?? '',
  ]
    .join('\t')
    .trimEnd()
}

/** A timeline line, indented under its status line. */
function changeLine(c: Change): string {
  return ['', c.at, c.status, c.attempts === undefined ? '' : `attempts ${c.attempts}`, c.lastError ?? '']
    .join('\t')
    .trimEnd()
}

const changeKey = (id: string, c: Change) => `${id}|${c.at}|${c.status}|${c.attempts ?? ''}`

const options = {
  json: { type: 'boolean' },
  watch: { type: 'boolean' },
  interval: { type: 'string' },
  channel: { type: 'string' },
  to: { type: 'string' },
  recipient: { type: 'string' },
  message: { type: 'string' },
  subject: { type: 'string' },
  'idempotency-key': { type: 'string' },
} as const

const sendOptions = ['to', 'recipient', 'message', 'subject', 'idempotency-key'] as const

/** Runs `status` or `lag`; returns the exit code (exitCodes). */
export async function runOpsCommand(argv: string[], io: CliIo & { signal?: AbortSignal }): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options })
  } catch (error) {
    io.err(`${(error as Error).message}\n${opsUsage}`)
    return exitCodes.usage
  }
  const { values, positionals } = parsed
  const [verb, id, ...extra] = positionals
  const interval = values.interval === undefined ? 1 : Number(values.interval)
  const sendOnly = sendOptions.some((o) => values[o] !== undefined)
  const usage =
    extra.length > 0 ||
    (verb !== 'send' && sendOnly) ||
    (verb === 'send' &&
      (id !== undefined ||
        values.watch ||
        values.interval !== undefined ||
        values.message === undefined ||
        (values.to !== undefined && values.recipient !== undefined) ||
        (values.recipient === undefined && values.channel === undefined))) ||
    (verb === 'status' &&
      (!id || values.channel !== undefined || (!values.watch && values.interval !== undefined))) ||
    (verb === 'lag' && (id !== undefined || values.watch || values.interval !== undefined)) ||
    !(interval > 0 && interval <= 3600)
  if (usage || !(opsVerbs as readonly string[]).includes(verb ?? '')) {
    io.err(opsUsage)
    return exitCodes.usage
  }
  const base = (io.env.HERALD_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '')
  const headers: Record<string, string> = { accept: 'application/json' }
  if (io.env.HERALD_API_KEY) headers.authorization = `Bearer ${io.env.HERALD_API_KEY}`
  const get = async (path: string): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(`${base}/api/v1${path}`, { headers, ...(io.signal ? { signal: io.signal } : {}) })
    const text = await res.text()
    let body: unknown = text
    try {
      body = text ? JSON.parse(text) : undefined
    } catch {}
    return { status: res.status, body }
  }

  if (verb === 'send') {
    const message = values.message === '-' ? io.readStdin().replace(/\n$/, '') : (values.message as string)
    const body = {
      ...(values.recipient !== undefined ? { recipient: values.recipient } : {}),
      ...(values.channel !== undefined ? { channel: values.channel.toLowerCase() } : {}),
      ...(values.to !== undefined ? { to: values.to } : {}),
      message,
      ...(values.subject !== undefined ? { subject: values.subject } : {}),
    }
    let answer: { status: number; body: unknown }
    try {
      const res = await fetch(`${base}/api/v1/notification`, {
        method: 'POST',
        headers: {
          ...headers,
          'content-type': 'application/json',
          ...(values['idempotency-key'] ? { 'idempotency-key': values['idempotency-key'] } : {}),
        },
        body: JSON.stringify(body),
        ...(io.signal ? { signal: io.signal } : {}),
      })
      const text = await res.text()
      let parsed: unknown = text
      try {
        parsed = text ? JSON.parse(text) : undefined
      } catch {}
      answer = { status: res.status, body: parsed }
    } catch (error) {
      if (io.signal?.aborted) return exitCodes.interrupted
      io.err(`the api at ${base} did not answer: ${(error as Error).message}`)
      return exitCodes.failed
    }
    if (answer.status !== 202 && answer.status !== 200) {
      io.err(describeError(answer))
      return answer.status === 400 || answer.status === 422 ? exitCodes.usage : exitCodes.failed
    }
    const accepted = answer.body as { id: string; children?: Array<{ id: string; channel: string }> }
    if (values.json) io.out(JSON.stringify(accepted))
    else {
      io.out(accepted.id)
      for (const child of accepted.children ?? []) io.out(`${child.id}\t${child.channel}`)
    }
    return exitCodes.ok
  }

  if (verb === 'lag') {
    const query =
      values.channel === undefined ? '' : `?channel=${encodeURIComponent(values.channel.toLowerCase())}`
    const answer = await get(`/channels${query}`)
    if (answer.status !== 200) {
      io.err(describeError(answer))
      return answer.status === 400 ? exitCodes.usage : exitCodes.failed
    }
    const snapshot = answer.body as Channels
    if (values.json) {
      io.out(JSON.stringify(snapshot))
      return exitCodes.ok
    }
    const age = (s: number | null) => (s === null ? '-' : `${s}s`)
    const rate = (r: number | null) => (r === null ? '-' : `${r}/s`)
    io.out(['CHANNEL', 'LAG', 'PER_SECOND', 'OLDEST', 'REPLICAS'].join('\t'))
    for (const c of snapshot.channels) {
      io.out(
        [
          c.channel,
          c.lag,
          rate(c.deliveriesPerSecond),
          age(c.oldestUnfinishedAgeSeconds),
          c.replicas ?? '?',
        ].join('\t'),
      )
      if (values.channel === undefined) continue
      for (const p of c.partitions) {
        io.out(
          `  partition ${p.partition}\tnext ${p.next}\tend ${p.end}\tlag ${p.lag}\t${age(p.oldestUnfinishedAgeSeconds)}`,
        )
      }
    }
    return exitCodes.ok
  }

  const path = `/notification/${encodeURIComponent(id as string)}`
  let last = ''
  // The timeline entries printed so far: --watch prints each one once, under the status line that changed.
  const printed = new Set<string>()
  for (;;) {
    let answer: { status: number; body: unknown }
    try {
      answer = await get(path)
    } catch (error) {
      if (io.signal?.aborted) return exitCodes.interrupted
      io.err(`the api at ${base} did not answer: ${(error as Error).message}`)
      return exitCodes.failed
    }
    if (answer.status === 404) {
      io.err(describeError(answer))
      return exitCodes.notFound
    }
    if (answer.status !== 200) {
      io.err(describeError(answer))
      return exitCodes.failed
    }
    const found = answer.body as Status | Parent
    const all = statusesOf(found)
    const shown = JSON.stringify(found)
    if (shown !== last) {
      last = shown
      if (values.json) io.out(shown)
      else {
        if ('children' in found) io.out(`${found.id}\trecipient ${found.recipient}`)
        for (const s of all) {
          io.out(statusLine(s))
          for (const c of s.history ?? []) {
            const key = changeKey(s.id, c)
            if (printed.has(key)) continue
            printed.add(key)
            io.out(changeLine(c))
          }
        }
      }
    }
    if (!values.watch) return exitCodes.ok
    if (all.every((s) => finalStatuses.has(s.status))) {
      return all.every((s) => s.status === 'delivered') ? exitCodes.ok : exitCodes.notDelivered
    }
    await sleep(interval * 1000, undefined, io.signal ? { signal: io.signal } : {}).catch(() => {})
    if (io.signal?.aborted) return exitCodes.interrupted
  }
}
