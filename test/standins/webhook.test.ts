import assert from 'node:assert/strict'
import { after, before, beforeEach, test } from 'node:test'
import type { StandIn } from '../../dev/standins/common.ts'
import { startWebhookStandIn } from '../../dev/standins/webhook.ts'

let standIn: StandIn
const post = (body: string, path = '/hooks/ops', headers: Record<string, string> = {}) =>
  fetch(`${standIn.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  })
const notification = (message: string, id = 'n-1') => JSON.stringify({ v: 1, notification: { id, message } })

before(async () => {
  standIn = await startWebhookStandIn({ port: 0, quiet: true })
})
beforeEach(() => {
  standIn.setFaults({})
  standIn.clear()
})
after(async () => {
  await standIn.close()
})

test('a POST is answered 200 and recorded with its path, headers and raw body, unverified', async () => {
  const body = notification('disk full')
  const response = await post(body, '/hooks/ops', { 'x-herald-signature': 'sha256=not-checked' })
  assert.equal(response.status, 200)
  const [got] = standIn.messages()
  assert.equal(got?.provider, 'webhook')
  assert.equal(got?.to, '/hooks/ops')
  assert.equal(got?.text, 'disk full')
  assert.equal(got?.heraldId, 'n-1')
  assert.equal(got?.body, body)
  assert.equal(got?.headers?.['x-herald-signature'], 'sha256=not-checked')
})

test('what received is listed over HTTP too, by path', async () => {
  await post(notification('a'), '/hooks/a')
  await post(notification('b'), '/hooks/b')
  const listed = (await (await fetch(`${standIn.url}/messages?to=/hooks/b`)).json()) as Array<{
    text: string
  }>
  assert.deepEqual(
    listed.map((m) => m.text),
    ['b'],
  )
})

test('a body that is not a JSON object is 400, another content type 415, a path outside /hooks/ 404, a GET 405, none recorded', async () => {
  assert.equal((await post('not json')).status, 400)
  assert.equal((await post('[1]')).status, 400)
  assert.equal((await post('{}', '/elsewhere')).status, 404)
  assert.equal((await fetch(`${standIn.url}/hooks/ops`)).status, 405)
  assert.equal((await post('{}', '/hooks/ops', { 'content-type': 'text/plain' })).status, 415)
  assert.equal(standIn.messages().length, 0)
})

test('failNext fails that many requests with the status and Retry-After asked for', async () => {
  standIn.setFaults({ failNext: 2, status: 429, retryAfter: 7 })
  for (let i = 0; i < 2; i++) {
    const response = await post(notification('x'))
    assert.equal(response.status, 429)
    assert.equal(response.headers.get('retry-after'), '7')
  }
  assert.equal((await post(notification('x'))).status, 200)
  assert.equal(standIn.messages().length, 1)
})

test('failRate 1 fails every request and 0 none', async () => {
  standIn.setFaults({ failRate: 1, status: 503 })
  assert.equal((await post(notification('x'))).status, 503)
  standIn.setFaults({ failRate: 0 })
  assert.equal((await post(notification('x'))).status, 200)
})

test('a permanent recipient is a path: 410 by default, or its own status', async () => {
  standIn.setFaults({ permanentRecipients: ['/hooks/gone', { recipient: '/hooks/strict', code: 400 }] })
  assert.equal((await post(notification('x'), '/hooks/gone')).status, 410)
  assert.equal((await post(notification('x'), '/hooks/strict')).status, 400)
  assert.equal((await post(notification('x'), '/hooks/ops')).status, 200)
})

test('authFail answers 401 to everything', async () => {
  standIn.setFaults({ authFail: true })
  assert.equal((await post(notification('x'))).status, 401)
})

test('latencyMs delays the answer', async () => {
  standIn.setFaults({ latencyMs: 200 })
  const started = performance.now()
  assert.equal((await post(notification('x'))).status, 200)
  assert.ok(performance.now() - started >= 190)
})

test('faults are set and cleared over HTTP', async () => {
  const put = await fetch(`${standIn.url}/faults`, { method: 'PUT', body: '{"failNext":1,"status":502}' })
  assert.equal(put.status, 200)
  assert.equal((await post(notification('x'))).status, 502)
  await fetch(`${standIn.url}/faults`, { method: 'DELETE' })
  assert.deepEqual(standIn.faults(), {})
})
