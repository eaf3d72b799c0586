import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { topicSpecs, waitForLeaders } from '@herald/shared/topics'
import { type Admin, Kafka, logLevel } from 'kafkajs'
import { kafkaBrokers, requireServers, uniqueName } from '../helpers.ts'
import { createTopics, deleteNamespace, namespace } from '../support/fixtures.ts'

let kafka: Kafka
let admin: Admin

before(async () => {
  await requireServers()
  kafka = new Kafka({ clientId: 'herald-test', brokers: [kafkaBrokers()], logLevel: logLevel.WARN })
  admin = kafka.admin()
  await admin.connect()
})

after(async () => {
  await admin?.disconnect()
})

test('a record produced with acks=all is consumed back from a multi-partition topic and its offset committed', async () => {
  const topic = uniqueName('test.roundtrip')
  const groupId = uniqueName('test.group')
  await admin.createTopics({
    topics: [{ topic, numPartitions: 3, replicationFactor: 1 }],
    waitForLeaders: false,
  })
  await waitForLeaders(admin, [topic])
  try {
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(metadata.topics[0]?.partitions.length, 3)

    const producer = kafka.producer({ allowAutoTopicCreation: false })
    await producer.connect()
    const sent = Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 5}`, value: `v${i}` }))
    const acks = await producer.send({ topic, acks: -1, messages: sent })
    await producer.disconnect()
    assert.ok(acks.every((a) => a.errorCode === 0))

    const highWatermarks = await admin.fetchTopicOffsets(topic)
    const total = highWatermarks.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0)
    assert.equal(total, 30)

    const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    const received: Array<{ key: string; value: string; partition: number }> = []
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${received.length} of 30 records arrived`)),
        30_000,
      )
      void consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          received.push({ key: String(message.key), value: String(message.value), partition })
          await consumer.commitOffsets([
            { topic, partition, offset: (BigInt(message.offset) + 1n).toString() },
          ])
          if (received.length === 30) {
            clearTimeout(timer)
            resolve()
          }
        },
      })
    })
    await consumer.disconnect()

    assert.deepEqual(received.map((r) => r.value).sort(), sent.map((m) => m.value).sort())
    // One key always lands on one partition.
    for (const key of new Set(received.map((r) => r.key))) {
      assert.equal(new Set(received.filter((r) => r.key === key).map((r) => r.partition)).size, 1)
    }
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
    const byPartition = new Map(committed[0]?.partitions.map((p) => [p.partition, p.offset]))
    for (const hw of highWatermarks) assert.equal(byPartition.get(hw.partition), hw.high)
  } finally {
    await admin.deleteGroups([groupId]).catch(() => {})
    await admin.deleteTopics({ topics: [topic] })
  }
})

test('the broker refuses to create topics automatically', async () => {
  const producer = kafka.producer({ allowAutoTopicCreation: true, retry: { retries: 1 } })
  await producer.connect()
  try {
    await assert.rejects(
      producer.send({ topic: uniqueName('test.nonexistent'), acks: -1, messages: [{ value: 'x' }] }),
    )
  } finally {
    await producer.disconnect()
  }
})

test('topics the fixtures create answer offset requests on every partition as soon as they are returned', async () => {
  // Right after CreateTopics the broker may not lead the new partitions yet; a fresh or busy broker shows it
  // within a few rounds as UNKNOWN_TOPIC_OR_PARTITION or NOT_LEADER_FOR_PARTITION.
  for (let round = 0; round < 10; round++) {
    const ns = namespace('leaders')
    try {
      await createTopics(admin, ns, 4, kafkaBrokers())
      for (const { topic } of topicSpecs(ns.topics, ['email', 'sms', 'slack'], 1)) {
        const offsets = await admin.fetchTopicOffsets(topic)
        assert.deepEqual(
          offsets.map((o) => [o.partition, o.low, o.high]).sort(),
          [0, 1, 2, 3].map((p) => [p, '0', '0']),
          topic,
        )
      }
    } finally {
      await deleteNamespace(admin, undefined, ns)
    }
  }
})
