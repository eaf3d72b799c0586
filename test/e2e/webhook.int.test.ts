// The webhook channel end to end: the api accepts a destination name, a distributor process (CHANNEL=webhook)
// POSTs a signed JSON body to the webhook stand-in, and failures fall in the same classes as Slack's. Real
// Kafka and Redis; the stand-in verifies nothing, so the test recomputes each signature itself.
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { after, before, test } from 'node:test'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { createRedis, type Redis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { StatusStore, type StatusView } from '@herald/shared/status'
import { type Admin, Partitioners, type Producer } from 'kafkajs'
import { type RunningApi, startApi } from '../../api/src/server.ts'
import type { StandIn } from '../../dev/standins/common.ts'
import { startWebhookStandIn } from '../../dev/standins/webhook.ts'
import { kafkaBrokers, redisUrl, requireServers } from '../helpers.ts'
import {
  createTopics,
  deleteNamespace,
  namespace,
  serviceEnv,
  type TestNamespace,
  testKafka,
} from '../support/fixtures.ts'
import { eventually, type ServiceProcess, startService } from '../support/service-process.ts'

const partitions = 4
const secrets: Record<string, string> = {
  ops: 'ops-secret-for-the-test-0001',
  slow: 'slow-secret-for-the-test-002',
  busy: 'busy-secret-for-the-test-003',
  strict: 'strict-secret-for-the-test-4',
  gone: 'gone-secret-for-the-test-005',
}

/** A destination name whose records land on another partition than `gone`'s (checked, not assumed). */
function partitionOf(key: string): number {
  const partitioner = Partitioners.DefaultPartitioner()
  return partitioner({
    topic: 't',
    partitionMetadata: Array.from({ length: partitions }, (_, partitionId) => ({
      partitionId,
      partitionErrorCode: 0,
      leader: 0,
      replicas: [0],
      isr: [0],
    })),
    message: { key, value: null },
  })
}
const flowing =
  ['other', 'other-1', 'other-2', 'other-3', 'other-4', 'other-5'].find(
    (name) => partitionOf(name) !== partitionOf('gone'),
  ) ?? 'other'
secrets[flowing] = 'flowing-secret-for-the-test-6'

let standIn: StandIn
let ns: TestNamespace
let admin: Admin
let producer: Producer
let redis: Redis
let api: RunningApi
let distributor: ServiceProcess
let env: Record<string, string>

before(async () => {
  await requireServers()
  standIn = await startWebhookStandIn({ port: 0, quiet: true })
  const destinations = Object.fromEntries(
    Object.entries(secrets).map(([name, secret]) => [name, { url: `${standIn.url}/hooks/${name}`, secret }]),
  )
  ns = namespace('webhook')
  const kafka = testKafka(kafkaBrokers())
  admin = kafka.admin()
  await admin.connect()
  producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  redis = createRedis(redisUrl())
  await redis.connect()
  await createTopics(admin, ns, partitions, kafkaBrokers())
  env = serviceEnv(
    ns,
    {},
    {
      TOPIC_PARTITIONS: String(partitions),
      WEBHOOK_DESTINATIONS: JSON.stringify(destinations),
      WEBHOOK_TIMEOUT_MS: '1000',
      RETRY_BASE_MS: '50',
      RETRY_CAP_MS: '500',
      MAX_ATTEMPTS: '20',
      BREAKER_THRESHOLD: '20',
      BREAKER_PROBE_MS: '3000',
      BREAKER_PROBE_MAX_MS: '6000',
    },
  )
  api = await startApi(
    loadConfig({ ...env, PORT: '0', LOG_LEVEL: 'silent' }, 'api'),
    createLogger({ service: 'api', level: 'silent' }),
  )
  distributor = startService('distributor-webhook', 'distributor', { ...env, CHANNEL: 'webhook' })
  await distributor.waitForLog((l) => l.msg === 'claimed partition', 60_000)
})

after(async () => {
  distributor?.kill('SIGTERM')
  await distributor?.exited
  await api?.stop()
  await producer?.disconnect()
  if (admin) await deleteNamespace(admin, redis, ns).catch(() => {})
  await admin?.disconnect()
  redis?.disconnect()
  await standIn?.close()
})

async function post(body: unknown): Promise<Response> {
  return fetch(`${api.url}/api/v1/notification`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
}

async function accepted(body: unknown): Promise<string> {
  const response = await post(body)
  assert.equal(response.status, 202, await response.clone().text())
  return ((await response.json()) as { id: string }).id
}

const statuses = () => new StatusStore(redis, redisKeys(ns.prefix), 3600)

function statusBecomes(id: string, wanted: (view: StatusView) => boolean, what: string) {
  return eventually(
    `${id} ${what}`,
    async () => {
      const view = await statuses().get(id)
      return view && wanted(view) ? view : undefined
    },
    60_000,
    50,
  )
}

const finished = (id: string) =>
  statusBecomes(id, (v) => ['delivered', 'dead_lettered', 'expired'].includes(v.status), 'finished')

const receivedFor = (id: string) => standIn.messages().filter((m) => m.heraldId === id)

const sign = (secret: string, timestamp: string, body: string) =>
  `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`

test('a webhook notification arrives signed, and the signature verifies with the destination secret', async () => {
  standIn.setFaults({})
  const id = await accepted({ channel: 'webhook', to: 'ops', subject: 'Disk', message: 'db-1 disk 91% full' })
  assert.equal((await finished(id)).status, 'delivered')
  const [got] = receivedFor(id)
  assert.ok(got?.body && got.headers, 'the stand-in received it with headers and body')
  assert.equal(got.to, '/hooks/ops')
  assert.equal(got.headers['content-type'], 'application/json')
  assert.equal(got.headers['x-herald-id'], id)
  const timestamp = got.headers['x-herald-timestamp'] ?? ''
  assert.match(timestamp, /^\d+$/)
  assert.ok(Math.abs(Number(timestamp) - Date.now() / 1000) < 600, 'the timestamp is the send time')
  assert.equal(got.headers['x-herald-signature'], sign(secrets.ops ?? '', timestamp, got.body))
  assert.notEqual(got.headers['x-herald-signature'], sign(secrets.slow ?? '', timestamp, got.body))
  const body = JSON.parse(got.body) as { v: number; notification: Record<string, unknown>; event?: unknown }
  assert.equal(body.v, 1)
  assert.deepEqual(
    { ...body.notification, createdAt: undefined },
    {
      id,
      channel: 'webhook',
      to: 'ops',
      subject: 'Disk',
      message: 'db-1 disk 91% full',
      createdAt: undefined,
    },
  )
  assert.equal(body.event, undefined, 'no event when the record carries none')
})

test('the alarm event a record carries is forwarded in the body', async () => {
  const id = `${ns.prefix}-event-1`
  const event = { alarmId: 'a-1', alarmName: 'disk', newState: 'ALARM', oldState: 'OK', timestamp: 1 }
  const record = {
    v: 1,
    id,
    channel: 'webhook',
    to: 'ops',
    message: 'disk ALARM',
    createdAt: new Date().toISOString(),
    event,
  }
  await producer.send({
    topic: ns.topics.main('webhook'),
    acks: -1,
    messages: [{ key: 'ops', value: JSON.stringify(record) }],
  })
  await eventually(`${id} at the stand-in`, () => (receivedFor(id).length > 0 ? true : undefined), 60_000, 50)
  const [got] = receivedFor(id)
  assert.deepEqual((JSON.parse(got?.body ?? '{}') as { event?: unknown }).event, event)
})

test('a destination that does not answer within the timeout is retried, then delivered', async () => {
  standIn.setFaults({ latencyMs: 3000 })
  const id = await accepted({ channel: 'webhook', to: 'slow', message: 'slow receiver' })
  const retrying = await statusBecomes(id, (v) => v.status === 'retrying', 'retrying')
  assert.match(retrying.lastError ?? '', /did not answer within 1000 ms/)
  standIn.setFaults({})
  const done = await finished(id)
  assert.equal(done.status, 'delivered')
  assert.ok(done.attempts >= 2, `attempts ${done.attempts}`)
})

test('a 429 with Retry-After is retried no earlier than the destination asked', async () => {
  standIn.setFaults({ failRecipients: ['/hooks/busy'], status: 429, retryAfter: 4 })
  const id = await accepted({ channel: 'webhook', to: 'busy', message: 'rate limited' })
  const retrying = await statusBecomes(id, (v) => v.status === 'retrying', 'retrying')
  assert.match(retrying.lastError ?? '', /429/)
  // The destination accepts again at once; Herald still waits the 4 s it was asked to (its own backoff
  // is at most RETRY_CAP_MS = 500 ms).
  standIn.setFaults({})
  const done = await finished(id)
  assert.equal(done.status, 'delivered')
  const [got] = receivedFor(id)
  const waited = Date.parse(got?.at ?? '') - Date.parse(retrying.updatedAt ?? '')
  // The status is written right after the wait began (one Redis round trip later), so allow 1 s for it.
  assert.ok(waited >= 3000, `the next attempt came ${waited} ms after the 429`)
})

test('a 400 from the destination is dead-lettered at once, not retried', async () => {
  standIn.setFaults({ permanentRecipients: [{ recipient: '/hooks/strict', code: 400 }] })
  const before = await admin.fetchTopicOffsets(ns.topics.deadLetter('webhook'))
  const id = await accepted({ channel: 'webhook', to: 'strict', message: 'refused payload' })
  const done = await finished(id)
  assert.equal(done.status, 'dead_lettered')
  assert.equal(done.attempts, 1)
  assert.match(done.lastError ?? '', /webhook refused the message \(400/)
  const afterwards = await admin.fetchTopicOffsets(ns.topics.deadLetter('webhook'))
  const total = (offsets: Array<{ high: string }>) => offsets.reduce((n, p) => n + Number(p.high), 0)
  assert.equal(total(afterwards) - total(before), 1, 'one record on the dead-letter topic')
  standIn.setFaults({})
})

test('a 410 opens the breaker of that destination only: another destination keeps flowing', async () => {
  assert.notEqual(partitionOf(flowing), partitionOf('gone'), 'the two destinations are on two partitions')
  standIn.setFaults({ permanentRecipients: [{ recipient: '/hooks/gone', code: 410 }] })
  const gone = await accepted({ channel: 'webhook', to: 'gone', message: 'to a removed endpoint' })
  await distributor.waitForLog(
    (l) => String(l.msg).startsWith('DESTINATION BREAKER OPEN') && l.destination === 'gone',
    60_000,
  )
  const others = await Promise.all(
    [1, 2, 3].map((i) => accepted({ channel: 'webhook', to: flowing, message: `still flowing ${i}` })),
  )
  for (const id of others) assert.equal((await finished(id)).status, 'delivered')
  // The breaker probed again meanwhile and met the 410 again: still nothing dead-lettered or delivered.
  await distributor.waitForLog(
    (l) =>
      String(l.msg).startsWith('DESTINATION BREAKER OPEN') &&
      l.destination === 'gone' &&
      distributor.lines.filter((x) => String(x.msg).startsWith('DESTINATION BREAKER OPEN')).length >= 2,
    60_000,
  )
  const held = await statuses().get(gone)
  assert.equal(held?.status, 'queued', 'a broken destination never dead-letters')
  assert.equal(receivedFor(gone).length, 0)
  assert.ok(
    !distributor.lines.some((l) => String(l.msg).startsWith('BREAKER OPEN')),
    "the channel's breaker stayed closed",
  )
  // Once the destination is fixed, the next probe delivers what waited.
  standIn.setFaults({})
  assert.equal((await finished(gone)).status, 'delivered')
  assert.equal(receivedFor(gone).length, 1)
})

test('the api refuses a URL or an unknown name as a webhook destination', async () => {
  for (const to of ['https://attacker.example/hook', 'http://127.0.0.1:6379/', 'hooks/ops']) {
    const response = await post({ channel: 'webhook', to, message: 'x' })
    assert.equal(response.status, 400, to)
    const body = (await response.json()) as { details?: Array<{ field: string; reason: string }> }
    assert.deepEqual(body.details, [
      { field: 'to', reason: 'must name a configured webhook destination, not a URL' },
    ])
  }
  const unknown = await post({ channel: 'webhook', to: 'nobody', message: 'x' })
  assert.equal(unknown.status, 400)
  const body = (await unknown.json()) as { details?: Array<{ field: string; reason: string }> }
  assert.match(body.details?.[0]?.reason ?? '', /^unknown webhook destination "nobody" \(configured: .*ops/)
  const missing = await post({ channel: 'webhook', message: 'x' })
  assert.equal(missing.status, 400)
})

test('a webhook distributor with a malformed destination stops, naming it, without printing its secret', async () => {
  const secret = 'never-print-this-s3cret-value'
  const bad = startService('distributor-webhook-bad', 'distributor', {
    ...env,
    CHANNEL: 'webhook',
    WEBHOOK_DESTINATIONS: JSON.stringify({ ops: { url: 'ftp://user:pw-in-url@host/x', secret } }),
  })
  assert.notEqual(await bad.exited, 0)
  const output = bad.lines.map((l) => JSON.stringify(l)).join('\n')
  assert.match(output, /WEBHOOK_DESTINATIONS: destination \\?"ops\\?": url must be an http\(s\) URL/)
  assert.ok(!output.includes(secret), output)
  assert.ok(!output.includes('pw-in-url'), output)
})
