// herald alarms list|get|register|unregister|activate|clear|ack|shelve|unshelve|disable|enable: the api's
// alarm endpoints from a shell (HERALD_URL, HERALD_API_KEY). `list --monitor` polls the list every second
// and prints one line per change of an alarm's effective state, across all partitions (the api reads them
// all): `time | user | source | host | name = state`, where time is when the alarm entered the state and
// user, source and host are the audit headers of the effective record the api shows ('-' when absent);
// with --json, one JSON object per change instead.
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { type CliIo, describeError } from './cli-config.ts'

export const alarmsUsage = `usage (through the api: HERALD_URL, HERALD_API_KEY; --json prints the api's answer):
  npm run herald -- alarms list [--state S[,S...]] [--label k=v (repeatable)] [--limit N] [--json]
  npm run herald -- alarms list --monitor [--state S[,S...]] [--label k=v (repeatable)] [--json]
  npm run herald -- alarms get <name> [--json]
  npm run herald -- alarms register <name> [--file <path>|-] [--class C] [--location L] [--category C]
    [--severity LOW|MEDIUM|HIGH|CRITICAL] [--latching|--no-latching] [--max-shelve D] [--on-delay D]
    [--off-delay D] [--masked-by NAME] [--repeat D] [--doc-url URL] [--label k=v (repeatable)]
  npm run herald -- alarms unregister <name>
  npm run herald -- alarms activate <name> [--severity S] [--message T] [--value N] [--source S]
  npm run herald -- alarms clear|ack|unshelve|enable <name>
  npm run herald -- alarms shelve <name> (--for D | --until T | --oneshot) --reason T
  npm run herald -- alarms disable <name> --reason T
  durations D: 90 (seconds), 90s, 30m, 2h, 1d; times T: ISO 8601 or milliseconds since the epoch
  --monitor polls every second; one line per change: time | user | source | host | name = state (--json: a
  JSON object per line: {"time", "name", "state", "user", "source", "host"}, null where unknown, and
  "unregistered": true when the alarm is gone)
  --json: list a JSON array of the items, get the item, register and the actions the api's answer,
  unregister {"unregistered": name}
  exit codes: 0 done (--monitor: interrupted), 1 refused or failed, 2 usage`

const actions = ['activate', 'clear', 'ack', 'shelve', 'unshelve', 'disable', 'enable'] as const
type Action = (typeof actions)[number]
const verbs = ['list', 'get', 'register', 'unregister', ...actions] as const
type Verb = (typeof verbs)[number]

/** What each action prints once the api took it. */
const done: Record<Action, string> = {
  activate: 'activated',
  clear: 'cleared',
  ack: 'acknowledged',
  shelve: 'shelved',
  unshelve: 'unshelved',
  disable: 'disabled',
  enable: 'enabled',
}

const units: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 }

