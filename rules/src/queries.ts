// Where a rule's value comes from: Prometheus' HTTP API (an instant query) or the alerts engine's
// `GET /query?target=` (seed 003). One attempt per call, bounded by a timeout; the evaluator retries within
// the interval. A failure is a reason, never a value: no data, NaN, an HTTP error or a timeout say nothing
// about the threshold.
import type { Rule } from '@herald/shared/rules/schemas'

export type QueryResult = { ok: true; value: number } | { ok: false; error: string }

export interface QueryClients {
  prometheusUrl: string | undefined
  alertsEngineUrl: string | undefined
}

async function getJson(url: URL, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
  const timeout = AbortSignal.timeout(timeoutMs)
  const response = await fetch(url, {
    headers: { accept: 'application/json' },
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}`)
  return JSON.parse(text) as unknown
}

/**
 * Prometheus instant query. A scalar gives its value; a vector gives the most severe of its samples for the
 * rule's comparison (the highest for `above`, the lowest for `below`), so a query over several series alerts
 * when any of them crosses; an empty vector is no data.
 */
export async function queryPrometheus(
  baseUrl: string,
  rule: Pick<Rule, 'query' | 'comparison'>,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<QueryResult> {
  const url = new URL('api/v1/query', baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`)
  url.searchParams.set('query', rule.query)
  url.searchParams.set('timeout', `${Math.max(1, Math.floor(timeoutMs / 1000))}s`)
  try {
    const body = (await getJson(url, timeoutMs, signal)) as {
      status?: string
      error?: string
      data?: { resultType?: string; result?: unknown }
    }
    if (body.status !== 'success') return { ok: false, error: `prometheus: ${body.error ?? 'not success'}` }
    const { resultType, result } = body.data ?? {}
    let values: number[] = []
    if (resultType === 'scalar' && Array.isArray(result)) values = [Number(result[1])]
    else if (resultType === 'vector' && Array.isArray(result))
      values = result.map((sample) => Number((sample as { value?: unknown[] }).value?.[1]))
    else return { ok: false, error: `prometheus: a ${resultType ?? 'missing'} result is not a value` }
    const numbers = values.filter((v) => !Number.isNaN(v))
    if (numbers.length === 0) return { ok: false, error: 'prometheus: no data' }
    return { ok: true, value: rule.comparison === 'below' ? Math.min(...numbers) : Math.max(...numbers) }
  } catch (error) {
    return { ok: false, error: `prometheus: ${error instanceof Error ? error.message : String(error)}` }
  }
}

/** The alerts engine: `GET /query?target=<query>` → `{"value": float}` (0 is a value). */
export async function queryAlertsEngine(
  baseUrl: string,
  rule: Pick<Rule, 'query'>,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<QueryResult> {
  const url = new URL('query', baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`)
  url.searchParams.set('target', rule.query)
  try {
    const body = (await getJson(url, timeoutMs, signal)) as { value?: unknown }
    const value = typeof body.value === 'number' ? body.value : Number.NaN
    if (Number.isNaN(value)) return { ok: false, error: 'alerts engine: no numeric value' }
    return { ok: true, value }
  } catch (error) {
    return { ok: false, error: `alerts engine: ${error instanceof Error ? error.message : String(error)}` }
  }
}

/** The value of `rule` from its source, or why there is none (a source that is not configured). */
export function queryRule(
  clients: QueryClients,
  rule: Rule,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<QueryResult> {
  if (rule.source === 'alerts-engine') {
    if (!clients.alertsEngineUrl) return Promise.resolve({ ok: false, error: 'ALERTS_ENGINE_URL is not set' })
    return queryAlertsEngine(clients.alertsEngineUrl, rule, timeoutMs, signal)
  }
  if (!clients.prometheusUrl) return Promise.resolve({ ok: false, error: 'PROMETHEUS_URL is not set' })
  return queryPrometheus(clients.prometheusUrl, rule, timeoutMs, signal)
}

/**
 * POSTs a notice to the alerts engine (`/notify` or `/resolve`, the seed's bodies), retrying its 5xx and
 * network errors with backoff up to `deadlineMs`. Resolves true once answered 2xx.
 */
export async function postToEngine(
  baseUrl: string,
  path: 'notify' | 'resolve',
  body: Record<string, string>,
  deadlineMs: number,
  signal?: AbortSignal,
): Promise<{ ok: boolean; attempts: number; error?: string }> {
  const url = new URL(path, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`)
  const until = Date.now() + deadlineMs
  let error = ''
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(5000)]) : AbortSignal.timeout(5000),
      })
      await response.arrayBuffer()
      if (response.ok) return { ok: true, attempts: attempt }
      error = `HTTP ${response.status}`
      // A 4xx will not get better by asking again.
      if (response.status < 500) return { ok: false, attempts: attempt, error }
    } catch (failure) {
      error = failure instanceof Error ? failure.message : String(failure)
    }
    const wait = Math.min(2000, 50 * 2 ** attempt)
    if (signal?.aborted || Date.now() + wait > until) return { ok: false, attempts: attempt, error }
    await new Promise((r) => setTimeout(r, wait))
  }
}
