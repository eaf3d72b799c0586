// A stand-in for the alerts engine alert-exec polls (seed 003): GET /alerts (the rules), GET /query?target=
// (a metric's value), POST /notify and POST /resolve, with the engine's random HTTP 500s (1.5% of calls by
// default, on every one of those endpoints). Values are scripted per query over time; every notify and
// resolve that was answered 200 is recorded. Control endpoints live under /_standin/ and never fail:
//
//   GET|PUT        /_standin/alerts   the list GET /alerts answers (PUT: a list, or {"alerts": [...]})
//   GET|PUT|DELETE /_standin/values   value scripts by query; PUT merges {"<query>": <script>, ...}
//   GET|DELETE     /_standin/calls    recorded notify/resolve calls (?since=<seq>&alertName=&kind=)
//   GET|PUT|DELETE /_standin/faults   {failRate, failNext, status, latencyMs, seed}; DELETE = no faults
//   GET            /_standin/health   counts of requests and injected failures per endpoint
//
// A script is a number (always that value), null (the query always fails with 500), or a list of steps
// `{"after": <seconds after the PUT>, "value": ...}` or `{"at": <epoch ms>, "value": ...}`: each step's
// value holds from its time until the next step; before the first one the query has no value (404), and a
// null value fails the query (500) for as long as it holds.
//
// Run on its own: node dev/standins/alerts-engine.ts [--port 4040] [--host 127.0.0.1] [--alerts file.json]
// [--values file.json] [--fail-rate 0.015] [--seed N] [--quiet]. Only node: modules here (sandbox image).
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  BodyTooLargeError,
  closeServer,
  createSafeServer,
  listen,
  localUrl,
  readBody,
  sendJson,
} from './common.ts'

/** The share of calls the real engine answers with HTTP 500 (seed 003). */
export const defaultEngineFailRate = 0.015

export interface EngineFaults {
  /** Share of engine calls (0..1) that fail with `status`: 0.015 when no faults are given at all. */
  failRate?: number
  /** The next N engine calls fail with `status` (deterministic; handy in tests). */
  failNext?: number
  /** HTTP status of an injected failure: 500 by default, like the engine. */
  status?: number
  /** Extra delay before every engine answer. */
  latencyMs?: number
  /** Seed for `failRate`'s draws: the same seed fails the same calls. */
  seed?: number
}

export type ValueStep = { after: number; value: number | null } | { at: number; value: number | null }
/** A number (always), null (always failing), or steps over time. */
export type ValueScript = number | null | ValueStep[]

export interface EngineCall {
  seq: number
  /** ISO time the call was answered. */
  at: string
  kind: 'notify' | 'resolve'
  alertName: string
  /** notify only. */
  message?: string
}

export const engineEndpoints = ['alerts', 'query', 'notify', 'resolve'] as const
export type EngineEndpoint = (typeof engineEndpoints)[number]

export interface EngineStats {
  /** Engine calls received per endpoint (the control endpoints are not counted). */
  requests: Record<EngineEndpoint, number>
  /** Of those, answered with an injected failure. */
  failed: Record<EngineEndpoint, number>
}

export interface AlertsEngineStandInOptions {
  /** HTTP port: 4040 by default, 0 for any free port. */
  port?: number
  /** Interface to listen on (127.0.0.1; 0.0.0.0 in a container). */
  host?: string
  /** What GET /alerts answers at start: the engine's alert objects, as they are (not validated). */
  alerts?: unknown[]
  /** A JSON file with the alerts (a list, or {"alerts": [...]}); `alerts` wins when both are given. */
  alertsFile?: string
  /** Value scripts by query at start. */
  values?: Record<string, ValueScript>
  /** Faults at start; when absent, failRate 0.015 (the engine's). `{}` means none. */
  faults?: EngineFaults
  /** Appends every recorded call to `<recordDir>/alerts-engine.jsonl`. */
  recordDir?: string
  /** No log line per call. */
  quiet?: boolean
  /** Keeps only the newest N calls in memory (all by default). */
  maxCalls?: number
  /** The clock of the value scripts (Date.now by default). */
  now?: () => number
}

