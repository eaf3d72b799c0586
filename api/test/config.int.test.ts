// Recipients, templates and routes through the api, against the real broker: roles, validation, pages,
// audit headers on the records, and a restarted api that reads them back.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { configTopicNames } from '@herald/shared/topics'
import { startTestApi, type TestApi } from '../../test/support/api.ts'
import { readConfigRecords } from '../../test/support/config-records.ts'
import { testContext } from '../../test/support/context.ts'

const ctx = testContext()
const ns = ctx.namespace('api-config')
const admin = { authorization: 'Bearer s3cret', 'content-type': 'application/json' }
const sender = { authorization: 'Bearer other', 'content-type': 'application/json' }
let api: TestApi

const startReadyApi = () =>
  startTestApi(ns, {
    brokers: ctx.brokers,
    redisUrl: ctx.redisUrl,
    env: {
      TOPIC_PARTITIONS: '2',
      API_KEYS: 'ops:s3cret:admin,ci:other',
      PRODUCE_TIMEOUT_MS: '5000',
      SLACK_WEBHOOKS: JSON.stringify({ ops: 'http://127.0.0.1:9/services/T/B/ops' }),
    },
  })
const apiReady = ctx.ready.then(async () => {
  api = await startReadyApi()
  ctx.teardown(() => api.stop())
})

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = admin) {
  await apiReady
  return api.call(method, path, body, headers)
}

const ada = { name: 'Ada', email: 'ada@example.com', phone: '+14155550100', channels: ['email', 'sms'] }

describe('recipients', () => {
  test('an admin creates a recipient (201), replaces it (200), and any key reads it', async () => {
    const created = await call('PUT', '/recipients/ada', ada)
    assert.equal(created.status, 201, JSON.stringify(created.body))
    assert.deepEqual(created.body, { id: 'ada', ...ada })
    const replaced = await call('PUT', '/recipients/ada', { ...ada, id: 'ada', timezone: 'Europe/London' })
    assert.equal(replaced.status, 200)
    const read = await call('GET', '/recipients/ada', undefined, sender)
    assert.equal(read.status, 200)
    assert.equal(read.body.timezone, 'Europe/London')
  })

  test('a sender key may not write, and a request without a key is refused', async () => {
    const put = await call('PUT', '/recipients/eve', { name: 'Eve', channels: [] }, sender)
    assert.equal(put.status, 403)
    assert.match(put.body.message, /admin API key/)
    assert.equal((await call('DELETE', '/recipients/ada', undefined, sender)).status, 403)
    assert.equal((await call('GET', '/recipients/ada', undefined, {})).status, 401)
    assert.equal((await call('GET', '/recipients/eve')).status, 404)
  })

  test('validation errors are 400 with each field and reason; a Slack URL is refused', async () => {
    const bad = await call('PUT', '/recipients/bob', {
      name: 'Bob',
      phone: '555-0100',
      slack: 'https://hooks.slack.com/services/T/B/x',
      channels: ['sms', 'slack'],
      timezone: 'Nowhere/Else',
    })
    assert.equal(bad.status, 400)
    assert.equal(bad.body.error, 'invalid_request')
    const fields = Object.fromEntries(
      (bad.body.details as Array<{ field: string; reason: string }>).map((d) => [d.field, d.reason]),
    )
    assert.match(fields.phone ?? '', /E\.164/)
    assert.match(fields.slack ?? '', /never a URL/)
    assert.match(fields.timezone ?? '', /IANA/)
    const unknownSlack = await call('PUT', '/recipients/bob', {
      name: 'Bob',
      slack: 'nowhere',
      channels: ['slack'],
    })
    assert.equal(unknownSlack.status, 400)
    assert.deepEqual(unknownSlack.body.details, [
      { field: 'slack', reason: 'unknown Slack destination "nowhere" (configured: ops)' },
    ])
    const known = await call('PUT', '/recipients/carol', { name: 'Carol', slack: 'ops', channels: ['slack'] })
    assert.equal(known.status, 201)
    assert.equal((await call('DELETE', '/recipients/carol')).status, 204)
    const mismatch = await call('PUT', '/recipients/bob', { id: 'robert', name: 'Bob', channels: [] })
    assert.equal(mismatch.status, 400)
    assert.equal(mismatch.body.details[0].field, 'id')
    const notJson = await call('PUT', '/recipients/bob', 'name=Bob', {
      ...admin,
      'content-type': 'text/plain',
    })
    assert.equal(notJson.status, 415)
    assert.equal((await call('GET', '/recipients/bob')).status, 404, 'nothing was written')
  })

  test('the records carry the API key name, the source and the host as headers', async () => {
    const records = await readConfigRecords(ctx.kafka, configTopicNames(ns.prefix).recipients)
    const ours = records.filter((r) => r.key === 'ada')
    assert.equal(ours.length, 2)
    for (const r of ours) {
      assert.equal(r.headers['herald-user'], 'ops')
      assert.equal(r.headers['herald-source'], 'api')
      assert.ok(r.headers['herald-host'])
    }
  })
})

