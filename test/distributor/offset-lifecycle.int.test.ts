// Stored offsets across the life of a topic: records removed below a paused partition's next, a stored
// offset above the log end, and a topic deleted and created again under the same name. Real distributor
// processes, the real broker and Redis, the Twilio stand-in.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { redisKeys } from '@herald/shared/redis/keys'
import { OffsetStore } from '../../shared/src/offsets/offsets.ts'
import { readTopicId } from '../../shared/src/offsets/topic-id.ts'
import { uniqueName } from '../helpers.ts'
import { testContext } from '../support/context.ts'
import { createTopics, smsRecord, type TestNamespace } from '../support/fixtures.ts'
import { eventually, type ServiceProcess } from '../support/service-process.ts'

const ctx = testContext({ sandbox: true })
const { statuses } = ctx

async function setup(label: string) {
  const ns = await ctx.setup(label)
  return { ns, topic: ns.topics.main('sms') }
}

function smsDistributor(ns: TestNamespace, name: string, extra: Record<string, string> = {}): ServiceProcess {
  return ctx.distributor(ns, name, { CHANNEL: 'sms', RETRY_BASE_MS: '50', ...extra })
}

let sequence = 0
function sms(ns: TestNamespace, to: string) {
  sequence += 1
  return smsRecord(`${ns.prefix}-${sequence}`, to, { message: `${ns.prefix} message ${sequence}` })
}

/** A different recipient for every call. */
let nextNumber = 3000
const someone = () => `+1415555${String(nextNumber++).padStart(4, '0')}`

type Sms = ReturnType<typeof sms>

async function produceTo(topic: string, partition: number, records: Sms[]): Promise<void> {
  await ctx.producer.send({
    topic,
    acks: -1,
    messages: records.map((r) => ({ key: r.to, value: JSON.stringify(r), partition })),
  })
}

const received = (r: Sms) => ctx.sandbox.twilio.messages().filter((m) => m.text === r.message).length
const storedNext = (ns: TestNamespace, topic: string, partition: number) =>
  ctx.redis.hget(redisKeys(ns.prefix).offsets(ns.groupId('sms'), topic), String(partition))

async function allDelivered(ns: TestNamespace, records: Sms[], timeoutMs = 60_000): Promise<void> {
  await eventually(
    `${records.length} records delivered`,
    async () => {
      const views = await Promise.all(records.map((r) => statuses(ns).get(r.id)))
      return views.every((v) => v?.status === 'delivered') ? true : undefined
    },
    timeoutMs,
    200,
  )
}

async function metricValue(p: ServiceProcess, name: string): Promise<number> {
  const line = await p.waitForLog((l) => typeof l.metricsPort === 'number')
  const text = await (await fetch(`http://127.0.0.1:${line.metricsPort}/metrics`)).text()
  const sample = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)
  return Number(sample?.[1] ?? 0)
}

const claimed = (p: ServiceProcess) => p.waitForLog((l) => l.msg === 'claimed partition', 60_000)

describe('stored offsets tied to the topic id', () => {
  const prefix = uniqueName('t-topic-id')
  const keys = redisKeys(prefix)
  after(async () => {
    const found = await ctx.redis.keys(`${prefix}:*`)
    if (found.length > 0) await ctx.redis.del(...found)
  })

  test('a claim under another topic id drops the partition offset, notes and attempt counters', async () => {
    const topic = uniqueName('t')
    const store = new OffsetStore(ctx.redis, keys, 'g', topic)
    const [first] = await store.claim([0, 1], 'a', 'old-id')
    await store.advance(0, first?.token ?? 0, 5)
    await store.noteFinished(0, [7, 8], 5)
    const attempts = keys.attempts('g', topic)
    await ctx.redis.hset(attempts, '0:6:attempts', '3', '1:6:attempts', '2')
    const [again] = await store.claim([0], 'b', 'old-id')
    assert.deepEqual([again?.next, again?.replacedTopicId], [5, undefined], 'same topic: kept')
    const [recreated] = await store.claim([0], 'c', 'new-id')
    assert.equal(recreated?.next, undefined)
    assert.equal(recreated?.replacedTopicId, 'old-id')
    assert.deepEqual(await store.finishedFrom(new Map([[0, 0]])), new Map([[0, []]]))
    assert.deepEqual(
      await ctx.redis.hgetall(attempts),
      { '1:6:attempts': '2' },
      'other partitions keep theirs',
    )
    assert.ok((recreated?.token ?? 0) > (again?.token ?? 0), 'tokens keep growing')
  })

  test('offsets stored before topic ids were recorded adopt the current id', async () => {
    const topic = uniqueName('t')
    await ctx.redis.hset(keys.offsets('g', topic), '0', '12')
    const store = new OffsetStore(ctx.redis, keys, 'g', topic)
    const [claim] = await store.claim([0], 'a', 'some-id')
    assert.deepEqual([claim?.next, claim?.replacedTopicId], [12, undefined])
    assert.equal(await ctx.redis.hget(keys.offsets('g', topic), '0:topic'), 'some-id')
  })

  test('notes from a process that claimed under an older topic id are refused', async () => {
    const topic = uniqueName('t')
    const stale = new OffsetStore(ctx.redis, keys, 'g', topic)
    await stale.claim([0], 'stale', 'old-id')
    const current = new OffsetStore(ctx.redis, keys, 'g', topic)
    await current.claim([0], 'current', 'new-id')
    await stale.noteFinished(0, [3, 4], 0)
    await current.noteFinished(0, [9], 0)
    assert.deepEqual(await current.finishedFrom(new Map([[0, 0]])), new Map([[0, [9]]]))
  })
})

