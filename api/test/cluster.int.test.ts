// The api with API_WORKERS=2, as a real process (a node:cluster primary and two workers on one port),
// against the shared Kafka and Redis: both workers serve, /metrics and /readyz speak for both, a killed
// worker is replaced, and SIGTERM lets every worker answer its requests in flight before the primary exits.
import assert from 'node:assert/strict'
import { Agent, request } from 'node:http'
import { connect } from 'node:net'
import { before, test } from 'node:test'
import { freePort } from '../../test/helpers.ts'
import { testContext } from '../../test/support/context.ts'
import type { TestNamespace } from '../../test/support/fixtures.ts'
import { eventually, freeze, type ServiceProcess } from '../../test/support/service-process.ts'

const ctx = testContext()
let ns: TestNamespace

before(async () => {
  await ctx.ready
  ns = ctx.namespace('workers')
})

interface Answer {
  status: number
  worker: string | undefined
  body: string
}

/**
 * One request on a connection of its own (so that round-robin may hand it to any worker). `body` in two
 * parts: the second is sent only when `rest` is called, so the request stays in flight until then.
 */
function call(
  port: number,
  method: string,
  path: string,
  options: { body?: string; holdFrom?: number; timeoutMs?: number; agent?: Agent } = {},
): { answer: Promise<Answer>; rest: () => void } {
  const body = options.body ?? ''
  const req = request({
    host: '127.0.0.1',
    port,
    method,
    path,
    agent: options.agent ?? false,
    headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {},
  })
  const answer = new Promise<Answer>((resolve, reject) => {
    req.once('error', reject)
    req.once('response', (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        text += chunk
      })
      res.once('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          worker: res.headers['herald-worker'] as string | undefined,
          body: text,
        }),
      )
    })
  })
  if (options.timeoutMs) req.setTimeout(options.timeoutMs, () => req.destroy(new Error('no answer in time')))
  const hold = options.holdFrom ?? body.length
  req.write(body.slice(0, hold))
  return { answer, rest: () => req.end(body.slice(hold)) }
}

const get = (port: number, path: string) => call(port, 'GET', path, { timeoutMs: 10_000 }).answer
const notification = JSON.stringify({ channel: 'email', message: 'served by a worker' })
const post = (port: number) => call(port, 'POST', '/api/v1/notification', { body: notification }).answer

