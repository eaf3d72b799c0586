// The query clients against local HTTP servers that answer as Prometheus' HTTP API and the alerts engine do.
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { postToEngine, queryAlertsEngine, queryPrometheus } from '../src/queries.ts'

let server: Server
let url = ''
const seen: string[] = []
let failNext = 0

/** Prometheus answers by query text; the engine's /query by target; /notify fails `failNext` times. */
const prometheus: Record<string, { status: number; body: unknown }> = {
  vector: {
    status: 200,
    body: {
      status: 'success',
      data: {
        resultType: 'vector',
        result: [
          { metric: { instance: 'a' }, value: [1700000000, '0.2'] },
          { metric: { instance: 'b' }, value: [1700000000, '0.9'] },
        ],
      },
    },
  },
  scalar: {
    status: 200,
    body: { status: 'success', data: { resultType: 'scalar', result: [1700000000, '0'] } },
  },
  empty: { status: 200, body: { status: 'success', data: { resultType: 'vector', result: [] } } },
  nan: {
    status: 200,
    body: { status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [1, 'NaN'] }] } },
  },
  bad: { status: 400, body: { status: 'error', errorType: 'bad_data', error: 'parse error at char 3' } },
}

before(async () => {
  server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x')
    seen.push(`${req.method} ${u.pathname}${u.search}`)
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    if (u.pathname === '/prom/api/v1/query') {
      const answer = prometheus[u.searchParams.get('query') ?? ''] ?? { status: 200, body: {} }
      return send(answer.status, answer.body)
    }
    if (u.pathname === '/engine/query') {
      const target = u.searchParams.get('target')
      if (target === 'zero') return send(200, { value: 0 })
      if (target === 'broken') return send(500, { error: 'boom' })
      return send(200, { nothing: true })
    }
    if (u.pathname === '/engine/notify') {
      if (failNext > 0) {
        failNext--
        return send(500, { error: 'try again' })
      }
      return send(200, { ok: true })
    }
    send(404, {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

after(() => new Promise<void>((resolve) => server.close(() => resolve())))

test('a Prometheus vector gives its most severe sample for the comparison', async () => {
  assert.deepEqual(await queryPrometheus(`${url}/prom`, { query: 'vector', comparison: 'above' }, 1000), {
    ok: true,
    value: 0.9,
  })
  assert.deepEqual(await queryPrometheus(`${url}/prom/`, { query: 'vector', comparison: 'below' }, 1000), {
    ok: true,
    value: 0.2,
  })
  assert.ok(
    seen.some((s) => s.startsWith('GET /prom/api/v1/query?query=vector')),
    'an instant query',
  )
})

test('a scalar of 0 is a value; no data, NaN and an error are failures with a reason', async () => {
  assert.deepEqual(await queryPrometheus(`${url}/prom`, { query: 'scalar', comparison: 'above' }, 1000), {
    ok: true,
    value: 0,
  })
  const empty = await queryPrometheus(`${url}/prom`, { query: 'empty', comparison: 'above' }, 1000)
  assert.deepEqual(empty, { ok: false, error: 'prometheus: no data' })
  const nan = await queryPrometheus(`${url}/prom`, { query: 'nan', comparison: 'above' }, 1000)
  assert.equal(nan.ok, false)
  const bad = await queryPrometheus(`${url}/prom`, { query: 'bad', comparison: 'above' }, 1000)
  assert.equal(bad.ok, false)
  assert.match(bad.ok ? '' : bad.error, /HTTP 400.*parse error/)
})

test("the alerts engine's value, 0 included; a 500 or no number is a failure", async () => {
  assert.deepEqual(await queryAlertsEngine(`${url}/engine`, { query: 'zero' }, 1000), { ok: true, value: 0 })
  assert.equal((await queryAlertsEngine(`${url}/engine`, { query: 'broken' }, 1000)).ok, false)
  assert.equal((await queryAlertsEngine(`${url}/engine`, { query: 'other' }, 1000)).ok, false)
})

test("a notice is retried through the engine's 500s and given up at its deadline", async () => {
  failNext = 2
  const sent = await postToEngine(`${url}/engine`, 'notify', { alertName: 'cpu', message: 'high' }, 5000)
  assert.deepEqual(sent, { ok: true, attempts: 3 })
  failNext = 1000
  const given = await postToEngine(`${url}/engine`, 'notify', { alertName: 'cpu', message: 'high' }, 300)
  assert.equal(given.ok, false)
  assert.equal(given.error, 'HTTP 500')
  failNext = 0
})
