// The baseline of the distributor benchmark (bench/distributor.ts): the naive design the issue compares
// Herald with, in Node on the same libraries. A kafkajs consumer group delivering one message at a time per
// partition (all partitions concurrently), a Redis SET per message, two log lines per message, offsets
// committed by kafkajs. No validation, statuses, events, crash guard, breaker or offset protocol: what
// Herald costs beyond it is what its guarantees cost.
//   BENCH_BROKERS, BENCH_REDIS_URL, BENCH_TOPIC, BENCH_GROUP, BENCH_CHANNEL (slack|email), BENCH_TARGET
//   (the Slack stand-in's base URL, or the SMTP stand-in's smtp:// URL), BENCH_PARTITIONS
import { createKafka } from '@herald/shared/kafka'
import { createLogger } from '@herald/shared/logger'
import { Redis } from 'ioredis'
import nodemailer from 'nodemailer'
import { pino } from 'pino'

const env = (name: string): string => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is required`)
  return value
}
const channel = env('BENCH_CHANNEL')
const target = env('BENCH_TARGET')
// Two lines per message, written like a service's log but to nowhere: the cost is the formatting.
const log = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false }))
const redis = new Redis(env('BENCH_REDIS_URL'), { enableAutoPipelining: true })
const mail =
  channel === 'email'
    ? nodemailer.createTransport({ url: target, pool: true, maxConnections: Number(env('BENCH_PARTITIONS')) })
    : undefined

async function send(record: { id: string; to: string; message: string }): Promise<void> {
  if (mail) {
    await mail.sendMail({ from: 'bench@example.com', to: record.to, subject: 'bench', text: record.message })
    return
  }
  const response = await fetch(`${target}/services/${record.to}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text: record.message }),
  })
  await response.text()
  if (!response.ok) throw new Error(`webhook answered ${response.status}`)
}

// Herald's client factory only for kafkajs' idle 1 ms request-queue timer, which it skips (shared/src/kafka.ts):
// left in, that timer would cost the baseline CPU that Herald does not pay.
const kafka = createKafka({
  clientId: 'naive',
  brokers: env('BENCH_BROKERS').split(','),
  // Its warnings and errors are shown (on stdout, which the bench passes through), not silenced.
  logger: createLogger({ service: 'naive', level: 'warn' }),
})
const consumer = kafka.consumer({ groupId: env('BENCH_GROUP') })
await consumer.connect()
await consumer.subscribe({ topic: env('BENCH_TOPIC'), fromBeginning: true })
await consumer.run({
  partitionsConsumedConcurrently: Number(env('BENCH_PARTITIONS')),
  eachMessage: async ({ message, partition }) => {
    const record = JSON.parse(message.value?.toString('utf8') ?? '{}') as {
      id: string
      to: string
      message: string
    }
    log.info({ id: record.id, partition, offset: message.offset }, 'delivering')
    await send(record)
    await redis.set(`naive:${record.id}`, 'delivered', 'EX', 3600)
    log.info({ id: record.id }, 'delivered')
  },
})
process.once('SIGTERM', () => {
  void consumer.disconnect().finally(() => process.exit(0))
})