export interface AlertsEngineStandIn {
  readonly port: number
  readonly url: string
  alerts(): unknown[]
  /** Replaces what GET /alerts answers (a list, or {"alerts": [...]}); throws on anything else. */
  setAlerts(alerts: unknown): void
  /** Sets the scripts of the queries named (others are kept); throws, changing nothing, on a bad script. */
  setValues(values: Record<string, ValueScript>): void
  clearValues(): void
  /** The scripted value of `query` at `at` (now by default): undefined = no value, null = failing. */
  valueAt(query: string, at?: number): number | null | undefined
  calls(): EngineCall[]
  clearCalls(): void
  faults(): EngineFaults
  /** Replaces the faults (validated: a wrong value throws and leaves the current ones). */
  setFaults(faults: EngineFaults): void
  stats(): EngineStats
  close(): Promise<void>
}

const faultKeys = ['failRate', 'failNext', 'status', 'latencyMs', 'seed'] as const

const isInteger = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
const isNumber = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

/** Checks engine faults (from JSON or code); throws a readable error naming the field when one is wrong. */
export function parseEngineFaults(value: unknown): EngineFaults {
  if (!isObject(value)) throw new Error('faults must be a JSON object, e.g. {"failRate":0.02}')
  const unknown = Object.keys(value).filter((k) => !(faultKeys as readonly string[]).includes(k))
  if (unknown.length > 0)
    throw new Error(`unknown fault ${unknown.join(', ')}; known: ${faultKeys.join(', ')}`)
  const { failRate, failNext, status, latencyMs, seed } = value
  const faults: EngineFaults = {}
  if (failRate !== undefined) {
    if (!isNumber(failRate, 0, 1)) throw new Error('failRate must be a number from 0 to 1')
    faults.failRate = failRate
  }
  if (failNext !== undefined) {
    if (!isInteger(failNext, 0, 1e9)) throw new Error('failNext must be a whole number >= 0')
    faults.failNext = failNext
  }
  if (status !== undefined) {
    if (!isInteger(status, 400, 599)) throw new Error('status must be an HTTP error status (400-599)')
    faults.status = status
  }
  if (latencyMs !== undefined) {
    if (!isNumber(latencyMs, 0, 600_000)) throw new Error('latencyMs must be milliseconds (0-600000)')
    faults.latencyMs = latencyMs
  }
  if (seed !== undefined) {
    if (!isInteger(seed, 0, 2 ** 32 - 1)) throw new Error('seed must be a whole number (0-4294967295)')
    faults.seed = seed
  }
  return faults
}

/** The alerts of a body or file: a list, or {"alerts": [...]}, of JSON objects. */
export function parseEngineAlerts(value: unknown): unknown[] {
  const list = isObject(value) && 'alerts' in value ? value.alerts : value
  if (!Array.isArray(list)) throw new Error('alerts must be a JSON list of alerts (or {"alerts": [...]})')
  const bad = list.findIndex((a) => !isObject(a))
  if (bad >= 0) throw new Error(`alerts[${bad}] must be a JSON object`)
  return structuredClone(list)
}

interface Step {
  from: number
  value: number | null
}

const stepValue = (v: unknown, where: string): number | null => {
  if (v === null || (typeof v === 'number' && Number.isFinite(v))) return v
  throw new Error(`${where}.value must be a finite number, or null for a failing query`)
}

/** A script as absolute steps, oldest first; `setAt` anchors the `after` steps. */
export function parseValueScript(query: string, script: unknown, setAt: number): Step[] {
  const where = `values[${JSON.stringify(query)}]`
  if (!Array.isArray(script)) return [{ from: Number.NEGATIVE_INFINITY, value: stepValue(script, where) }]
  const steps = script.map((step: unknown, i): Step => {
    const at = `${where}[${i}]`
    if (!isObject(step))
      throw new Error(`${at} must be {"after": seconds, "value": v} or {"at": ms, "value": v}`)
    const value = stepValue(step.value, at)
    if (step.after !== undefined && step.at === undefined) {
      if (!isNumber(step.after, 0, 10 * 365 * 86_400)) throw new Error(`${at}.after must be seconds >= 0`)
      return { from: setAt + step.after * 1000, value }
    }
    if (step.at !== undefined && step.after === undefined) {
      if (!isInteger(step.at, 0, Number.MAX_SAFE_INTEGER))
        throw new Error(`${at}.at must be epoch milliseconds`)
      return { from: step.at, value }
    }
    throw new Error(`${at} needs exactly one of after (seconds from now) or at (epoch ms)`)
  })
  return steps.sort((a, b) => a.from - b.from)
}

