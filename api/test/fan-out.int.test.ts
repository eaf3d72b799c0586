// A notification for a recipient of the directory, against the real broker and Redis: one child record per
// enabled channel (or the one asked for), addressed from the directory; 422 for a recipient that cannot be
// reached as asked; the parent's GET with every child's status; the same ids on an Idempotency-Key retry.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type NotificationRecord, parseNotificationRequest } from '@herald/shared/notification'
import { redisKeys } from '@herald/shared/redis/keys'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { type ApiAnswer, startTestApi, type TestApi } from '../../test/support/api.ts'
import { testContext } from '../../test/support/context.ts'
import { readTopics } from '../../test/support/offsets.ts'
import { fingerprint, IdempotencyStore } from '../src/idempotency.ts'
import { buildOpenApi } from '../src/openapi.ts'

const ctx = testContext()
const ns = ctx.namespace('fan-out')
const statusTtlSeconds = 7200
let api: TestApi
const apiReady = ctx.ready.then(async () => {
  api = await startTestApi(ns, {
    brokers: ctx.brokers,
    redisUrl: ctx.redisUrl,
    env: {
      API_KEYS: 'ops:s3cret:admin',
      TOPIC_PARTITIONS: '2',
      PRODUCE_TIMEOUT_MS: '5000',
      STATUS_TTL_SECONDS: String(statusTtlSeconds),
      SLACK_WEBHOOKS: JSON.stringify({ ops: 'http://127.0.0.1:9/services/T/B/ops' }),
    },
  })
  ctx.teardown(() => api.stop())
  for (const [id, recipient] of Object.entries(recipients)) {
    const put = await api.call('PUT', `/recipients/${id}`, recipient)
    assert.equal(put.status, 201, JSON.stringify(put.body))
  }
})

const recipients = {
  ada: {
    name: 'Ada',
    email: 'Ada@Example.com',
    phone: '+14155550100',
    slack: 'ops',
    channels: ['email', 'sms'],
  },
  bea: { name: 'Bea', email: 'bea@example.com', slack: 'ops', channels: ['slack'] },
  away: { name: 'Away', email: 'away@example.com', channels: [] },
}

/** The records of the namespace's email, SMS and Slack topics, by id. */
async function recordsById(): Promise<Map<string, NotificationRecord[]>> {
  const topics = (['email', 'sms', 'slack'] as const).map((c) => ns.topics.main(c))
  const byId = new Map<string, NotificationRecord[]>()
  for (const [topic, records] of await readTopics(ctx.kafka, topics)) {
    for (const r of records) {
      const record = JSON.parse(r.value) as NotificationRecord
      assert.equal(topic, ns.topics.main(record.channel), `${record.id} is on its channel's topic`)
      byId.set(record.id, [...(byId.get(record.id) ?? []), record])
    }
  }
  return byId
}

const doc = JSON.parse(JSON.stringify(buildOpenApi({ maxBatch: 1000 }))) as {
  components: object
  paths: Record<
    string,
    Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>
  >
}

/** The answer's body matches what the published document says of its operation and status. */
function assertDocumented(path: string, method: string, answer: ApiAnswer): void {
  const schema =
    doc.paths[path]?.[method]?.responses[String(answer.status)]?.content?.['application/json']?.schema
  assert.ok(schema, `${method} ${path} → ${answer.status} is documented`)
  const validate = new Ajv2020({ strict: false, allErrors: true }).compile({
    ...schema,
    components: doc.components,
  })
  assert.ok(validate(answer.body), `${method} ${path} → ${answer.status}: ${JSON.stringify(validate.errors)}`)
}

