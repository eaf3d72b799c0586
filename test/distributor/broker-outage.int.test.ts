// The broker SIGKILLed under a backlog (issue 19's mechanism): while Kafka is down a distributor cannot
// record outcomes (dead letters and events go to Kafka), and kafkajs restarts the consumer, so every claim
// starts again from the last offset recorded. Deliveries that went on meanwhile must not all be repeated:
// no new delivery starts once recording fails, and a record whose status is already final is skipped.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { createRedis, type Redis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import type { Admin, Kafka, Producer } from 'kafkajs'
import { kafkaPid, startKafka } from '../../dev/lib/kafka.ts'
import { type SmtpStandIn, startSmtpStandIn } from '../../dev/standins/smtp.ts'
import { type PrivateStack, startPrivateStack } from '../helpers.ts'
import {
  countBy,
  createTopics,
  deleteNamespace,
  emailRecord,
  namespace,
  newProducer,
  produceRecords,
  serviceEnv,
  type TestNamespace,
  testKafka,
  watermarks,
} from '../support/fixtures.ts'
import { eventually, type ServiceProcess, startService } from '../support/service-process.ts'

let stack: PrivateStack
let smtp: SmtpStandIn
let kafka: Kafka
let admin: Admin
let producer: Producer
let redis: Redis
const running: ServiceProcess[] = []
let ns: TestNamespace

before(async () => {
  stack = await startPrivateStack()
  smtp = await startSmtpStandIn({ port: 0, httpPort: 0, quiet: true })
  kafka = testKafka(stack.brokers)
  admin = kafka.admin()
  await admin.connect()
  producer = await newProducer(kafka)
  redis = createRedis(stack.redisUrl)
  await redis.connect()
})

after(async () => {
  for (const p of running) p.kill('SIGKILL')
  if (ns) await deleteNamespace(admin, redis, ns).catch(() => {})
  await producer?.disconnect().catch(() => {})
  await admin?.disconnect().catch(() => {})
  redis?.disconnect()
  await smtp?.close()
  await stack?.destroy()
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

test('a broker SIGKILL while a backlog is being delivered repeats at most what was in flight', async (t) => {
  ns = namespace('broker-kill')
  await createTopics(admin, ns, 4, stack.brokers)
  const concurrency = 8
  const replicas = 2
  // A backlog: 1,600 records for 40 recipients, 50 ms each: about 20 s of work for the two replicas.
  const records = Array.from({ length: 1600 }, (_, i) =>
    emailRecord(`${ns.prefix}-${i}`, `user${i % 40}@example.com`),
  )
  for (let i = 0; i < records.length; i += 200)
    await produceRecords(producer, ns.topics.main('email'), records.slice(i, i + 200))
  smtp.setFaults({ latencyMs: 50 })
  const env = serviceEnv(
    ns,
    { SMTP_URL: `smtp://127.0.0.1:${smtp.port}` },
    {
      CHANNEL: 'email',
      KAFKA_BROKERS: stack.brokers,
      REDIS_URL: stack.redisUrl,
      DELIVERY_CONCURRENCY: String(concurrency),
    },
  )
  for (let i = 1; i <= replicas; i++) running.push(startService(`broker-kill-${i}`, 'distributor', env))
  const delivered = () =>
    smtp
      .messages()
      .map((m) => /^<(.+)@herald>$/.exec(m.messageId ?? '')?.[1])
      .filter((id): id is string => id?.startsWith(`${ns.prefix}-`) ?? false)
  await eventually(
    'a fifth of the backlog delivered',
    () => (delivered().length >= 320 ? true : undefined),
    60_000,
  )
  const pid = kafkaPid(stack.stack.kafka)
  assert.ok(pid, 'the private broker runs')
  process.kill(pid, 'SIGKILL')
  await sleep(5000)
  await startKafka(stack.stack.kafka)
  const topic = ns.topics.main('email')
  const offsets = redisKeys(ns.prefix).offsets(ns.groupId('email'), topic)
  await eventually(
    'offsets at the log end',
    async () => {
      const stored = await redis.hgetall(offsets)
      for (const [partition, { high }] of await watermarks(admin, topic))
        if (Number(stored[String(partition)] ?? -1) < high) return undefined
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
  assert.ok(duplicates <= concurrency * replicas, `${duplicates} duplicates`)
})