/** Seconds of `90`, `90s`, `30m`, `2h`, `1d`; undefined for anything else. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)([smhd]?)$/.exec(text.trim())
  if (!match) return undefined
  return Number(match[1]) * (units[match[2] || 's'] ?? 1)
}

function labelsOf(given: string[] | undefined): Record<string, string> | undefined {
  if (given === undefined || given.length === 0) return undefined
  return Object.fromEntries(
    given.map((l) => {
      const at = l.indexOf('=')
      return at < 0 ? [l, ''] : [l.slice(0, at), l.slice(at + 1)]
    }),
  )
}

interface Answer {
  status: number
  body: unknown
}

interface AlarmItem {
  name: string
  registration: { severity?: string; latching?: boolean }
  activation: { at: number } | null
  effective: { state: string; severity: string; since: number; overrides: string[] } | null
  effectiveAudit: { user: string; source: string; host: string } | null
}

const options = {
  json: { type: 'boolean' },
  monitor: { type: 'boolean' },
  limit: { type: 'string' },
  state: { type: 'string' },
  label: { type: 'string', multiple: true },
  file: { type: 'string' },
  class: { type: 'string' },
  location: { type: 'string' },
  category: { type: 'string' },
  severity: { type: 'string' },
  latching: { type: 'boolean' },
  'max-shelve': { type: 'string' },
  'on-delay': { type: 'string' },
  'off-delay': { type: 'string' },
  'masked-by': { type: 'string' },
  repeat: { type: 'string' },
  'doc-url': { type: 'string' },
  message: { type: 'string' },
  value: { type: 'string' },
  source: { type: 'string' },
  for: { type: 'string' },
  until: { type: 'string' },
  oneshot: { type: 'boolean' },
  reason: { type: 'string' },
} as const

type Values = ReturnType<typeof parseArgs<{ options: typeof options; allowNegative: true }>>['values']

/** The registration from --file and flags (flags win); a string is a usage error. */
function registrationOf(values: Values, io: CliIo): Record<string, unknown> | string {
  let body: Record<string, unknown> = {}
  if (values.file !== undefined) {
    const text = values.file === '-' ? io.readStdin() : readFileSync(values.file, 'utf8')
    try {
      const parsed: unknown = JSON.parse(text)
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object')
      body = parsed as Record<string, unknown>
    } catch (error) {
      return `--file ${values.file}: not a JSON object (${(error as Error).message})`
    }
  }
  const set = (field: string, value: unknown) => {
    if (value !== undefined) body[field] = value
  }
  set('class', values.class)
  set('location', values.location)
  set('category', values.category)
  set('severity', values.severity?.toUpperCase())
  set('latching', values.latching)
  set('maskedBy', values['masked-by'])
  set('docUrl', values['doc-url'])
  const durations = {
    'max-shelve': 'maxShelveSeconds',
    'on-delay': 'onDelaySeconds',
    'off-delay': 'offDelaySeconds',
    repeat: 'repeatSeconds',
  } as const
  for (const [flag, field] of Object.entries(durations) as Array<[keyof typeof durations, string]>) {
    const text = values[flag]
    if (text === undefined) continue
    const seconds = parseDuration(text)
    if (seconds === undefined) return `--${flag} must be a duration: 90, 90s, 30m, 2h or 1d`
    body[field] = seconds
  }
  const labels = labelsOf(values.label)
  if (labels) body.labels = { ...((body.labels as object | undefined) ?? {}), ...labels }
  return body
}

/** The body of an action; a string is a usage error. */
function actionBody(action: Action, values: Values): Record<string, unknown> | string {
  if (action === 'activate') {
    const body: Record<string, unknown> = {}
    if (values.severity !== undefined) body.severity = values.severity.toUpperCase()
    if (values.message !== undefined) body.message = values.message
    if (values.source !== undefined) body.source = values.source
    if (values.value !== undefined) {
      const value = Number(values.value)
      if (values.value.trim() === '' || !Number.isFinite(value)) return '--value must be a number'
      body.value = value
    }
    return body
  }
  if (action === 'shelve') {
    if (values.reason === undefined) return 'shelve needs --reason "why"'
    if (values.for !== undefined && values.until !== undefined) return 'give --for or --until, not both'
    if (values.for === undefined && values.until === undefined && !values.oneshot) {
      return 'shelve needs --for D, --until T, or --oneshot (until the alarm clears)'
    }
    const body: Record<string, unknown> = { reason: values.reason }
    if (values.for !== undefined) {
      const seconds = parseDuration(values.for)
      if (seconds === undefined) return '--for must be a duration: 90, 90s, 30m, 2h or 1d'
      body.for = seconds
    }
    if (values.until !== undefined)
      body.until = /^\d+$/.test(values.until) ? Number(values.until) : values.until
    if (values.oneshot) body.oneshot = true
    return body
  }
  if (action === 'disable') {
    if (values.reason === undefined) return 'disable needs --reason "why"'
    return { reason: values.reason }
  }
  return {}
}

function when(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString()
}

function summary(item: AlarmItem): string {
  const e = item.effective
  const overrides = e && e.overrides.length > 0 ? e.overrides.join(',') : '-'
  return [
    item.name,
    e?.state ?? '-',
    e?.severity ?? item.registration.severity ?? '-',
    when(e?.since),
    overrides,
  ].join('\t')
}