describe('offsets across the life of a topic', () => {
  test('a partition paused while its records were removed resumes at the log start and reports what expired', async () => {
    const { ns, topic } = await setup('paused-expiry')
    const slow = someone()
    // A Retry-After far longer than the steps below: the partition stays paused while records go.
    ctx.sandbox.twilio.setFaults({ failRecipients: [slow], status: 429, retryAfter: 15 })
    try {
      const d = smsDistributor(ns, 'paused-expiry', { MAX_ATTEMPTS: '30', BREAKER_THRESHOLD: '1000' })
      await claimed(d)
      const waiting = sms(ns, slow)
      const first = Array.from({ length: 4 }, () => sms(ns, someone()))
      await produceTo(topic, 0, [waiting, ...first]) // offsets 0..4
      await d.waitForLog((l) => l.msg === 'partition paused until its next retry is due' && l.partition === 0)
      await allDelivered(ns, first)
      const later = Array.from({ length: 5 }, () => sms(ns, someone()))
      await produceTo(topic, 0, later) // offsets 5..9, not fetched while the partition is paused
      // The log now starts at 7: offsets 0 (waiting), 5 and 6 were never finished and are gone.
      await ctx.admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '7' }] })
      const kept = later.slice(2)
      await allDelivered(ns, kept, 90_000)
      const alert = await d.waitForLog((l) =>
        String(l.msg ?? '').startsWith('ALERT: records expired by retention'),
      )
      assert.equal(alert.expired, 3, 'the unfinished records below the log start, not those finished')
      assert.equal(alert.partition, 0)
      assert.equal(await metricValue(d, 'herald_records_expired_unfinished_total'), 3)
      await eventually('the stored offset at the log end', async () =>
        (await storedNext(ns, topic, 0)) === '10' ? true : undefined,
      )
      for (const r of later.slice(0, 2)) assert.equal(received(r), 0, 'removed before it was fetched')
      d.kill('SIGTERM')
      await d.exited
    } finally {
      ctx.sandbox.twilio.setFaults({})
    }
  })

  test('a partition paused by an open breaker while its records were removed resumes at the log start', async () => {
    const { ns, topic } = await setup('breaker-expiry')
    ctx.sandbox.twilio.setFaults({ authFail: true })
    try {
      const d = smsDistributor(ns, 'breaker-expiry', {
        MAX_ATTEMPTS: '2',
        BREAKER_PROBE_MS: '500',
        BREAKER_PROBE_MAX_MS: '1000',
      })
      await claimed(d)
      const records = Array.from({ length: 5 }, () => sms(ns, someone()))
      await produceTo(topic, 0, records.slice(0, 1))
      await d.waitForLog((l) => String(l.msg ?? '').startsWith('BREAKER OPEN'))
      await produceTo(topic, 0, records.slice(1)) // offsets 1..4; nothing finishes while credentials fail
      await ctx.admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '3' }] })
      const alert = await d.waitForLog(
        (l) => String(l.msg ?? '').startsWith('ALERT: records expired by retention'),
        60_000,
      )
      assert.deepEqual([alert.partition, alert.expired], [0, 3])
      ctx.sandbox.twilio.setFaults({})
      await allDelivered(ns, records.slice(3))
      await eventually('the stored offset at the log end', async () =>
        (await storedNext(ns, topic, 0)) === '5' ? true : undefined,
      )
      assert.equal(await metricValue(d, 'herald_records_expired_unfinished_total'), 3)
      for (const r of records.slice(0, 3)) assert.equal(received(r), 0)
      d.kill('SIGTERM')
      await d.exited
    } finally {
      ctx.sandbox.twilio.setFaults({})
    }
  })

  test('after a stored offset above the log end is reset, the stored offset follows the deliveries again', async () => {
    const { ns, topic } = await setup('above-end')
    const before = Array.from({ length: 5 }, () => sms(ns, someone()))
    await produceTo(topic, 0, before)
    await ctx.redis.hset(redisKeys(ns.prefix).offsets(ns.groupId('sms'), topic), '0', '1000')
    const d = smsDistributor(ns, 'above-end')
    const alarm = await d.waitForLog((l) => String(l.msg ?? '').includes('above the log end'))
    assert.equal(alarm.stored, 1000)
    const afterReset = Array.from({ length: 3 }, () => sms(ns, someone()))
    await produceTo(topic, 0, afterReset)
    await allDelivered(ns, [...before, ...afterReset])
    await eventually(
      'the stored offset at the log end (8)',
      async () => ((await storedNext(ns, topic, 0)) === '8' ? true : undefined),
      30_000,
    )
    d.kill('SIGTERM')
    await d.exited
  })

  test('offsets and notes of a deleted topic skip nothing when the topic is created again', async () => {
    const { ns, topic } = await setup('recreated')
    const slow = someone()
    const env = { MAX_ATTEMPTS: '30', BREAKER_THRESHOLD: '1000' }
    ctx.sandbox.twilio.setFaults({ failRecipients: [slow], status: 429, retryAfter: 1 })
    try {
      const first = smsDistributor(ns, 'recreated-1', env)
      await claimed(first)
      // Offsets 0..2 finish in order (next = 3); 3 keeps retrying; 4..13 finish beyond next and are noted.
      const inOrder = Array.from({ length: 3 }, () => sms(ns, someone()))
      const waiting = sms(ns, slow)
      const beyond = Array.from({ length: 10 }, () => sms(ns, someone()))
      await produceTo(topic, 0, [...inOrder, waiting, ...beyond])
      await allDelivered(ns, [...inOrder, ...beyond])
      const noted = redisKeys(ns.prefix).finished(ns.groupId('sms'), topic, 0)
      await eventually('finished offsets noted beyond the stored offset', async () =>
        (await ctx.redis.zcard(noted)) >= beyond.length && (await storedNext(ns, topic, 0)) === '3'
          ? true
          : undefined,
      )
      const oldId = await readTopicId([ctx.brokers], topic)
      first.kill('SIGKILL')
      await first.exited
      ctx.sandbox.twilio.setFaults({})

      await ctx.admin.deleteTopics({ topics: [topic] })
      await eventually('the topic deleted', async () =>
        (await ctx.admin.listTopics()).includes(topic) ? undefined : true,
      )
      await eventually(
        'the topic created again',
        async () => {
          try {
            await createTopics(ctx.admin, ns, 4, ctx.brokers)
            return (await ctx.admin.listTopics()).includes(topic) ? true : undefined
          } catch {
            return undefined // still being deleted
          }
        },
        60_000,
        500,
      )
      const newId = await readTopicId([ctx.brokers], topic)
      assert.notEqual(newId, oldId, 'a recreated topic has a new id')
      const fresh = Array.from({ length: 16 }, () => sms(ns, someone()))
      await produceTo(topic, 0, fresh) // offsets 0..15 again

      const second = smsDistributor(ns, 'recreated-2', env)
      await allDelivered(ns, fresh, 90_000)
      const alert = await second.waitForLog(
        (l) => String(l.msg ?? '').startsWith('ALERT:') && l.partition === 0 && l.storedTopicId === oldId,
      )
      assert.equal(alert.topicId, newId)
      assert.ok((await metricValue(second, 'herald_offset_topic_mismatch_total')) >= 1)
      await eventually('the stored offset at the new log end', async () =>
        (await storedNext(ns, topic, 0)) === '16' ? true : undefined,
      )
      assert.deepEqual(
        fresh.filter((r) => received(r) !== 1).map((r) => r.id),
        [],
        'every record of the new topic delivered once',
      )
      second.kill('SIGTERM')
      await second.exited
    } finally {
      ctx.sandbox.twilio.setFaults({})
    }
  })
})
