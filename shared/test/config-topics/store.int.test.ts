// The configuration store against the real broker: read-your-writes, restarts, tombstones, two readers.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { type Recipient, recipientSchema } from '@herald/shared/config-topics/schemas'
import { ConfigTopicStore } from '@herald/shared/config-topics/store'
import { createLogger } from '@herald/shared/logger'
import { configTopicNames, configTopicSpecs, ensureTopics } from '@herald/shared/topics'
import type { Admin, Kafka, Producer } from 'kafkajs'
import { kafkaBrokers, requireServers } from '../../../test/helpers.ts'
import { readConfigRecords } from '../../../test/support/config-records.ts'
import { deleteNamespace, namespace, newProducer, testKafka } from '../../../test/support/fixtures.ts'
import { eventually } from '../../../test/support/service-process.ts'

const ns = namespace('config-store')
const names = configTopicNames(ns.prefix)
const logger = createLogger({ service: 'test', level: 'silent' })
let kafka: Kafka
let admin: Admin
let producer: Producer
const stores: Array<ConfigTopicStore<Recipient>> = []

const audit = { user: 'ops', source: 'test', host: 'test-host' }
const ada: Recipient = { id: 'ada', name: 'Ada', email: 'ada@example.com', channels: ['email'] }

async function openStore(client = kafka, writer = producer): Promise<ConfigTopicStore<Recipient>> {
  const store = new ConfigTopicStore(client, {
    topic: names.recipients,
    schema: recipientSchema,
    producer: writer,
    logger,
    groupPrefix: ns.prefix,
  })
  stores.push(store)
  await store.start()
  await store.whenReady()
  return store
}

before(async () => {
  await requireServers()
  kafka = testKafka(kafkaBrokers())
  admin = kafka.admin()
  await admin.connect()
  await ensureTopics(admin, {
    specs: configTopicSpecs(names, 1),
    partitions: 3,
    replication: 1,
    brokers: [kafkaBrokers()],
    logger,
  })
  producer = await newProducer(kafka)
})

after(async () => {
  for (const s of stores) await s.stop()
  await producer?.disconnect()
  await deleteNamespace(admin, undefined, ns)
  await admin?.disconnect()
})

