// Distributor pipeline benchmark: deliveries per second through the production consumer, offset protocol,
// statuses and events (the Distributor class, in process), with only the channel swapped, against a bare
// kafkajs consumer reading the same topic with no work, measured in the same run.
//   instant   a channel that accepts at once (pipeline overhead alone)
//   smtp 0ms  nodemailer against the SMTP stand-in
//   smtp 50ms the same with 50 ms provider latency
// The bare consumer runs twice, first and last: a baseline that moved by more than 2× marks the run NOISY.
// Run: npm run bench:pipeline [-- --record]   (BENCH_RECORDS, default 20000)
import { randomUUID } from 'node:crypto'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { createRedis, defineScripts, sharedScripts } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { StatusStore } from '@herald/shared/status'
import { ensureTopics, topicNames, topicSpecs } from '@herald/shared/topics'
import { Kafka, logLevel, Partitioners } from 'kafkajs'
import { stackFromEnv, startStack, stopStack } from '../dev/lib/stack.ts'
import { startSmtpStandIn } from '../dev/standins/smtp.ts'
import type { Channel } from '../distributor/src/channels/channel.ts'
import { createEmailChannel } from '../distributor/src/channels/email.ts'
import { Distributor } from '../distributor/src/consumer.ts'
import { createDistributorMetrics } from '../distributor/src/metrics.ts'
import { appendReport, formatTable, machineFacts } from './report.ts'

const records = Number(process.env.BENCH_RECORDS ?? 20_000)
const partitions = 12
const logger = createLogger({ service: 'bench', level: 'silent' })

