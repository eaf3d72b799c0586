// herald alarm-events send: posts alarm events to the api (HERALD_URL, HERALD_API_KEY) and prints their ids.
// The events come from a JSON file (one event or an array; - or no file and no flags: stdin), or from flags.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { type CliIo, describeError } from './cli-config.ts'

export const alarmEventsUsage = `usage (through the api: HERALD_URL, HERALD_API_KEY):
  npm run herald -- alarm-events send <file.json|->        one event or a JSON array (- or nothing: stdin)
  npm run herald -- alarm-events send --alarm-name N --state ALARM|OK|UNDETERMINED [--old-state S]
    [--definition-id D] [--alarm-id A] [--severity S] [--reason T] [--label k=v (repeatable)] [--link URL]
    [--timestamp ms|ISO time (default now)]
  prints the id of each event the api accepted, a line each; --json prints the api's answer as it is
  ({"eventId": ID} for one event, {"eventIds": [ID, ...]} for an array)
  exit codes: 0 sent, 1 refused or failed, 2 usage (also an empty or unreadable file, or not JSON)`

const flagNames = [
  'alarm-name',
  'definition-id',
  'alarm-id',
  'state',
  'old-state',
  'severity',
  'reason',
  'link',
  'timestamp',
] as const

/** A timestamp flag in milliseconds: a whole number as it is, anything else read as a date. */
function timestampOf(text: string | undefined): number | undefined {
  if (text === undefined) return Date.now()
  if (/^\d+$/.test(text)) return Number(text)
  const ms = Date.parse(text)
  return Number.isNaN(ms) ? undefined : ms
}

function eventFromFlags(
  values: Partial<Record<(typeof flagNames)[number], string>>,
  labels: string[],
): Record<string, unknown> | string {
  const timestamp = timestampOf(values.timestamp)
  if (timestamp === undefined) return '--timestamp must be milliseconds since the epoch or a date/time'
  const event: Record<string, unknown> = {}
  const set = (field: string, value: unknown) => {
    if (value !== undefined) event[field] = value
  }
  set('alarmId', values['alarm-id'])
  set('alarmDefinitionId', values['definition-id'])
  set('alarmName', values['alarm-name'])
  set('oldState', values['old-state']?.toUpperCase())
  set('newState', values.state?.toUpperCase())
  set('stateChangeReason', values.reason)
  set('severity', values.severity)
  set('link', values.link)
  event.timestamp = timestamp
  if (labels.length > 0) {
    event.labels = Object.fromEntries(
      labels.map((l) => {
        const at = l.indexOf('=')
        return at < 0 ? [l, ''] : [l.slice(0, at), l.slice(at + 1)]
      }),
    )
  }
  return event
}

const options = {
  json: { type: 'boolean' },
  label: { type: 'string', multiple: true },
  'alarm-name': { type: 'string' },
  'definition-id': { type: 'string' },
  'alarm-id': { type: 'string' },
  state: { type: 'string' },
  'old-state': { type: 'string' },
  severity: { type: 'string' },
  reason: { type: 'string' },
  link: { type: 'string' },
  timestamp: { type: 'string' },
} as const

/** Runs `alarm-events send`; returns the exit code (0 sent, 1 refused or failed, 2 usage). */
export async function runAlarmEventsCommand(argv: string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options })
  } catch (error) {
    io.err(`${(error as Error).message}\n${alarmEventsUsage}`)
    return 2
  }
  const { values, positionals } = parsed
  const [area, action, file, ...extra] = positionals
  const labels = values.label ?? []
  const flagged = flagNames.some((name) => values[name] !== undefined) || labels.length > 0
  if (area !== 'alarm-events' || action !== 'send' || extra.length > 0 || (file !== undefined && flagged)) {
    io.err(alarmEventsUsage)
    return 2
  }
  let body: unknown
  if (flagged) {
    const event = eventFromFlags(values, labels)
    if (typeof event === 'string') {
      io.err(event)
      return 2
    }
    body = event
  } else {
    const source = file === undefined || file === '-' ? 'stdin' : file
    let text: string
    try {
      text = source === 'stdin' ? io.readStdin() : readFileSync(source, 'utf8')
    } catch (error) {
      io.err(`${source}: ${(error as Error).message}`)
      return 2
    }
    if (text.trim() === '') {
      io.err(
        `${source} is empty: give a JSON event (or an array), or --alarm-name and --state\n${alarmEventsUsage}`,
      )
      return 2
    }
    try {
      body = JSON.parse(text)
    } catch (error) {
      io.err(`${source}: not JSON (${(error as Error).message})`)
      return 2
    }
  }

  const base = (io.env.HERALD_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '')
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (io.env.HERALD_API_KEY) headers.authorization = `Bearer ${io.env.HERALD_API_KEY}`
  const res = await fetch(`${base}/api/v1/alarm-events`, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
  })
  const text = await res.text()
  let answer: unknown = text
  try {
    answer = text ? JSON.parse(text) : undefined
  } catch {}
  if (res.status !== 202) {
    io.err(describeError({ status: res.status, body: answer }))
    return 1
  }
  if (values.json) io.out(JSON.stringify(answer))
  else {
    const { eventId, eventIds } = answer as { eventId?: string; eventIds?: string[] }
    for (const id of eventIds ?? [eventId]) io.out(String(id))
  }
  return 0
}