describe('templates and routes', () => {
  test('a template that does not compile is a 400 naming the field and the reason', async () => {
    const bad = await call('PUT', '/templates/broken', {
      channel: 'email',
      subject: 'ok',
      body: '{{#if x}} never closed',
    })
    assert.equal(bad.status, 400)
    assert.equal(bad.body.details[0].field, 'body')
    assert.match(bad.body.details[0].reason, /does not compile/)
    const good = await call('PUT', '/templates/short-sms', {
      channel: 'sms',
      body: '[{{newState}}] {{alarmName}}',
    })
    assert.equal(good.status, 201)
  })

  test('a route naming an unknown recipient or template, or a template of another channel, is a 400', async () => {
    const unknown = await call('PUT', '/routes/disk', {
      match: { alarmDefinitionId: 'D', states: ['ALARM'] },
      recipients: ['ada', 'nobody'],
      template: 'missing',
    })
    assert.equal(unknown.status, 400)
    assert.deepEqual(
      (unknown.body.details as Array<{ field: string }>).map((d) => d.field),
      ['recipients.1', 'template'],
    )
    const wrongChannel = await call('PUT', '/routes/disk', {
      match: { states: ['ALARM'] },
      recipients: ['ada'],
      template: { email: 'short-sms' },
    })
    assert.equal(wrongChannel.status, 400)
    assert.match(wrongChannel.body.details[0].reason, /is for sms, not email/)
    const noStates = await call('PUT', '/routes/disk', { match: { states: [] }, recipients: ['ada'] })
    assert.equal(noStates.status, 400)
    assert.equal(noStates.body.details[0].field, 'match.states')
  })

  test('a route is created, and what it names cannot be deleted until the route is', async () => {
    const route = {
      match: { alarmDefinitionId: 'D', states: ['ALARM', 'OK'] },
      recipients: ['ada'],
      template: 'short-sms',
      periodSeconds: 300,
    }
    assert.equal((await call('PUT', '/routes/disk', route)).status, 201)
    assert.deepEqual((await call('GET', '/routes/disk', undefined, sender)).body, { name: 'disk', ...route })
    const busy = await call('DELETE', '/recipients/ada')
    assert.equal(busy.status, 409)
    assert.match(busy.body.message, /route\(s\) disk/)
    assert.equal((await call('DELETE', '/templates/short-sms')).status, 409)
    assert.equal((await call('DELETE', '/routes/disk')).status, 204)
    assert.equal((await call('GET', '/routes/disk')).status, 404)
    assert.equal((await call('DELETE', '/routes/disk')).status, 404)
  })
})

describe('pages and restarts', () => {
  test('lists come in pages of `limit` by name, with a cursor; a limit over 500 or a bad cursor is a 400', async () => {
    for (const n of [1, 2, 3, 4, 5]) {
      assert.equal((await call('PUT', `/recipients/p${n}`, { name: `P${n}`, channels: [] })).status, 201)
    }
    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const query: string = cursor ? `?limit=2&cursor=${cursor}` : '?limit=2'
      const page = await call('GET', `/recipients${query}`, undefined, sender)
      assert.equal(page.status, 200)
      assert.ok(page.body.recipients.length <= 2)
      seen.push(...(page.body.recipients as Array<{ id: string }>).map((r) => r.id))
      cursor = page.body.nextCursor
      pages++
    } while (cursor && pages < 10)
    assert.deepEqual(seen, ['ada', 'p1', 'p2', 'p3', 'p4', 'p5'])
    assert.equal(pages, 3)
    const all = await call('GET', '/recipients')
    assert.equal(all.body.recipients.length, 6)
    assert.equal(all.body.nextCursor, null)
    const tooMany = await call('GET', '/recipients?limit=501')
    assert.equal(tooMany.status, 400)
    assert.equal(tooMany.body.details[0].field, 'limit')
    assert.equal((await call('GET', '/recipients?cursor=%%%')).status, 400)
  })

  test('a restarted api reads recipients, templates and deletes back from Kafka before it is ready', async () => {
    assert.equal((await call('DELETE', '/recipients/p5')).status, 204)
    await api.stop()
    api = await startReadyApi()
    const list = await call('GET', '/recipients')
    assert.deepEqual(
      (list.body.recipients as Array<{ id: string }>).map((r) => r.id),
      ['ada', 'p1', 'p2', 'p3', 'p4'],
    )
    assert.equal((await call('GET', '/templates/short-sms')).body.channel, 'sms')
  })
})
