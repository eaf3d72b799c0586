// herald rules list|get|set|delete|import: the api's rule endpoints from a shell (HERALD_URL, HERALD_API_KEY).
// `import` reads rules in the alerts engine's shape (its GET /alerts answer: a list, or {alerts: [...]}),
// from a file, stdin or the engine itself, converts them with the same function the rules service's
// compatibility mode uses, and PUTs each one: an alert that cannot be a rule is reported, the others are
// still imported.
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { type RefusedEngineAlert, rulesFromEngine } from '@herald/shared/rules/schemas'
import { parseDuration } from './cli-alarms.ts'
import { type CliIo, describeError } from './cli-config.ts'

export const rulesUsage = `usage (through the api: HERALD_URL, HERALD_API_KEY; --json prints the api's answer):
  npm run herald -- rules list [--source prometheus|alerts-engine] [--limit N] [--json]
  npm run herald -- rules get <name> [--json]
  npm run herald -- rules set <name> [--file <path>|-] [--query Q] [--interval D] [--repeat D] [--sustain D]
    [--warn VALUE:MESSAGE] [--critical VALUE:MESSAGE] [--source prometheus|alerts-engine]
    [--comparison above|below] [--label k=v (repeatable)] [--json]
  npm run herald -- rules delete <name> [--json]
  npm run herald -- rules import (--file <path>|- | --from <alerts engine URL>) [--json]
  durations D: 90 (seconds), 90s, 30m, 2h, 1d; import reads the engine's GET /alerts (a list or {alerts: [...]})
  --json: list a JSON array of the items, get the item, set the api's answer, delete {"deleted": name},
  import {"imported": [{name, status}], "refused": [...], "notWritten": [...]}
  exit codes: 0 done, 1 refused or failed (import: also when any alert was refused), 2 usage`

const verbs = ['list', 'get', 'set', 'delete', 'import'] as const
type Verb = (typeof verbs)[number]

const options = {
  json: { type: 'boolean' },
  limit: { type: 'string' },
  file: { type: 'string' },
  from: { type: 'string' },
  query: { type: 'string' },
  interval: { type: 'string' },
  repeat: { type: 'string' },
  sustain: { type: 'string' },
  warn: { type: 'string' },
  critical: { type: 'string' },
  source: { type: 'string' },
  comparison: { type: 'string' },
  label: { type: 'string', multiple: true },
} as const

type Values = ReturnType<typeof parseArgs<{ options: typeof options }>>['values']

interface Answer {
  status: number
  body: unknown
}

interface RuleItem {
  name: string
  rule: {
    source: string
    comparison: string
    intervalSecs: number
    warn?: { value: number }
    critical?: { value: number }
  }
  alarm: {
    activation: { severity?: string } | null
    effective: { state: string } | null
    queryFailing: boolean
  } | null
}

/** A JSON document from --file (a path, or - for stdin); a string is a usage error. */
function readJson(file: string, io: CliIo): { value: unknown } | string {
  let text: string
  try {
    text = file === '-' ? io.readStdin() : readFileSync(file, 'utf8')
  } catch (error) {
    return `--file ${file}: ${(error as Error).message}`
  }
  try {
    return { value: JSON.parse(text) }
  } catch (error) {
    return `--file ${file}: not JSON (${(error as Error).message})`
  }
}

/** `0.8:disk filling up` → {value: 0.8, message: 'disk filling up'}; a string is a usage error. */
function thresholdOf(flag: 'warn' | 'critical', text: string): { value: number; message: string } | string {
  const at = text.indexOf(':')
  const value = Number(text.slice(0, at))
  if (at <= 0 || text.slice(0, at).trim() === '' || !Number.isFinite(value)) {
    return `--${flag} must be VALUE:MESSAGE, e.g. --${flag} '0.9:disk over 90%'`
  }
  return { value, message: text.slice(at + 1) }
}

