// herald recipients|templates|routes list|get|set|delete: the api's configuration endpoints from a shell.
// Talks to HERALD_URL (default http://127.0.0.1:8080) with HERALD_API_KEY; `set` reads a JSON body from
// --file <path> (or - for stdin) and/or flags, the flags winning over the file.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

export const configAreas = ['recipients', 'templates', 'routes'] as const
type Area = (typeof configAreas)[number]

export const configUsage = `usage (through the api: HERALD_URL, HERALD_API_KEY):
  npm run herald -- <recipients|templates|routes> list [--limit N] [--json]
  npm run herald -- <recipients|templates|routes> get <name> [--json]
  npm run herald -- <recipients|templates|routes> delete <name> [--json]
  npm run herald -- <recipients|templates|routes> set <name> [--file <path>|-] [flags] [--json]
    recipients: --name T --email A --phone +E164 --slack DEST --channels email,sms,slack --timezone Z
                --quiet-hours HH:MM-HH:MM
    templates:  --channel email|sms|slack --subject T --body T
    routes:     --alarm-name N --alarm-definition-id D --states ALARM,OK --severity HIGH,CRITICAL
                --label k=v (repeatable) --recipients a,b --channels email,sms --template NAME
                --period SECONDS
  --json: list a JSON array of the items, get the item, set the api's answer, delete {"deleted": name}
  exit codes: 0 done, 1 refused or failed, 2 usage`

export interface CliIo {
  env: Record<string, string | undefined>
  out: (line: string) => void
  err: (line: string) => void
  readStdin: () => string
}

const list = (v: string | undefined) =>
  v === undefined
    ? undefined
    : v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)

function flagsBody(area: Area, v: Record<string, string | string[] | boolean | undefined>) {
  const s = (name: string) => v[name] as string | undefined
  const body: Record<string, unknown> = {}
  const set = (key: string, value: unknown) => {
    if (value !== undefined) body[key] = value
  }
  if (area === 'recipients') {
    set('name', s('name'))
    set('email', s('email'))
    set('phone', s('phone'))
    set('slack', s('slack'))
    set('channels', list(s('channels')))
    set('timezone', s('timezone'))
    const quiet = s('quiet-hours')
    if (quiet !== undefined) {
      const [start, end] = quiet.split('-')
      body.quietHours = { start, end }
    }
  } else if (area === 'templates') {
    set('channel', s('channel'))
    set('subject', s('subject'))
    set('body', s('body'))
  } else {
    const match: Record<string, unknown> = {}
    if (s('alarm-name') !== undefined) match.alarmName = s('alarm-name')
    if (s('alarm-definition-id') !== undefined) match.alarmDefinitionId = s('alarm-definition-id')
    if (s('states') !== undefined) match.states = list(s('states'))?.map((x) => x.toUpperCase())
    if (s('severity') !== undefined) match.severity = list(s('severity'))
    const labels = v.label as string[] | undefined
    if (labels && labels.length > 0) {
      match.labels = Object.fromEntries(
        labels.map((l) => {
          const at = l.indexOf('=')
          return at < 0 ? [l, ''] : [l.slice(0, at), l.slice(at + 1)]
        }),
      )
    }
    if (Object.keys(match).length > 0) body.match = match
    set('recipients', list(s('recipients')))
    set('channels', list(s('channels')))
    set('template', s('template'))
    const period = s('period')
    if (period !== undefined) body.periodSeconds = Number(period)
  }
  return body
}

interface Answer {
  status: number
  body: unknown
}

export function describeError(answer: Answer): string {
  const b = answer.body as {
    error?: string
    message?: string
    details?: Array<{ field: string; reason: string }>
  }
  const lines = [`${answer.status} ${b?.error ?? ''}: ${b?.message ?? JSON.stringify(answer.body)}`]
  for (const d of b?.details ?? []) lines.push(`  ${d.field}: ${d.reason}`)
  return lines.join('\n')
}

const options = {
  json: { type: 'boolean' },
  limit: { type: 'string' },
  file: { type: 'string' },
  name: { type: 'string' },
  email: { type: 'string' },
  phone: { type: 'string' },
  slack: { type: 'string' },
  channels: { type: 'string' },
  timezone: { type: 'string' },
  'quiet-hours': { type: 'string' },
  channel: { type: 'string' },
  subject: { type: 'string' },
  body: { type: 'string' },
  'alarm-name': { type: 'string' },
  'alarm-definition-id': { type: 'string' },
  states: { type: 'string' },
  severity: { type: 'string' },
  label: { type: 'string', multiple: true },
  recipients: { type: 'string' },
  template: { type: 'string' },
  period: { type: 'string' },
} as const