/** xorshift32: a small deterministic generator for seeded `failRate` draws. */
function randomFrom(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x / 2 ** 32
  }
}

const zeroCounts = (): Record<EngineEndpoint, number> => ({ alerts: 0, query: 0, notify: 0, resolve: 0 })

export async function startAlertsEngineStandIn(
  options: AlertsEngineStandInOptions = {},
): Promise<AlertsEngineStandIn> {
  const host = options.host ?? '127.0.0.1'
  const now = options.now ?? Date.now
  const quiet = options.quiet ?? false
  const maxCalls = options.maxCalls ?? Number.POSITIVE_INFINITY
  let recordFile: string | undefined
  if (options.recordDir) {
    mkdirSync(options.recordDir, { recursive: true })
    recordFile = join(options.recordDir, 'alerts-engine.jsonl')
  }
  let alerts: unknown[] =
    options.alerts !== undefined
      ? parseEngineAlerts(options.alerts)
      : options.alertsFile !== undefined
        ? readAlertsFile(options.alertsFile)
        : []
  const scripts = new Map<string, Step[]>()
  let faults: EngineFaults = {}
  let random: () => number = Math.random
  let calls: EngineCall[] = []
  let seq = 0
  const stats: EngineStats = { requests: zeroCounts(), failed: zeroCounts() }

  const setFaults = (next: EngineFaults) => {
    faults = parseEngineFaults(next)
    random = faults.seed === undefined ? Math.random : randomFrom(faults.seed)
  }
  const setValues = (values: Record<string, ValueScript>) => {
    if (!isObject(values)) throw new Error('values must be a JSON object {"<query>": <script>, ...}')
    const at = now()
    const parsed = Object.entries(values).map(
      ([query, script]) => [query, parseValueScript(query, script, at)] as const,
    )
    for (const [query, steps] of parsed) scripts.set(query, steps)
  }
  const valueAt = (query: string, at = now()): number | null | undefined => {
    let value: number | null | undefined
    for (const step of scripts.get(query) ?? []) {
      if (step.from > at) break
      value = step.value
    }
    return value
  }
  /** Whether this engine call fails now: it consumes one `failNext`, else draws against `failRate`. */
  const shouldFail = (): boolean => {
    if ((faults.failNext ?? 0) > 0) {
      faults = { ...faults, failNext: (faults.failNext ?? 0) - 1 }
      return true
    }
    return (faults.failRate ?? 0) > 0 && random() < (faults.failRate ?? 0)
  }
  const record = (call: Omit<EngineCall, 'seq' | 'at'>) => {
    const entry: EngineCall = { seq: ++seq, at: new Date().toISOString(), ...call }
    calls.push(entry)
    if (calls.length > maxCalls) calls.shift()
    if (recordFile) {
      try {
        appendFileSync(recordFile, `${JSON.stringify(entry)}\n`)
      } catch (error) {
        console.error(`[alerts-engine] cannot append to ${recordFile}: ${(error as Error).message}`)
      }
    }
    if (!quiet) {
      const what =
        entry.message === undefined ? '' : `: ${entry.message.replaceAll(/\s+/g, ' ').slice(0, 60)}`
      console.log(`[alerts-engine] #${entry.seq} ${entry.kind} ${entry.alertName}${what}`)
    }
  }

  setFaults(options.faults ?? { failRate: defaultEngineFailRate })
  if (options.values) setValues(options.values)

  const notAllowed = (res: ServerResponse, allow: string) =>
    sendJson(res, 405, { error: 'method_not_allowed', allow }, { allow: allow.replaceAll(' ', ', ') })
  const readJson = async (req: IncomingMessage): Promise<unknown> =>
    JSON.parse((await readBody(req, 1024 * 1024)).toString('utf8'))
  const badRequest = (res: ServerResponse, error: unknown) =>
    sendJson(res, 400, { error: 'bad_request', message: (error as Error).message })

  /** The control endpoints; false for any other path. */
  const control = async (req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams) => {
    switch (path) {
      case '/_standin/alerts':
        if (req.method === 'GET') return sendJson(res, 200, alerts)
        if (req.method !== 'PUT') return notAllowed(res, 'GET PUT')
        try {
          alerts = parseEngineAlerts(await readJson(req))
        } catch (error) {
          return badRequest(res, error)
        }
        return sendJson(res, 200, alerts)
      case '/_standin/values':
        if (req.method === 'GET') {
          const shown = Object.fromEntries(
            [...scripts].map(([q, steps]) => [
              q,
              steps.map((s) => ({ from: Number.isFinite(s.from) ? s.from : null, value: s.value })),
            ]),
          )
          return sendJson(res, 200, shown)
        }
        if (req.method === 'DELETE') {
          scripts.clear()
          return sendJson(res, 200, {})
        }
        if (req.method !== 'PUT') return notAllowed(res, 'GET PUT DELETE')
        try {
          setValues((await readJson(req)) as Record<string, ValueScript>)
        } catch (error) {
          return badRequest(res, error)
        }
        return sendJson(res, 200, { queries: [...scripts.keys()] })
      case '/_standin/calls': {
        if (req.method === 'DELETE') {
          calls = []
          return sendJson(res, 200, { cleared: true })
        }
        if (req.method !== 'GET') return notAllowed(res, 'GET DELETE')
        const since = Number(query.get('since') ?? 0)
        const alertName = query.get('alertName')
        const kind = query.get('kind')
        return sendJson(
          res,
          200,
          calls.filter(
            (c) =>
              (Number.isFinite(since) ? c.seq > since : true) &&
              (alertName === null || c.alertName === alertName) &&
              (kind === null || c.kind === kind),
          ),
        )
      }
      case '/_standin/faults':
        if (req.method === 'GET') return sendJson(res, 200, faults)
        if (req.method === 'DELETE') {
          setFaults({})
          return sendJson(res, 200, faults)
        }
        if (req.method !== 'PUT') return notAllowed(res, 'GET PUT DELETE')
        try {
          setFaults((await readJson(req)) as EngineFaults)
        } catch (error) {
          return badRequest(res, error)
        }
        return sendJson(res, 200, faults)
      case '/_standin/health':
        if (req.method !== 'GET') return notAllowed(res, 'GET')
        return sendJson(res, 200, { ok: true, alerts: alerts.length, calls: calls.length, ...stats })
      default:
        return sendJson(res, 404, { error: 'not_found', message: `no stand-in control endpoint ${path}` })
    }
  }

  const engineRoutes: Record<string, { endpoint: EngineEndpoint; method: string }> = {
    '/alerts': { endpoint: 'alerts', method: 'GET' },
    '/query': { endpoint: 'query', method: 'GET' },
    '/notify': { endpoint: 'notify', method: 'POST' },
    '/resolve': { endpoint: 'resolve', method: 'POST' },
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://stand-in')
    if (url.pathname.startsWith('/_standin/')) return control(req, res, url.pathname, url.searchParams)
    const route = engineRoutes[url.pathname]
    if (route === undefined)
      return sendJson(res, 404, { error: 'not_found', message: `no endpoint ${url.pathname}` })
    if (req.method !== route.method) return notAllowed(res, route.method)
    // Read the body before answering, failure or not, so a kept-alive connection stays usable.
    const raw = route.method === 'POST' ? (await readBody(req, 64 * 1024)).toString('utf8') : ''
    stats.requests[route.endpoint]++
    const ms = faults.latencyMs ?? 0
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms))
    if (shouldFail()) {
      stats.failed[route.endpoint]++
      return sendJson(res, faults.status ?? 500, { error: 'internal_error', message: 'injected failure' })
    }
    switch (route.endpoint) {
      case 'alerts':
        return sendJson(res, 200, alerts)
      case 'query': {
        const target = url.searchParams.get('target')
        if (target === null || target === '')
          return sendJson(res, 400, { error: 'bad_request', message: 'target is required' })
        const value = valueAt(target)
        if (value === undefined) {
          return sendJson(res, 404, {
            error: 'unknown_query',
            message: `no value scripted for ${JSON.stringify(target)} now`,
          })
        }
        if (value === null) return sendJson(res, 500, { error: 'query_failed', message: 'scripted failure' })
        return sendJson(res, 200, { value })
      }
      case 'notify':
      case 'resolve': {
        let body: unknown
        try {
          body = JSON.parse(raw)
        } catch {
          return sendJson(res, 400, { error: 'bad_request', message: 'the body must be JSON' })
        }
        if (!isObject(body) || typeof body.alertName !== 'string' || body.alertName === '') {
          return sendJson(res, 400, { error: 'bad_request', message: 'alertName (a string) is required' })
        }
        if (route.endpoint === 'notify') {
          if (typeof body.message !== 'string') {
            return sendJson(res, 400, { error: 'bad_request', message: 'message (a string) is required' })
          }
          record({ kind: 'notify', alertName: body.alertName, message: body.message })
        } else {
          record({ kind: 'resolve', alertName: body.alertName })
        }
        return sendJson(res, 200, {})
      }
    }
  }

  const server = createSafeServer(handle, (res, error) =>
    error instanceof BodyTooLargeError
      ? sendJson(res, 413, { error: 'too_large', message: error.message })
      : sendJson(res, 400, { error: 'bad_request', message: 'bad request' }),
  )
  const port = await listen(server, options.port ?? 4040, host, 'alerts engine stand-in')
  return {
    port,
    url: localUrl('http', host, port),
    alerts: () => structuredClone(alerts),
    setAlerts: (list) => {
      alerts = parseEngineAlerts(list)
    },
    setValues,
    clearValues: () => scripts.clear(),
    valueAt,
    calls: () => [...calls],
    clearCalls: () => {
      calls = []
    },
    faults: () => ({ ...faults }),
    setFaults,
    stats: () => structuredClone(stats),
    close: () => closeServer(server),
  }
}

