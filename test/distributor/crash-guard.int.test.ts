// The check before every delivery, against the real Kafka, Redis and the Twilio stand-in: a record whose
// notification already finished is skipped (a replayed offset, a repeated id) unless it is a dead-letter
// replay, and only a process that died with a record in flight counts towards its crash loop.
// Distributors run in this process, so a test can compose a fault into one of their parts.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type Config, loadConfig } from '@herald/shared/config'
import { DeadLetterStore } from '@herald/shared/dead-letters'
import { createLogger } from '@herald/shared/logger'
import { createRedis, defineScripts, type Redis, sharedScripts } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { type Status, type StatusMode, StatusStore } from '@herald/shared/status'
import { createChannel } from '../../distributor/src/channels/index.ts'
import { Distributor } from '../../distributor/src/consumer.ts'
import { createDistributorMetrics, type DistributorMetrics } from '../../distributor/src/metrics.ts'
import { testContext } from '../support/context.ts'
import { produceRecords, serviceEnv, smsRecord, type TestNamespace } from '../support/fixtures.ts'
import { channelGroup, storedOffsets } from '../support/offsets.ts'
import { eventually } from '../support/service-process.ts'

const ctx = testContext({ sandbox: true })
const { setup, statuses, finalStatus } = ctx
const running = new Set<Distributor>()
const connections: Redis[] = []
ctx.teardown(async () => {
  for (const d of running) await d.stop().catch(() => {})
  for (const c of connections) c.disconnect()
})

interface Running {
  distributor: Distributor
  metrics: DistributorMetrics
  stop(): Promise<void>
}

/** An SMS distributor of the namespace in this process; `statuses` may wrap the real store with a fault. */
async function startDistributor(
  ns: TestNamespace,
  options: { statuses?: (config: Config, redis: Redis) => StatusStore } = {},
): Promise<Running> {
  const config = loadConfig(
    serviceEnv(ns, ctx.sandbox.env, { CHANNEL: 'sms', RETRY_BASE_MS: '50' }),
    'distributor',
  )
  const connection = createRedis(config.redisUrl)
  connections.push(connection)
  defineScripts(connection, sharedScripts)
  await connection.connect()
  const keys = redisKeys(config.keyPrefix)
  const metrics = createDistributorMetrics({ channel: 'sms' })
  const channel = createChannel(config)
  const distributor = new Distributor({
    kafka: ctx.kafka,
    redis: connection,
    keys,
    statuses:
      options.statuses?.(config, connection) ?? new StatusStore(connection, keys, config.statusTtlSeconds),
    channel,
    config,
    logger: createLogger({
      service: 'distributor',
      level: process.env.HERALD_TEST_VERBOSE ? 'info' : 'silent',
    }),
    metrics,
    topics: {
      main: ns.topics.main('sms'),
      deadLetter: ns.topics.deadLetter('sms'),
      events: ns.topics.events,
    },
    groupId: ns.groupId('sms'),
  })
  running.add(distributor)
  await distributor.start((error) => assert.fail(`kafkajs crashed: ${error.message}`))
  await eventually('the distributor to claim its partitions', () =>
    distributor.heldPartitions.length === 4 ? true : undefined,
  )
  return {
    distributor,
    metrics,
    stop: async () => {
      await distributor.stop()
      running.delete(distributor)
      await channel.close()
    },
  }
}

let sequence = 0
function sms(ns: TestNamespace, to: string, message = `sms ${++sequence}`) {
  return smsRecord(`${ns.prefix}-${++sequence}`, to, { message })
}

const received = (text: string) => ctx.sandbox.twilio.messages().filter((m) => m.text === text).length

/** The next offset Redis holds for a partition of the namespace's SMS topic. */
async function storedNext(ns: TestNamespace, partition: number): Promise<number | undefined> {
  return (await storedOffsets(ctx.redis, channelGroup(ns, 'sms'))).get(partition)
}

async function counterValue(
  counter: { get(): Promise<{ values: Array<{ value: number; labels: object }> }> },
  labels: Record<string, string> = {},
): Promise<number> {
  const { values } = await counter.get()
  return values
    .filter((v) =>
      Object.entries(labels).every(([k, want]) => (v.labels as Record<string, string>)[k] === want),
    )
    .reduce((sum, v) => sum + v.value, 0)
}