/** The rule from --file and flags (flags win); a string is a usage error. */
function ruleOf(values: Values, io: CliIo): Record<string, unknown> | string {
  let body: Record<string, unknown> = {}
  if (values.file !== undefined) {
    const read = readJson(values.file, io)
    if (typeof read === 'string') return read
    if (typeof read.value !== 'object' || read.value === null || Array.isArray(read.value)) {
      return `--file ${values.file}: not a JSON object`
    }
    body = read.value as Record<string, unknown>
  }
  const set = (field: string, value: unknown) => {
    if (value !== undefined) body[field] = value
  }
  set('query', values.query)
  set('source', values.source)
  set('comparison', values.comparison)
  const durations = {
    interval: 'intervalSecs',
    repeat: 'repeatIntervalSecs',
    sustain: 'sustainSecs',
  } as const
  for (const [flag, field] of Object.entries(durations) as Array<[keyof typeof durations, string]>) {
    const text = values[flag]
    if (text === undefined) continue
    const seconds = parseDuration(text)
    if (seconds === undefined) return `--${flag} must be a duration: 90, 90s, 30m, 2h or 1d`
    body[field] = seconds
  }
  for (const flag of ['warn', 'critical'] as const) {
    const text = values[flag]
    if (text === undefined) continue
    const threshold = thresholdOf(flag, text)
    if (typeof threshold === 'string') return threshold
    body[flag] = threshold
  }
  if (values.label !== undefined && values.label.length > 0) {
    const labels = Object.fromEntries(
      values.label.map((l) => {
        const at = l.indexOf('=')
        return at < 0 ? [l, ''] : [l.slice(0, at), l.slice(at + 1)]
      }),
    )
    body.labels = { ...((body.labels as object | undefined) ?? {}), ...labels }
  }
  return body
}

function summary(item: RuleItem): string {
  const { rule, alarm } = item
  const thresholds = [
    rule.warn === undefined ? undefined : `warn ${rule.warn.value}`,
    rule.critical === undefined ? undefined : `critical ${rule.critical.value}`,
  ]
    .filter(Boolean)
    .join(' ')
  const state = alarm === null ? '-' : (alarm.effective?.state ?? (alarm.activation ? 'active' : 'normal'))
  return [
    item.name,
    rule.source,
    `every ${rule.intervalSecs}s`,
    `${rule.comparison} ${thresholds}`,
    alarm?.queryFailing ? `${state} (query failing)` : state,
  ].join('\t')
}

function describeRefusal(refused: RefusedEngineAlert): string {
  const lines = [`refused alert #${refused.index}${refused.name === undefined ? '' : ` (${refused.name})`}`]
  for (const p of refused.problems) lines.push(`  ${p.field}: ${p.reason}`)
  return lines.join('\n')
}

/**
 * The engine's GET /alerts, retrying a few times: the alerts engine answers some calls with a 500 for no
 * reason (seed 003), which should not fail an import.
 */
async function fetchEngineAlerts(from: string, io: CliIo): Promise<{ value: unknown } | string> {
  let url: URL
  try {
    url = new URL('alerts', from.endsWith('/') ? from : `${from}/`)
  } catch {
    return `--from ${from}: not a URL`
  }
  let last = ''
  for (let attempt = 1; attempt <= 4; attempt++) {
    try {
      const res = await fetch(url, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(10_000),
      })
      const text = await res.text()
      if (res.ok) {
        try {
          return { value: JSON.parse(text) }
        } catch (error) {
          return `GET ${url}: not JSON (${(error as Error).message})`
        }
      }
      last = `GET ${url}: ${res.status} ${text.slice(0, 200)}`
      if (res.status < 500) return last
    } catch (error) {
      last = `GET ${url}: ${(error as Error).message}`
    }
    if (attempt < 4) {
      io.err(`${last} (attempt ${attempt} of 4; retrying)`)
      await sleep(250 * 2 ** attempt)
    }
  }
  return last
}