function readAlertsFile(file: string): unknown[] {
  try {
    return parseEngineAlerts(JSON.parse(readFileSync(file, 'utf8')))
  } catch (error) {
    throw new Error(`alerts file ${file}: ${(error as Error).message}`)
  }
}

function readValuesFile(file: string): Record<string, ValueScript> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, ValueScript>
  } catch (error) {
    throw new Error(`values file ${file}: ${(error as Error).message}`)
  }
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.ALERTS_ENGINE_STANDIN_PORT ?? '4040' },
      host: { type: 'string', default: process.env.STANDIN_HOST ?? '127.0.0.1' },
      alerts: { type: 'string' },
      values: { type: 'string' },
      'fail-rate': { type: 'string' },
      seed: { type: 'string' },
      quiet: { type: 'boolean', default: false },
    },
  })
  const port = Number(args.port)
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    throw new Error(`--port must be a port number, not ${args.port}`)
  const faults: EngineFaults = {
    failRate: args['fail-rate'] === undefined ? defaultEngineFailRate : Number(args['fail-rate']),
  }
  if (args.seed !== undefined) faults.seed = Number(args.seed)
  const engine = await startAlertsEngineStandIn({
    port,
    host: args.host,
    quiet: args.quiet,
    faults: parseEngineFaults(faults),
    ...(args.alerts === undefined ? {} : { alertsFile: args.alerts }),
    ...(args.values === undefined ? {} : { values: readValuesFile(args.values) }),
  })
  console.log(
    `alerts engine stand-in on ${engine.url} (${engine.alerts().length} alerts, failRate ${engine.faults().failRate ?? 0})`,
  )
  console.log(
    `  calls: curl ${engine.url}/_standin/calls   values: curl -XPUT ${engine.url}/_standin/values -d '{"q":1.5}'`,
  )
  const stop = () => void engine.close().then(() => process.exit(0))
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

if (import.meta.main) {
  main().catch((error: Error) => {
    console.error(`alerts engine stand-in: ${error.message}`)
    process.exit(1)
  })
}