describe('records whose notification already finished', () => {
  test('a record read again after its notification was delivered is skipped, counted and its offset advances', async () => {
    const ns = await setup('final')
    const record = sms(ns, '+14155550601', 'delivered once only')
    const first = await startDistributor(ns)
    await produceRecords(ctx.producer, ns.topics.main('sms'), [record], 0)
    assert.equal((await finalStatus(ns, record.id)).status, 'delivered')
    await eventually('the offset to pass the record', async () =>
      (await storedNext(ns, 0)) === 1 ? true : undefined,
    )
    await first.stop()
    assert.equal(received(record.message), 1)

    // The offset is read again (as after a crash before it was recorded, so before its mirror to Kafka too),
    // and the same id comes again.
    await ctx.redis.hset(redisKeys(ns.prefix).offsets(ns.groupId('sms'), ns.topics.main('sms')), '0', '0')
    await ctx.admin.setOffsets({
      groupId: ns.groupId('sms'),
      topic: ns.topics.main('sms'),
      partitions: [{ partition: 0, offset: '0' }],
    })
    await produceRecords(ctx.producer, ns.topics.main('sms'), [record], 0)
    const second = await startDistributor(ns)
    await eventually(
      'the offset to pass both copies',
      async () => ((await storedNext(ns, 0)) === 2 ? true : undefined),
      30_000,
    )
    assert.equal(received(record.message), 1, 'the provider got the notification once')
    assert.equal(await counterValue(second.metrics.skipped, { reason: 'already_final' }), 2)
    assert.equal(await counterValue(second.metrics.deliveries), 0, 'no second outcome was recorded')
    assert.equal((await statuses(ns).get(record.id))?.status, 'delivered')
    await second.stop()
  })

  test('two copies of one id in one batch reach the provider once, before the status of the first is written', async () => {
    const ns = await setup('fold')
    const record = sms(ns, '+14155550604', 'written twice by a retried request')
    // Both copies in one fetch, the second right behind the first (same recipient): it starts as soon as the
    // first finished, before the flush that writes the first one's status.
    await produceRecords(ctx.producer, ns.topics.main('sms'), [record, record], 0)
    const d = await startDistributor(ns)
    await eventually('the offset to pass both copies', async () =>
      (await storedNext(ns, 0)) === 2 ? true : undefined,
    )
    assert.equal(received(record.message), 1, 'the provider got the notification once')
    assert.equal(await counterValue(d.metrics.skipped, { reason: 'already_final' }), 1)
    await d.stop()
  })

  test('a dead-letter replay is delivered although its notification is dead-lettered', async () => {
    const ns = await setup('replay')
    const to = '+14155550602'
    const record = sms(ns, to, 'replayed after a fix')
    const d = await startDistributor(ns)
    try {
      ctx.sandbox.twilio.setFaults({ permanentRecipients: [to], permanentCode: 21211 })
      await produceRecords(ctx.producer, ns.topics.main('sms'), [record])
      assert.equal((await finalStatus(ns, record.id)).status, 'dead_lettered')
      ctx.sandbox.twilio.setFaults({})

      // A replay without a status store: the status stays dead_lettered, and the replay header decides.
      await new DeadLetterStore(ctx.kafka, ns.topics).replay('sms', { errorClass: 'permanent' })
      await eventually('the replayed record to be delivered', () =>
        received(record.message) === 1 ? true : undefined,
      )
      // The api's path: the status back to queued, then the record again; its delivery ends the status.
      await new DeadLetterStore(ctx.kafka, ns.topics, statuses(ns)).replay('sms', {
        errorClass: 'permanent',
      })
      await eventually('the second replay to be delivered', () =>
        received(record.message) === 2 ? true : undefined,
      )
      await eventually('the replayed notification to be delivered by its status', async () =>
        (await statuses(ns).get(record.id))?.status === 'delivered' ? true : undefined,
      )
      assert.equal(await counterValue(d.metrics.skipped), 0)
    } finally {
      ctx.sandbox.twilio.setFaults({})
      await d.stop()
    }
  })
})

describe('the crash-loop counter', () => {
  test('a record started again and again by a live distributor whose batches fail is delivered, not dead-lettered as a crash loop', async () => {
    const ns = await setup('no-crash')
    const record = sms(ns, '+14155550603', 'started often, never crashed')
    let refused = 0
    // A Redis error on the status write fails the batch after the send: kafkajs runs the batch again, in
    // the same live process, four times over.
    class RefusingStatuses extends StatusStore {
      override async set(
        id: string,
        status: Status,
        mode: StatusMode,
        fields?: Record<string, string | number>,
      ) {
        if (id === record.id && status === 'delivered' && refused < 4) {
          refused += 1
          throw new Error('injected: Redis refused the status write')
        }
        return super.set(id, status, mode, fields)
      }
    }
    const d = await startDistributor(ns, {
      statuses: (config, connection) =>
        new RefusingStatuses(connection, redisKeys(config.keyPrefix), config.statusTtlSeconds),
    })
    await produceRecords(ctx.producer, ns.topics.main('sms'), [record])
    const view = await finalStatus(ns, record.id, 60_000)
    assert.equal(view.status, 'delivered', `not dead-lettered (${view.lastError ?? ''})`)
    assert.equal(refused, 4, 'the batch failed four times')
    assert.equal(await counterValue(d.metrics.crashLoops), 0)
    await d.stop()
  })
})