describe('a configuration topic store', () => {
  test('the topics are compacted, keep tombstones a day, and have one partition', async () => {
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: 2, name: names.routes }],
    })
    const entries = new Map(described.resources[0]?.configEntries.map((e) => [e.configName, e.configValue]))
    assert.equal(entries.get('cleanup.policy'), 'compact')
    assert.ok(Number(entries.get('delete.retention.ms')) >= 86_400_000)
    assert.ok(Number(entries.get('min.compaction.lag.ms')) >= 86_400_000)
    const offsets = await admin.fetchTopicOffsets(names.routes)
    assert.equal(offsets.length, 1)
  })

  test('a write is visible to the same store as soon as put resolves, with audit headers on the record', async () => {
    const store = await openStore()
    assert.deepEqual(await store.put('ada', ada, audit), { created: true })
    assert.deepEqual(store.get('ada'), ada)
    assert.deepEqual(await store.put('ada', { ...ada, name: 'Ada L.' }, audit), { created: false })
    assert.equal(store.get('ada')?.name, 'Ada L.')
    const records = await readConfigRecords(kafka, names.recipients)
    const last = records.at(-1)
    assert.equal(last?.key, 'ada')
    assert.deepEqual(
      {
        user: last?.headers['herald-user'],
        source: last?.headers['herald-source'],
        host: last?.headers['herald-host'],
      },
      { user: 'ops', source: 'test', host: 'test-host' },
    )
    assert.deepEqual(store.auditOf('ada'), { user: 'ops', source: 'test', host: 'test-host' })
  })

  test('a new store (a restart) reads the state back from the topic before it is ready', async () => {
    const first = await openStore()
    await first.put('grace', { id: 'grace', name: 'Grace', phone: '+14155550100', channels: ['sms'] }, audit)
    await first.stop()
    const restarted = await openStore()
    assert.equal(restarted.ready, true)
    assert.equal(restarted.get('grace')?.phone, '+14155550100')
    assert.equal(restarted.get('ada')?.name, 'Ada L.')
  })

  test('delete writes a tombstone: the entry is gone here and after a restart', async () => {
    const store = await openStore()
    await store.put('temp', { id: 'temp', name: 'Temp', channels: [] }, audit)
    assert.equal(await store.delete('temp', audit), true)
    assert.equal(store.get('temp'), undefined)
    assert.equal(store.auditOf('temp'), undefined, 'a deleted entry has no audit')
    assert.equal(await store.delete('temp', audit), false, 'an unknown name writes nothing')
    const records = await readConfigRecords(kafka, names.recipients)
    const tombstones = records.filter((r) => r.key === 'temp' && r.value === null)
    assert.equal(tombstones.length, 1)
    assert.equal(tombstones[0]?.headers['herald-user'], 'ops')
    const restarted = await openStore()
    assert.equal(restarted.has('temp'), false)
    assert.equal(restarted.has('grace'), true)
  })

  test('two readers on their own clients (as two processes) see each other’s writes', async () => {
    const otherKafka = testKafka(kafkaBrokers())
    const otherProducer = await newProducer(otherKafka)
    try {
      const a = await openStore()
      const b = await openStore(otherKafka, otherProducer)
      await a.put('from-a', { id: 'from-a', name: 'A', channels: [] }, audit)
      await b.put('from-b', { id: 'from-b', name: 'B', channels: [] }, { ...audit, user: 'ci' })
      await eventually('b sees a', () => (b.has('from-a') ? true : undefined), 30_000)
      await eventually('a sees b', () => (a.has('from-b') ? true : undefined), 30_000)
      await b.delete('from-a', audit)
      await eventually('a sees the delete', () => (a.has('from-a') ? undefined : true), 30_000)
    } finally {
      await otherProducer.disconnect()
    }
  })

  test('a record that fails the schema is ignored and the previous value stays', async () => {
    const store = await openStore()
    await producer.send({
      topic: names.recipients,
      acks: -1,
      messages: [{ key: 'ada', value: JSON.stringify({ id: 'ada', channels: ['fax'] }) }],
    })
    await store.put('marker', { id: 'marker', name: 'M', channels: [] }, audit)
    assert.equal(store.get('ada')?.name, 'Ada L.')
  })

  test('stop() returns within its bound when the reader never finishes leaving its group', async () => {
    // What a frozen broker looks like to the store: the consumer's disconnect never settles.
    const leave: Array<() => Promise<void>> = []
    const stuck = new Proxy(kafka, {
      get(target, property, receiver) {
        if (property !== 'consumer') return Reflect.get(target, property, receiver)
        return (...args: Parameters<Kafka['consumer']>) => {
          const consumer = target.consumer(...args)
          leave.push(consumer.disconnect.bind(consumer))
          return Object.assign(consumer, { disconnect: () => new Promise<void>(() => {}) })
        }
      },
    })
    const store = new ConfigTopicStore(stuck, {
      topic: names.recipients,
      schema: recipientSchema,
      producer,
      logger,
      groupPrefix: ns.prefix,
      stopTimeoutMs: 500,
    })
    await store.start()
    await store.whenReady()
    const stopped = await Promise.race([
      store.stop().then(() => 'stopped'),
      new Promise((resolve) => setTimeout(resolve, 20_000, 'still stopping after 20 s')),
    ])
    for (const disconnect of leave) await disconnect()
    assert.equal(stopped, 'stopped')
  })

  test('pages list entries by name, with the name to continue after', async () => {
    const store = await openStore()
    const all = store.entries().map(([name]) => name)
    assert.ok(all.length >= 4)
    const first = store.page({ limit: 2 })
    assert.deepEqual(
      first.items.map((r) => r.id),
      all.slice(0, 2),
    )
    const second = store.page({ limit: 100, ...(first.next ? { after: first.next } : {}) })
    assert.deepEqual(
      second.items.map((r) => r.id),
      all.slice(2),
    )
    assert.equal(second.next, undefined)
  })
})