/** A series' value in /metrics (summed over the workers by the primary). */
async function metric(port: number, series: string): Promise<number | undefined> {
  const answer = await get(port, '/metrics')
  assert.equal(answer.status, 200, `/metrics answered ${answer.status}: ${answer.body}`)
  const line = answer.body.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

interface WorkerView {
  worker: number
  pid: number
  status: string
}

async function readyWorkers(port: number): Promise<WorkerView[]> {
  return eventually(
    'the api ready with two workers',
    async () => {
      const answer = await get(port, '/readyz').catch(() => undefined)
      if (answer?.status !== 200) return undefined
      const workers = (JSON.parse(answer.body) as { workers: WorkerView[] }).workers
      return workers.length === 2 ? workers : undefined
    },
    60_000,
    200,
  )
}

/** Whether a new TCP connection to the port is accepted. */
function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

function startWorkers(name: string, port: number, env: Record<string, string> = {}): ServiceProcess {
  return ctx.service(name, 'api', {
    KAFKA_BROKERS: ctx.brokers,
    REDIS_URL: ctx.redisUrl,
    PORT: String(port),
    TOPIC_PREFIX: ns.prefix,
    KEY_PREFIX: ns.prefix,
    TOPIC_PARTITIONS: '2',
    DEFAULT_EMAIL_TO: 'oncall@example.com',
    API_WORKERS: '2',
    ...env,
  })
}

let port: number
let api: ServiceProcess

test('with API_WORKERS=2, requests are served by both workers and /metrics sums the counts of both', async () => {
  port = await freePort()
  api = startWorkers('api-workers', port)
  await api.waitForLog((l) => l.msg === 'all 2 api workers listening', 60_000)
  await readyWorkers(port)
  const served = new Map<string, number>()
  let accepted = 0
  await eventually(
    'answers from both workers',
    async () => {
      const answer = await post(port)
      assert.equal(answer.status, 202, answer.body)
      assert.ok(answer.worker, 'every answer names its worker')
      accepted++
      served.set(answer.worker, (served.get(answer.worker) ?? 0) + 1)
      return served.size === 2 && accepted >= 6 ? true : undefined
    },
    60_000,
    0,
  )
  assert.equal(await metric(port, 'herald_notifications_accepted_total{channel="email"}'), accepted)
  assert.equal(await metric(port, 'herald_api_workers{state="up"}'), 2)
})

test('/readyz answers 503 from the other worker while one worker is frozen, and 200 once it runs again', async () => {
  const [frozen, other] = await readyWorkers(port)
  assert.ok(frozen && other)
  await freeze(frozen.pid)
  try {
    const answer = await eventually(
      'a 503 from the worker that runs',
      async () => {
        // The frozen worker may be handed this connection: it answers nothing, and the next try goes on.
        const a = await call(port, 'GET', '/readyz', { timeoutMs: 8000 }).answer.catch(() => undefined)
        return a?.status === 503 ? a : undefined
      },
      60_000,
      100,
    )
    assert.equal(answer.worker, String(other.worker))
    const body = JSON.parse(answer.body) as { status: string; workers: WorkerView[] }
    assert.equal(body.status, 'not_ready')
    assert.deepEqual(
      body.workers.map((w) => [w.pid, w.status]).sort(),
      [
        [frozen.pid, 'unresponsive'],
        [other.pid, 'ready'],
      ].sort(),
    )
  } finally {
    process.kill(frozen.pid, 'SIGCONT')
  }
  await readyWorkers(port)
})

test('a killed worker is replaced, and the api is ready with two workers again', async () => {
  const [killed, kept] = await readyWorkers(port)
  assert.ok(killed && kept)
  process.kill(killed.pid, 'SIGKILL')
  await api.waitForLog(
    (l) => l.msg === 'api worker exited unexpectedly; starting another' && l.pid === killed.pid,
  )
  const now = await eventually('a new worker in the killed one’s place', async () => {
    const workers = await readyWorkers(port)
    return workers.some((w) => w.pid === killed.pid) ? undefined : workers
  })
  assert.deepEqual(
    now.map((w) => w.status),
    ['ready', 'ready'],
  )
  assert.ok(
    now.some((w) => w.pid === kept.pid),
    'the other worker went on',
  )
  assert.equal(await metric(port, 'herald_api_worker_restarts_total'), 1)
  assert.equal((await post(port)).status, 202)
})

/**
 * SIGTERM with six requests in flight (bodies half sent, one on a keep-alive connection): the port closes,
 * every request is answered 202 once its body is complete, every connection is closed after its answer,
 * and the process exits 0. Returns the answers.
 */
async function stopsWithRequestsInFlight(service: ServiceProcess, at: number): Promise<Answer[]> {
  const route = 'herald_http_requests_in_flight{route="/api/v1/notification"}'
  const before = (await metric(at, route)) ?? 0
  const keepAlive = new Agent({ keepAlive: true })
  const held = Array.from({ length: 6 }, (_, i) =>
    call(at, 'POST', '/api/v1/notification', {
      body: notification,
      holdFrom: 10,
      ...(i === 0 ? { agent: keepAlive } : {}),
    }),
  )
  try {
    await eventually('six requests in flight', async () =>
      (await metric(at, route)) === before + 6 ? true : undefined,
    )
    service.kill('SIGTERM')
    // The primary's line, or the single process's (a worker's lines name the worker).
    await service.waitForLog((l) => l.worker === undefined && String(l.msg).startsWith('shutting down'))
    await eventually('the port refuses connections', async () => ((await connects(at)) ? undefined : true))
    for (const h of held) h.rest()
    const answers = await Promise.all(held.map((h) => h.answer))
    assert.deepEqual(
      answers.map((a) => a.status),
      [202, 202, 202, 202, 202, 202],
    )
    // A keep-alive connection left open would hold the process until the shutdown bound (exit 1).
    assert.equal(await service.exited, 0)
    return answers
  } finally {
    keepAlive.destroy()
  }
}

test('SIGTERM to the primary: every worker answers its requests in flight, the port closes, exit 0', async () => {
  await readyWorkers(port)
  const answers = await stopsWithRequestsInFlight(api, port)
  assert.equal(new Set(answers.map((a) => a.worker)).size, 2, 'requests were in flight on both workers')
})

test('SIGTERM to a single api process (API_WORKERS=1): requests in flight answered, connections closed, exit 0', async () => {
  const at = await freePort()
  const single = startWorkers('api-single', at, { API_WORKERS: '1', SHUTDOWN_TIMEOUT_MS: '10000' })
  await single.waitForLog((l) => String(l.msg).startsWith('api listening'), 60_000)
  await eventually('the api ready', async () =>
    (await get(at, '/readyz')).status === 200 ? true : undefined,
  )
  const answers = await stopsWithRequestsInFlight(single, at)
  assert.ok(
    answers.every((a) => a.worker === undefined),
    'no worker header without a cluster',
  )
})

test('a worker that does not stop within the shutdown bound is killed, and the primary exits 1', async () => {
  const port = await freePort()
  const api = startWorkers('api-workers-bound', port, { SHUTDOWN_TIMEOUT_MS: '1000' })
  await api.waitForLog((l) => l.msg === 'all 2 api workers listening', 60_000)
  const [frozen] = await readyWorkers(port)
  assert.ok(frozen)
  await freeze(frozen.pid)
  api.kill('SIGTERM')
  const bound = await api.waitForLog(
    (l) => l.msg === 'shutdown bound reached; killing the workers still running',
  )
  assert.deepEqual(
    (bound.workers as Array<{ pid: number }>).map((w) => w.pid),
    [frozen.pid],
    'only the frozen worker was left',
  )
  assert.equal(await api.exited, 1)
})