/** Runs one command; returns the exit code (0 ok, 1 refused or failed, 2 usage). */
export async function runConfigCommand(argv: string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options })
  } catch (error) {
    io.err(`${(error as Error).message}\n${configUsage}`)
    return 2
  }
  const { values, positionals } = parsed
  const [area, action, name] = positionals as [string | undefined, string | undefined, string | undefined]
  const needsName = action === 'get' || action === 'set' || action === 'delete'
  if (
    !configAreas.includes(area as Area) ||
    !['list', 'get', 'set', 'delete'].includes(action ?? '') ||
    (needsName && !name) ||
    positionals.length > (needsName ? 3 : 2)
  ) {
    io.err(configUsage)
    return 2
  }
  const kind = area as Area
  const base = (io.env.HERALD_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '')
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (io.env.HERALD_API_KEY) headers.authorization = `Bearer ${io.env.HERALD_API_KEY}`
  const request = async (method: string, path: string, body?: unknown): Promise<Answer> => {
    const res = await fetch(`${base}/api/v1/${kind}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    const text = await res.text()
    let parsed: unknown = text
    try {
      parsed = text ? JSON.parse(text) : undefined
    } catch {}
    return { status: res.status, body: parsed }
  }
  const path = name === undefined ? '' : `/${encodeURIComponent(name)}`

  if (action === 'list') {
    const limit = values.limit === undefined ? undefined : Number(values.limit)
    if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
      io.err('--limit must be a positive whole number')
      return 2
    }
    const items: Array<Record<string, unknown>> = []
    let cursor: string | null = null
    do {
      const pageSize = Math.min(500, limit === undefined ? 500 : limit - items.length)
      const query: string = `?limit=${pageSize}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`
      const answer = await request('GET', query)
      if (answer.status !== 200) {
        io.err(describeError(answer))
        return 1
      }
      const page = answer.body as Record<string, unknown>
      items.push(...((page[kind] as Array<Record<string, unknown>>) ?? []))
      cursor = (page.nextCursor as string | null) ?? null
    } while (cursor && (limit === undefined || items.length < limit))
    if (values.json) io.out(JSON.stringify(items, null, 2))
    else {
      for (const item of items) io.out(summary(kind, item))
      io.out(`${items.length} ${kind}`)
    }
    return 0
  }

  if (action === 'get') {
    const answer = await request('GET', path)
    if (answer.status !== 200) {
      io.err(describeError(answer))
      return 1
    }
    io.out(JSON.stringify(answer.body, null, values.json ? undefined : 2))
    return 0
  }

  if (action === 'delete') {
    const answer = await request('DELETE', path)
    if (answer.status !== 204) {
      io.err(describeError(answer))
      return 1
    }
    if (values.json) io.out(JSON.stringify({ deleted: name }))
    else io.out(`deleted ${kind.slice(0, -1)} ${name}`)
    return 0
  }

  // set
  let body: Record<string, unknown> = {}
  if (values.file !== undefined) {
    const text = values.file === '-' ? io.readStdin() : readFileSync(values.file, 'utf8')
    try {
      const parsed: unknown = JSON.parse(text)
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object')
      body = parsed as Record<string, unknown>
    } catch (error) {
      io.err(`--file ${values.file}: not a JSON object (${(error as Error).message})`)
      return 2
    }
  }
  const fromFlags = flagsBody(kind, values)
  if (fromFlags.match && body.match && typeof body.match === 'object') {
    fromFlags.match = { ...(body.match as object), ...(fromFlags.match as object) }
  }
  body = { ...body, ...fromFlags }
  const answer = await request('PUT', path, body)
  if (answer.status !== 200 && answer.status !== 201) {
    io.err(describeError(answer))
    return 1
  }
  if (values.json) io.out(JSON.stringify(answer.body))
  else io.out(`${answer.status === 201 ? 'created' : 'replaced'} ${kind.slice(0, -1)} ${name}`)
  return 0
}

function summary(kind: Area, item: Record<string, unknown>): string {
  if (kind === 'recipients') {
    return `${item.id}\t${item.name}\t${((item.channels as string[]) ?? []).join(',') || '-'}`
  }
  if (kind === 'templates') return `${item.name}\t${item.channel}`
  const match = (item.match ?? {}) as Record<string, unknown>
  const what = match.alarmDefinitionId ?? match.alarmName ?? '*'
  return `${item.name}\t${what}\t${((match.states as string[]) ?? []).join(',')}\t${((item.recipients as string[]) ?? []).join(',')}`
}
