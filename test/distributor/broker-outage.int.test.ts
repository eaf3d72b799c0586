// The broker SIGKILLed under a backlog (issue 19's mechanism): while Kafka is down a distributor cannot
// record outcomes (dead letters and events go to Kafka), and kafkajs restarts the consumer, so every claim
// starts again from the last offset recorded. Deliveries that went on meanwhile must not be repeated: their
// statuses are written while the flush waits on Kafka, and a record whose status is already final is skipped.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { kafkaPid, startKafka } from '../../dev/lib/kafka.ts'
import { testContext } from '../support/context.ts'
import { countBy, emailRecord, produceRecords, watermarks } from '../support/fixtures.ts'
import { channelGroup, storedOffsets } from '../support/offsets.ts'
import { eventually } from '../support/service-process.ts'

const ctx = testContext({ privateStack: true, smtp: true })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

test('a broker SIGKILL while a backlog is being delivered loses nothing', async (t) => {
  const ns = await ctx.setup('broker-kill')
  const concurrency = 8
  const replicas = 2
  // A backlog: 1,600 records for 40 recipients, 50 ms each: about 20 s of work for the two replicas.
  const records = Array.from({ length: 1600 }, (_, i) =>
    emailRecord(`${ns.prefix}-${i}`, `user${i % 40}@example.com`),
  )
  for (let i = 0; i < records.length; i += 200)
    await produceRecords(ctx.producer, ns.topics.main('email'), records.slice(i, i + 200))
  ctx.smtp.setFaults({ latencyMs: 50 })
  const env = { CHANNEL: 'email', DELIVERY_CONCURRENCY: String(concurrency) }
  for (let i = 1; i <= replicas; i++) ctx.distributor(ns, `broker-kill-${i}`, env)
  const delivered = () => ctx.deliveredIds(ns)
  await eventually(
    'a fifth of the backlog delivered',
    () => (delivered().length >= 320 ? true : undefined),
    60_000,
  )
  const pid = kafkaPid(ctx.stack.stack.kafka)
  assert.ok(pid, 'the private broker runs')
  process.kill(pid, 'SIGKILL')
  await sleep(5000)
  await startKafka(ctx.stack.stack.kafka)
  const topic = ns.topics.main('email')
  await eventually(
    'offsets at the log end',
    async () => {
      const stored = await storedOffsets(ctx.redis, channelGroup(ns, 'email'))
      for (const [partition, { high }] of await watermarks(ctx.admin, topic))
        if ((stored.get(partition) ?? -1) < high) return undefined
      return true
    },
    180_000,
    500,
  )
  const counts = countBy(delivered())
  const lost = records.filter((r) => !counts.has(r.id))
  const duplicates = [...counts.values()].reduce((sum, n) => sum + n - 1, 0)
  t.diagnostic(`${records.length} records, ${lost.length} lost, ${duplicates} delivered twice`)
  assert.deepEqual(lost, [])
  // What was in flight when the other replica took the partitions over, at most: a flush waits on Kafka
  // for the whole outage, and deliveries that finish meanwhile have their statuses written anyway, so the
  // new owner skips them (900 repeats on a068657, 0 to 372 before the statuses were written early).
  assert.ok(duplicates <= concurrency * replicas, `${duplicates} repeats`)
})