describe('a notification for a recipient', () => {
  test('fans out to one record per enabled channel, on its topic, addressed from the directory', async () => {
    await apiReady
    const sent = await api.call('POST', '/notification', {
      recipient: 'ada',
      subject: 'Disk full',
      message: 'db1 is at 97%',
    })
    assert.equal(sent.status, 202, JSON.stringify(sent.body))
    assertDocumented('/api/v1/notification', 'post', sent)
    const id = sent.body.id as string
    assert.equal(sent.headers.get('location'), `/api/v1/notification/${id}`)
    assert.deepEqual(sent.body, {
      id,
      recipient: 'ada',
      status: 'queued',
      children: [
        { id: `${id}.email`, channel: 'email' },
        { id: `${id}.sms`, channel: 'sms' },
      ],
    })
    const records = await recordsById()
    const [email] = records.get(`${id}.email`) ?? []
    const [sms] = records.get(`${id}.sms`) ?? []
    assert.equal(email?.to, 'Ada@Example.com')
    assert.equal(email?.subject, 'Disk full')
    assert.equal(email?.message, 'db1 is at 97%')
    assert.equal(sms?.to, '+14155550100')
    assert.equal(sms?.subject, undefined, 'SMS has no subject')
    assert.equal(sms?.message, 'Disk full\ndb1 is at 97%', 'the subject is the first line of the text')
    assert.equal(records.has(id), false, 'the parent itself is no record')
    assert.equal(records.has(`${id}.slack`), false, 'Slack is not among her enabled channels')
  })

  test('with a channel, only that channel is written; Slack gets the destination name', async () => {
    await apiReady
    const sms = await api.call('POST', '/notification', {
      recipient: 'ada',
      channel: 'SMS',
      message: 'only sms',
    })
    assert.equal(sms.status, 202, JSON.stringify(sms.body))
    assert.deepEqual(sms.body.children, [{ id: `${sms.body.id}.sms`, channel: 'sms' }])
    const slack = await api.call('POST', '/notification', { recipient: 'bea', message: 'to slack' })
    assert.equal(slack.status, 202, JSON.stringify(slack.body))
    const records = await recordsById()
    assert.equal(records.get(`${sms.body.id}.sms`)?.[0]?.message, 'only sms')
    assert.equal(records.has(`${sms.body.id}.email`), false)
    assert.equal(records.get(`${slack.body.id}.slack`)?.[0]?.to, 'ops')
  })

  test('a recipient that cannot be reached as asked is a 422 naming the field, and nothing is written', async () => {
    await apiReady
    const cases = [
      [{ recipient: 'nobody', message: 'x' }, 'recipient', /no recipient "nobody"/],
      [{ recipient: 'away', message: 'x' }, 'recipient', /has no enabled channel/],
      [
        { recipient: 'bea', channel: 'email', message: 'x' },
        'channel',
        /has not enabled email \(enabled: slack\)/,
      ],
      [{ recipient: 'ada', message: 'x'.repeat(1601) }, 'message', /sms allows 1600/],
    ] as const
    for (const [body, field, reason] of cases) {
      const answer = await api.call('POST', '/notification', body)
      assert.equal(answer.status, 422, JSON.stringify(answer.body))
      assert.equal(answer.body.error, 'recipient_unreachable')
      assert.equal(answer.body.details[0].field, field)
      assert.match(answer.body.details[0].reason, reason)
      assertDocumented('/api/v1/notification', 'post', answer)
    }
    const both = await api.call('POST', '/notification', {
      recipient: 'ada',
      to: 'a@example.com',
      message: 'x',
    })
    assert.equal(both.status, 400)
    assert.equal(both.body.details[0].field, 'to')
    const webhook = await api.call('POST', '/notification', {
      recipient: 'ada',
      channel: 'webhook',
      message: 'x',
    })
    assert.equal(webhook.status, 400)
    assert.equal(webhook.body.details[0].field, 'channel')
    const records = await recordsById()
    assert.equal(
      [...records.values()].flat().some((r) => r.message === 'x' || r.message.startsWith('xxx')),
      false,
      'no refused request wrote a record',
    )
  })

  test("the parent's GET shows every child with its channel and status; a child's GET works as before", async () => {
    await apiReady
    const sent = await api.call('POST', '/notification', { recipient: 'ada', message: 'status please' })
    assert.equal(sent.status, 202)
    const id = sent.body.id as string
    // What a distributor writes once the provider accepted the email.
    await ctx.statuses(ns).set(`${id}.email`, 'delivered', 'move', { channel: 'email', attempts: 1 })
    const parent = await api.call('GET', `/notification/${id}`)
    assert.equal(parent.status, 200, JSON.stringify(parent.body))
    assertDocumented('/api/v1/notification/{id}', 'get', parent)
    assert.equal(parent.body.id, id)
    assert.equal(parent.body.recipient, 'ada')
    assert.deepEqual(
      (parent.body.children as Array<{ id: string; channel: string; status: string; attempts: number }>).map(
        (c) => [c.id, c.channel, c.status, c.attempts],
      ),
      [
        [`${id}.email`, 'email', 'delivered', 1],
        [`${id}.sms`, 'sms', 'queued', 0],
      ],
    )
    const child = await api.call('GET', `/notification/${id}.email`)
    assert.equal(child.status, 200)
    assert.equal(child.body.status, 'delivered')
    assert.equal(child.body.channel, 'email')
    assertDocumented('/api/v1/notification/{id}', 'get', child)
    const ttl = await ctx.redis.ttl(redisKeys(ns.prefix).fanOut(id))
    assert.ok(
      ttl > statusTtlSeconds - 60 && ttl <= statusTtlSeconds,
      `the link lives as long as a status (${ttl} s)`,
    )
  })

  test('an Idempotency-Key retry gives the same parent and child ids and writes nothing again', async () => {
    await apiReady
    const body = { recipient: 'ada', subject: 'Once', message: 'only once' }
    const headers = {
      authorization: 'Bearer s3cret',
      'content-type': 'application/json',
      'idempotency-key': 'k-fan',
    }
    const first = await api.call('POST', '/notification', body, headers)
    const again = await api.call('POST', '/notification', body, headers)
    assert.equal(first.status, 202)
    assert.equal(again.status, 202)
    assert.equal(again.headers.get('idempotent-replayed'), 'true')
    assert.deepEqual(again.body, first.body)
    const records = await recordsById()
    for (const child of first.body.children as Array<{ id: string }>) {
      assert.equal(records.get(child.id)?.length, 1, `${child.id} written once`)
    }
  })

  test('a retry after an unconfirmed write (the key released) writes the same children again', async () => {
    await apiReady
    const body = { recipient: 'ada', message: 'written twice, one id each' }
    // A first request took the key with this id and its write failed: the key is released, keeping the id.
    const parsed = parseNotificationRequest(body, { defaults: {}, slackDestinations: [] })
    assert.ok(parsed.ok)
    const keys = new IdempotencyStore(ctx.redis, redisKeys(ns.prefix), {
      pendingWindowMs: 60_000,
      ttlSeconds: 600,
    })
    const taken = await keys.begin(
      'ops',
      'k-released',
      fingerprint(parsed.value),
      0,
      'parent-of-a-failed-write',
    )
    assert.equal(taken.kind, 'new')
    assert.ok(taken.kind === 'new' && (await keys.release('ops', 'k-released', taken.owner)))
    const headers = {
      authorization: 'Bearer s3cret',
      'content-type': 'application/json',
      'idempotency-key': 'k-released',
    }
    const retry = await api.call('POST', '/notification', body, headers)
    assert.equal(retry.status, 202, JSON.stringify(retry.body))
    assert.deepEqual(retry.body.children, [
      { id: 'parent-of-a-failed-write.email', channel: 'email' },
      { id: 'parent-of-a-failed-write.sms', channel: 'sms' },
    ])
    const replay = await api.call('POST', '/notification', body, headers)
    assert.deepEqual(replay.body, retry.body)
  })

  test('a request refused for its recipient leaves its Idempotency-Key unused', async () => {
    await apiReady
    const headers = {
      authorization: 'Bearer s3cret',
      'content-type': 'application/json',
      'idempotency-key': 'k-typo',
    }
    const typo = await api.call('POST', '/notification', { recipient: 'adda', message: 'x' }, headers)
    assert.equal(typo.status, 422)
    const fixed = await api.call('POST', '/notification', { recipient: 'ada', message: 'fixed' }, headers)
    assert.equal(fixed.status, 202, JSON.stringify(fixed.body))
    assert.equal(fixed.body.children.length, 2)
  })

  test('a batch may name recipients: each fans out, and one that cannot be reached fails only its item', async () => {
    await apiReady
    const batch = await api.call('POST', '/notifications', [
      { recipient: 'ada', message: 'batch fan-out' },
      { recipient: 'nobody', message: 'x' },
      { channel: 'email', to: 'plain@example.com', message: 'batch plain' },
    ])
    assert.equal(batch.status, 207, JSON.stringify(batch.body))
    assertDocumented('/api/v1/notifications', 'post', batch)
    const [fanned, unknown, plain] = batch.body.results
    assert.equal(fanned?.status, 202)
    assert.deepEqual(fanned?.children, [
      { id: `${fanned?.id}.email`, channel: 'email' },
      { id: `${fanned?.id}.sms`, channel: 'sms' },
    ])
    assert.equal(unknown?.status, 422)
    assert.equal(unknown?.details[0].field, 'recipient')
    assert.deepEqual([plain?.status, plain?.channel], [202, 'email'])
    const records = await recordsById()
    assert.equal(records.get(`${fanned?.id}.sms`)?.[0]?.to, '+14155550100')
    assert.equal(records.get(plain?.id)?.[0]?.to, 'plain@example.com')
    const parent = await api.call('GET', `/notification/${fanned?.id}`)
    assert.equal(parent.body.children.length, 2)
  })
})