/** Runs one command; returns the exit code (0 ok, 1 refused or failed, 2 usage). */
export async function runRulesCommand(argv: string[], io: CliIo): Promise<number> {
  let parsed: { values: Values; positionals: string[] }
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options })
  } catch (error) {
    io.err(`${(error as Error).message}\n${rulesUsage}`)
    return 2
  }
  const { values, positionals } = parsed
  const [area, verb, name, ...extra] = positionals as [string?, string?, string?, ...string[]]
  const needsName = verb === 'get' || verb === 'set' || verb === 'delete'
  if (
    area !== 'rules' ||
    !verbs.includes(verb as Verb) ||
    (needsName ? !name : name !== undefined) ||
    extra.length > 0
  ) {
    io.err(rulesUsage)
    return 2
  }
  const base = (io.env.HERALD_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '')
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (io.env.HERALD_API_KEY) headers.authorization = `Bearer ${io.env.HERALD_API_KEY}`
  const request = async (method: string, path: string, body?: unknown): Promise<Answer> => {
    const res = await fetch(`${base}/api/v1/rules${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
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

  if (verb === 'list') {
    const limit = values.limit === undefined ? undefined : Number(values.limit)
    if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
      io.err('--limit must be a positive whole number')
      return 2
    }
    const source = values.source === undefined ? '' : `&source=${encodeURIComponent(values.source)}`
    const items: RuleItem[] = []
    let cursor: string | null = null
    do {
      const pageSize = Math.min(500, limit === undefined ? 500 : limit - items.length)
      const query: string = `?limit=${pageSize}${source}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`
      const answer = await request('GET', query)
      if (answer.status !== 200) return refused(answer)
      const page = answer.body as { rules: RuleItem[]; nextCursor: string | null }
      items.push(...page.rules)
      cursor = page.nextCursor
    } while (cursor && (limit === undefined || items.length < limit))
    if (values.json) io.out(JSON.stringify(items, null, 2))
    else {
      for (const item of items) io.out(summary(item))
      io.out(`${items.length} rule${items.length === 1 ? '' : 's'}`)
    }
    return 0
  }

  if (verb === 'get') {
    const answer = await request('GET', path)
    if (answer.status !== 200) return refused(answer)
    io.out(JSON.stringify(answer.body, null, values.json ? undefined : 2))
    return 0
  }

  if (verb === 'delete') {
    const answer = await request('DELETE', path)
    if (answer.status !== 204) return refused(answer)
    io.out(values.json ? JSON.stringify({ deleted: name }) : `deleted rule ${name}`)
    return 0
  }

  if (verb === 'set') {
    if (values.from !== undefined) {
      io.err('--from is for import; set takes --file and flags')
      return 2
    }
    const body = ruleOf(values, io)
    if (typeof body === 'string') {
      io.err(body)
      return 2
    }
    const answer = await request('PUT', path, body)
    if (answer.status !== 200 && answer.status !== 201) return refused(answer)
    if (values.json) io.out(JSON.stringify(answer.body))
    else io.out(`${answer.status === 201 ? 'created' : 'replaced'} rule ${name}`)
    return 0
  }

  // import
  if ((values.file === undefined) === (values.from === undefined)) {
    io.err(`import takes --file <path>|- or --from <alerts engine URL>, one of them\n${rulesUsage}`)
    return 2
  }
  const read =
    values.file !== undefined ? readJson(values.file, io) : await fetchEngineAlerts(values.from ?? '', io)
  if (typeof read === 'string') {
    io.err(read)
    return values.file !== undefined ? 2 : 1
  }
  const converted = rulesFromEngine(read.value)
  if (!converted.ok) {
    io.err(converted.problem)
    return 1
  }
  for (const r of converted.refused) io.err(describeRefusal(r))
  const imported: Array<{ name: string; status: 'created' | 'replaced' }> = []
  const notWritten: Array<{ name: string; status: number; body: unknown }> = []
  for (const rule of converted.rules) {
    const answer = await request('PUT', `/${encodeURIComponent(rule.name)}`, rule)
    if (answer.status === 200 || answer.status === 201) {
      const status = answer.status === 201 ? 'created' : 'replaced'
      imported.push({ name: rule.name, status })
      if (!values.json) io.out(`${status} rule ${rule.name}`)
    } else {
      notWritten.push({ name: rule.name, ...answer })
      io.err(`rule ${rule.name}: ${describeError(answer)}`)
    }
  }
  const refusedCount = converted.refused.length + notWritten.length
  if (values.json) {
    io.out(JSON.stringify({ imported, refused: converted.refused, notWritten }))
  } else {
    io.out(`${imported.length} imported, ${refusedCount} refused`)
  }
  return refusedCount > 0 ? 1 : 0
}