/** A --monitor --json line: the same change as monitorLine, as fields. */
function monitorRecord(item: AlarmItem): Record<string, unknown> {
  const audit = item.effectiveAudit
  return {
    time: item.effective ? when(item.effective.since) : null,
    name: item.name,
    state: item.effective?.state ?? null,
    user: audit?.user ?? null,
    source: audit?.source ?? null,
    host: audit?.host ?? null,
  }
}

function monitorLine(item: AlarmItem): string {
  const audit = item.effectiveAudit
  const state = item.effective?.state ?? '(no effective state)'
  return `${when(item.effective?.since)} | ${audit?.user ?? '-'} | ${audit?.source ?? '-'} | ${audit?.host ?? '-'} | ${item.name} = ${state}`
}

/** Runs one command; returns the exit code (0 ok, 1 refused or failed, 2 usage). */
export async function runAlarmsCommand(
  argv: string[],
  io: CliIo & { signal?: AbortSignal },
): Promise<number> {
  let parsed: { values: Values; positionals: string[] }
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, allowNegative: true, options })
  } catch (error) {
    io.err(`${(error as Error).message}\n${alarmsUsage}`)
    return 2
  }
  const { values, positionals } = parsed
  const [area, verb, name, ...extra] = positionals as [string?, string?, string?, ...string[]]
  const needsName = verb !== 'list'
  if (
    area !== 'alarms' ||
    !verbs.includes(verb as Verb) ||
    (needsName ? !name : name !== undefined) ||
    extra.length > 0 ||
    (values.monitor && verb !== 'list')
  ) {
    io.err(alarmsUsage)
    return 2
  }
  const base = (io.env.HERALD_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '')
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (io.env.HERALD_API_KEY) headers.authorization = `Bearer ${io.env.HERALD_API_KEY}`
  const request = async (method: string, path: string, body?: unknown): Promise<Answer> => {
    const res = await fetch(`${base}/api/v1/alarms${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(io.signal ? { signal: io.signal } : {}),
    })
    const text = await res.text()
    let answer: unknown = text
    try {
      answer = text ? JSON.parse(text) : undefined
    } catch {}
    return { status: res.status, body: answer }
  }
  const path = name === undefined ? '' : `/${encodeURIComponent(name)}`
  const refused = (answer: Answer) => {
    io.err(describeError(answer))
    return 1
  }

  if (verb === 'list') return list(values, io, request)

  if (verb === 'get') {
    const answer = await request('GET', path)
    if (answer.status !== 200) return refused(answer)
    io.out(JSON.stringify(answer.body, null, values.json ? undefined : 2))
    return 0
  }

  if (verb === 'unregister') {
    const answer = await request('DELETE', path)
    if (answer.status !== 204) return refused(answer)
    io.out(values.json ? JSON.stringify({ unregistered: name }) : `unregistered alarm ${name}`)
    return 0
  }

  if (verb === 'register') {
    const body = registrationOf(values, io)
    if (typeof body === 'string') {
      io.err(body)
      return 2
    }
    const answer = await request('PUT', path, body)
    if (answer.status !== 200 && answer.status !== 201) return refused(answer)
    if (values.json) io.out(JSON.stringify(answer.body))
    else io.out(`${answer.status === 201 ? 'registered' : 'replaced'} alarm ${name}`)
    return 0
  }

  const action = verb as Action
  const body = actionBody(action, values)
  if (typeof body === 'string') {
    io.err(body)
    return 2
  }
  const answer = await request('POST', `${path}/${action}`, body)
  if (answer.status !== 202) return refused(answer)
  if (values.json) {
    io.out(JSON.stringify(answer.body))
    return 0
  }
  const value = (answer.body as { value: Record<string, unknown> | null }).value
  const detail =
    action === 'activate'
      ? ` (active since ${when(value?.at as number | undefined)})`
      : action === 'shelve'
        ? value?.until === undefined
          ? ' until it clears'
          : ` until ${when(value.until as number)}${value.oneshot ? ' or until it clears' : ''}`
        : ''
  io.out(`${done[action]} ${name}${detail}`)
  return 0
}

async function list(
  values: Values,
  io: CliIo & { signal?: AbortSignal },
  request: (method: string, path: string) => Promise<Answer>,
): Promise<number> {
  const limit = values.limit === undefined ? undefined : Number(values.limit)
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    io.err('--limit must be a positive whole number')
    return 2
  }
  if (values.monitor && limit !== undefined) {
    io.err('--monitor prints every alarm as it changes: no --limit')
    return 2
  }
  const states = values.state
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  const filters = (values.label ?? []).map((l) => `&label=${encodeURIComponent(l)}`).join('')
  /** Every page of the list (up to `limit` items), or the api's refusal. */
  const fetchAll = async (withStates: boolean): Promise<AlarmItem[] | Answer> => {
    const items: AlarmItem[] = []
    const stateFilter = withStates && states ? `&state=${encodeURIComponent(states.join(','))}` : ''
    let cursor: string | null = null
    do {
      const pageSize = Math.min(500, limit === undefined ? 500 : limit - items.length)
      const query: string = `?limit=${pageSize}${stateFilter}${filters}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`
      const answer = await request('GET', query)
      if (answer.status !== 200) return answer
      const page = answer.body as { alarms: AlarmItem[]; nextCursor: string | null }
      items.push(...page.alarms)
      cursor = page.nextCursor
    } while (cursor && (limit === undefined || items.length < limit))
    return items
  }

  if (!values.monitor) {
    const items = await fetchAll(true)
    if (!Array.isArray(items)) {
      io.err(describeError(items))
      return 1
    }
    if (values.json) io.out(JSON.stringify(items, null, 2))
    else {
      for (const item of items) io.out(summary(item))
      io.out(`${items.length} alarm${items.length === 1 ? '' : 's'}`)
    }
    return 0
  }

  // The state filter is applied here, not by the api: a change out of a state asked for is shown too.
  const shown = (state: string | undefined) => !states || (state !== undefined && states.includes(state))
  const last = new Map<string, { state: string | undefined; since: number | undefined }>()
  let failing = false
  while (!io.signal?.aborted) {
    let items: AlarmItem[] | Answer
    try {
      items = await fetchAll(false)
    } catch (error) {
      if (io.signal?.aborted) break
      items = { status: 0, body: { error: 'unreachable', message: (error as Error).message } }
    }
    if (!Array.isArray(items)) {
      // A refusal (a bad filter, a wrong key) will not change by waiting; an api away or loading may.
      if (items.status >= 400 && items.status < 500) {
        io.err(describeError(items))
        return 1
      }
      if (!failing) io.err(`${describeError(items)}\n(retrying every second)`)
      failing = true
    } else {
      failing = false
      const present = new Set<string>()
      for (const item of items) {
        present.add(item.name)
        const now = { state: item.effective?.state, since: item.effective?.since }
        const before = last.get(item.name)
        if (before?.state === now.state && before?.since === now.since) continue
        last.set(item.name, now)
        // An alarm the processor has not published yet is not a change to show.
        if (now.state === undefined && before === undefined) continue
        if (shown(now.state) || shown(before?.state))
          io.out(values.json ? JSON.stringify(monitorRecord(item)) : monitorLine(item))
      }
      for (const [gone, before] of last) {
        if (present.has(gone)) continue
        last.delete(gone)
        if (!shown(before.state)) continue
        const time = when(Date.now())
        io.out(
          values.json
            ? JSON.stringify({
                time,
                name: gone,
                state: null,
                user: null,
                source: null,
                host: null,
                unregistered: true,
              })
            : `${time} | - | - | - | ${gone} = (unregistered)`,
        )
      }
    }
    await sleep(1000, undefined, io.signal ? { signal: io.signal } : {}).catch(() => {})
  }
  return 0
}