async function main(): Promise<void> {
  const stack = stackFromEnv()
  const up = await startStack(stack, (l) => console.log(`[infra] ${l}`), { adoptRunning: true })
  const kafka = new Kafka({ clientId: 'bench', brokers: [up.brokers], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const redis = createRedis(up.redisUrl)
  defineScripts(redis, sharedScripts)
  await redis.connect()
  const smtp = await startSmtpStandIn({ port: 0, httpPort: 0, quiet: true })
  const rows: string[][] = []
  const results: Record<string, number> = {}
  /** CPU of this process per record, µs (the distributor, or the bare consumer; with the SMTP stand-in in it). */
  const cpuMicros: Record<string, number[]> = {}
  const measureCpu = async <T>(label: string, run: () => Promise<T>): Promise<T> => {
    const before = process.cpuUsage()
    const value = await run()
    const used = process.cpuUsage(before)
    cpuMicros[label] = [...(cpuMicros[label] ?? []), (used.user + used.system) / records]
    return value
  }

  /** A fresh namespace with `records` email records over many recipients. */
  async function prepare(label: string) {
    const prefix = `bench${randomUUID().slice(0, 6)}-${label}`
    const names = topicNames(prefix)
    await ensureTopics(admin, {
      specs: topicSpecs(names, ['email'], 1),
      partitions,
      replication: 1,
      brokers: [up.brokers],
      logger,
    })
    const producer = kafka.producer({
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    })
    await producer.connect()
    for (let i = 0; i < records; i += 1000) {
      await producer.send({
        topic: names.main('email'),
        acks: -1,
        messages: Array.from({ length: Math.min(1000, records - i) }, (_, j) => {
          const n = i + j
          const to = `user${n % 2000}@example.com`
          const value = {
            v: 1,
            id: `${prefix}-${n}`,
            channel: 'email',
            to,
            message: `m${n}`,
            createdAt: new Date().toISOString(),
          }
          return { key: to, value: JSON.stringify(value) }
        }),
      })
    }
    await producer.disconnect()
    return { prefix, names }
  }

  async function bareConsumer(): Promise<number> {
    const { prefix, names } = await prepare('bare')
    const consumer = kafka.consumer({ groupId: `${prefix}.bare` })
    await consumer.connect()
    await consumer.subscribe({ topic: names.main('email'), fromBeginning: true })
    let seen = 0
    const started = performance.now()
    await new Promise<void>((resolve) => {
      void consumer.run({
        partitionsConsumedConcurrently: partitions,
        eachBatch: async ({ batch }) => {
          seen += batch.messages.length
          if (seen >= records) resolve()
        },
      })
    })
    const rate = records / ((performance.now() - started) / 1000)
    await consumer.disconnect()
    return rate
  }

  /**
   * Timed like the bare consumer, from run() (group join included) to the last recorded offset; the
   * steady rate from the first delivery on is reported beside it.
   */
  const steady: Record<string, number> = {}
  async function pipeline(label: string, inner: Channel, delivered: () => number): Promise<number> {
    let started = 0
    const channel: Channel = {
      ...inner,
      send: (record, signal) => {
        if (started === 0) started = performance.now()
        return inner.send(record, signal)
      },
    }
    const { prefix, names } = await prepare(label)
    const config = loadConfig(
      {
        CHANNEL: 'email',
        TOPIC_PARTITIONS: String(partitions),
        KEY_PREFIX: prefix,
        TOPIC_PREFIX: prefix,
        DELIVERY_CONCURRENCY: '64',
      },
      'distributor',
    )
    const keys = redisKeys(prefix)
    const distributor = new Distributor({
      kafka,
      redis,
      keys,
      statuses: new StatusStore(redis, keys, 3600),
      channel,
      config,
      logger,
      metrics: createDistributorMetrics({ channel: 'email' }),
      topics: { main: names.main('email'), deadLetter: names.deadLetter('email'), events: names.events },
      groupId: `${prefix}.distributor.email`,
    })
    const begun = performance.now()
    await distributor.start(() => {})
    const offsetsKey = keys.offsets(`${prefix}.distributor.email`, names.main('email'))
    for (;;) {
      const hash = await redis.hgetall(offsetsKey)
      const done = Object.entries(hash)
        .filter(([k]) => /^\d+$/.test(k))
        .reduce((s, [, v]) => s + Number(v), 0)
      if (done >= records) break
      await new Promise((r) => setTimeout(r, 50))
    }
    const rate = records / ((performance.now() - begun) / 1000)
    steady[label] = records / ((performance.now() - started) / 1000)
    await distributor.stop()
    const count = delivered()
    if (count < records) throw new Error(`${label}: INVALID run, ${count} delivered of ${records} produced`)
    return rate
  }

  let instantCount = 0
  const instant: Channel = {
    name: 'email',
    send: async () => {
      instantCount++
      return {}
    },
    close: async () => {},
  }
  // The baseline in two rounds, before and after the distributor runs; its figure is their mean.
  const bareRounds = [await measureCpu('bare', bareConsumer)]
  results.instant = await measureCpu('instant', () => pipeline('instant', instant, () => instantCount))
  for (const latency of [0, 50]) {
    smtp.clear()
    smtp.setFaults({ latencyMs: latency })
    const email = createEmailChannel({ smtpUrl: smtp.url, from: 'bench@example.com', maxConnections: 64 })
    results[`smtp${latency}`] = await measureCpu(`smtp${latency}`, () =>
      pipeline(`smtp${latency}`, email, () => smtp.messages().length),
    )
    await email.close()
  }
  bareRounds.push(await measureCpu('bare', bareConsumer))
  results.bare = bareRounds.reduce((a, b) => a + b, 0) / bareRounds.length
  const noisy = Math.max(...bareRounds) > 2 * Math.min(...bareRounds)
  const bare = results.bare ?? 1
  for (const [name, label] of [
    ['bare', 'bare kafkajs consumer (no work)'],
    ['instant', 'distributor, instant channel'],
    ['smtp0', 'distributor, nodemailer → SMTP stand-in, 0 ms'],
    ['smtp50', 'distributor, nodemailer → SMTP stand-in, 50 ms'],
  ] as const) {
    const rate = results[name] ?? 0
    const fromFirst = steady[name]
    rows.push([
      label,
      name === 'bare'
        ? `${rate.toFixed(0)} (rounds ${bareRounds.map((r) => r.toFixed(0)).join(' / ')})`
        : rate.toFixed(0),
      name === 'bare' ? '1.00' : (rate / bare).toFixed(2),
      fromFirst === undefined ? '' : fromFirst.toFixed(0),
      (() => {
        const c = cpuMicros[name] ?? []
        return c.length === 0 ? '' : (c.reduce((a, b) => a + b, 0) / c.length).toFixed(0)
      })(),
    ])
  }
  const table = formatTable(
    [
      'pipeline',
      'records/s (from run())',
      'vs bare consumer',
      'records/s from first delivery',
      'CPU µs/record (bench process; SMTP rows include the in-process stand-in)',
    ],
    rows,
  )
  const noise = noisy
    ? `NOISY: the bare consumer moved by more than 2× between its rounds (${bareRounds.map((r) => r.toFixed(0)).join(' then ')} records/s); the ratios of this run are not comparable.`
    : 'Baseline steady: the bare consumer moved by less than 2× between its two rounds.'
  console.log(`\n${table}\n\n${noise}`)
  appendReport('Distributor pipeline', [
    `${records} records, ${partitions} partitions, 2000 recipients, one replica, delivery concurrency 64, ${await machineFacts()}`,
    'Every run counts what arrived: a run where delivered < produced is reported INVALID and fails.',
    '',
    table,
    '',
    noise,
  ])
  await smtp.close()
  redis.disconnect()
  await admin.disconnect()
  if (up.startedKafka || up.startedRedis)
    await stopStack(stack, { kafka: up.startedKafka, redis: up.startedRedis })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
