// End-to-end latency benchmark: POST /api/v1/notification → the provider received it, through the real api
// and distributor processes (api/src/main.ts, distributor/src/main.ts: the production code) and the SMTP
// stand-in in its own process answering at once. The load is open-loop: request i is due at
// start + i/rate whatever happened to earlier ones, and its latency is counted from that due time (not from
// when it was actually sent), so a stall shows up in the latency instead of slowing the load down
// (no coordinated omission). Receipt time is the stand-in's record of the message (ms resolution).
// Baseline, at the same rate in the same run: the Kafka floor — a bare kafkajs producer (acks=all, the
// records due in one timer tick sent as one request, as the api coalesces them) and a bare consumer with
// no work (same fetch wait as the distributor); its latency is due time → consumer callback.
// A run where delivered ≠ accepted is INVALID.
// The floor runs before and after Herald at each rate; one that moved by more than 2× marks the run NOISY.
// Run: npm run bench:e2e [-- --record]   (BENCH_RATES 500,2000; BENCH_SECONDS per rate, default 15; BENCH_REPLICAS
// email distributors, default 1)
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createLogger } from '@herald/shared/logger'
import { createRedis, type Redis } from '@herald/shared/redis/client'
import { ensureTopics, topicNames, topicSpecs, waitForLeaders } from '@herald/shared/topics'
import { Kafka, logLevel, type Message, Partitioners } from 'kafkajs'
import { kafkaPid } from '../dev/lib/kafka.ts'
import { redisPid } from '../dev/lib/redis.ts'
import { stackFromEnv, startStack, stopStack } from '../dev/lib/stack.ts'
import { freePort } from '../test/helpers.ts'
import {
  CpuMeter,
  describeCpu,
  describePerOperation,
  groupSettled,
  ReceiptTail,
  type ServiceProcess,
  spawnService,
  startStandInProcess,
  stopService,
} from './processes.ts'
import { appendReport, formatTable, machineFacts, percentile } from './report.ts'

/** Receipts of one phase's `<tag>-<i>` messages: latency from each one's due time, first receipts only. */
class Receipts {
  readonly due: Float64Array
  readonly #received: Uint8Array
  readonly #tag: string
  readonly #latency: number[] = []
  delivered = 0
  #duplicates = 0
  #first = Number.POSITIVE_INFINITY
  #last = 0

  constructor(count: number, tag: string) {
    this.due = new Float64Array(count)
    this.#received = new Uint8Array(count)
    this.#tag = tag
  }

  note(text: string, at: number): void {
    if (!text.startsWith(`${this.#tag}-`)) return
    const i = Number(text.slice(this.#tag.length + 1))
    if (this.#received[i]) {
      this.#duplicates++
      return
    }
    this.#received[i] = 1
    this.delivered++
    this.#latency.push(at - (this.due[i] ?? 0))
    this.#first = Math.min(this.#first, at)
    this.#last = Math.max(this.#last, at)
  }

  summary() {
    return {
      delivered: this.delivered,
      duplicates: this.#duplicates,
      deliveredRate: rate(this.delivered - 1, this.#first, this.#last),
      latency: this.#latency.sort((a, b) => a - b),
    }
  }
}

const rates = (process.env.BENCH_RATES ?? '500,2000').split(',').map(Number)
const seconds = Number(process.env.BENCH_SECONDS ?? 15)
const replicaCount = Number(process.env.BENCH_REPLICAS ?? 1)
const partitions = 12
const recipients = 1000
/** A phase waits this long for the last deliveries after its last send before it gives up. */
const drainTimeoutMs = 60_000
const logger = createLogger({ service: 'bench', level: 'silent' })

interface Phase {
  pipeline: 'herald' | 'kafka floor'
  /** The floor's second round (after Herald's phase). */
  round?: 2
  rate: number
  sent: number
  accepted: number
  errors: number
  delivered: number
  duplicates: number
  /** Achieved request rate: sends over the time from the first to the last send. */
  sendRate: number
  /** Deliveries over the time from the first to the last delivery. */
  deliveredRate: number
  /** Due time → 202 (herald) or → acks=all acknowledgement (floor), ms. */
  ack: number[]
  /** Due time → provider receipt (herald) or → consumer callback (floor), ms, sorted. */
  latency: number[]
  /** How late the generator sent (actual send − due), ms, sorted. */
  lateness: number[]
  cpu: Record<string, number>
  /** CPU per notification sent, µs, per process (from /proc). */
  cpuPerNotification: Record<string, number>
}

/**
 * Calls `fire(i, due)` for i = 0 … total−1 at start + i/rate (every due request of a timer tick at once,
 * then `tick()`), whatever the answers to earlier ones. Returns how late each one went out.
 */
async function openLoop(
  rate: number,
  total: number,
  fire: (i: number, due: number) => void,
  tick: () => void = () => {},
): Promise<{ lateness: number[]; first: number; last: number }> {
  const start = Date.now() + 10
  const lateness: number[] = []
  let i = 0
  let last = start
  while (i < total) {
    const now = Date.now()
    for (let due = start + (i * 1000) / rate; i < total && due <= now; due = start + (i * 1000) / rate) {
      lateness.push(now - due)
      fire(i, due)
      i++
      last = now
    }
    tick()
    if (i < total) await sleep(1)
  }
  return { lateness: lateness.sort((a, b) => a - b), first: start, last }
}

const agent = new Agent({ keepAlive: true, maxSockets: 512 })

function post(port: number, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port,
        path: '/api/v1/notification',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }))
        res.on('error', () => resolve({ status: 0, text: '' }))
      },
    )
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve({ status: 0, text: '' }))
    req.end(body)
  })
}

const rate = (count: number, fromMs: number, toMs: number) =>
  toMs > fromMs ? count / ((toMs - fromMs) / 1000) : 0

async function main(): Promise<void> {
  const stack = stackFromEnv()
  const up = await startStack(stack, (l) => console.log(`[infra] ${l}`), { adoptRunning: true })
  const prefix = `bench${randomUUID().slice(0, 6)}-e2e`
  const names = topicNames(prefix)
  const kafka = new Kafka({ clientId: 'bench', brokers: [up.brokers], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  await ensureTopics(admin, {
    specs: topicSpecs(names, ['email', 'sms', 'slack'], 1),
    partitions,
    replication: 1,
    brokers: [up.brokers],
    logger,
  })
  const floorTopic = `${prefix}.floor`
  await admin.createTopics({
    topics: [{ topic: floorTopic, numPartitions: partitions, replicationFactor: 1 }],
    waitForLeaders: false,
  })
  await waitForLeaders(admin, [floorTopic])
  const redis: Redis = createRedis(up.redisUrl)
  await redis.connect()

  const recordDir = mkdtempSync(join(tmpdir(), 'herald-bench-e2e-'))
  const standIn = await startStandInProcess(recordDir, 0)
  const tail = new ReceiptTail(standIn.recordFile)
  const apiPort = await freePort()
  const env = {
    KAFKA_BROKERS: up.brokers,
    REDIS_URL: up.redisUrl,
    TOPIC_PREFIX: prefix,
    KEY_PREFIX: prefix,
    TOPIC_PARTITIONS: String(partitions),
    STATUS_TTL_SECONDS: '3600',
    IDEMPOTENCY_TTL_SECONDS: '3600',
    LOG_LEVEL: 'info',
  }
  const services: ServiceProcess[] = []
  const api = spawnService('api', 'api', { ...env, PORT: String(apiPort) })
  services.push(api)
  await api.waitForLog((l) => String(l.msg ?? '').startsWith('api listening'), 60_000)
  const distributors = Array.from({ length: replicaCount }, (_, i) =>
    spawnService(`email-${i + 1}`, 'distributor', {
      ...env,
      CHANNEL: 'email',
      METRICS_PORT: '0',
      SMTP_URL: standIn.url,
      MAIL_FROM: 'bench@example.com',
      SHUTDOWN_TIMEOUT_MS: '5000',
    }),
  )
  services.push(...distributors)
  for (let waited = 0; !groupSettled(distributors, partitions); waited += 100) {
    if (waited > 60_000) throw new Error('the distributors did not claim every partition within 60 s')
    await sleep(100)
  }
  const cpuOf = () =>
    new CpuMeter({
      api: () => [api.child.pid],
      distributors: () => distributors.map((d) => d.child.pid),
      'stand-in': () => [standIn.child.pid],
      kafka: () => [kafkaPid(stack.kafka)],
      redis: () => [redisPid(stack.redis)],
      bench: () => [process.pid],
    })

  /** Herald at `target`/s for `count` requests tagged `tag`: POST → 202 → … → stand-in receipt. */
  async function herald(target: number, count: number, tag: string): Promise<Phase> {
    const receipts = new Receipts(count, tag)
    const { due } = receipts
    const ack: number[] = []
    let accepted = 0
    let errors = 0
    let answers = 0
    const take = () => {
      for (const r of tail.read()) receipts.note(r.text, r.at)
    }
    const poller = setInterval(take, 100)
    const cpu = cpuOf()
    cpu.start()
    const sending = await openLoop(target, count, (i, at) => {
      due[i] = at
      const body = JSON.stringify({
        channel: 'email',
        to: `user${i % recipients}@example.com`,
        message: `${tag}-${i}`,
      })
      void post(apiPort, body).then(({ status }) => {
        answers++
        if (status === 202) {
          accepted++
          ack.push(Date.now() - at)
        } else errors++
      })
    })
    let progressAt = Date.now()
    let seen = -1
    while (answers < count || receipts.delivered < accepted) {
      await sleep(100)
      take()
      if (receipts.delivered + answers !== seen) {
        seen = receipts.delivered + answers
        progressAt = Date.now()
      }
      if (Date.now() - progressAt > drainTimeoutMs) break
    }
    cpu.stop()
    clearInterval(poller)
    take()
    return {
      pipeline: 'herald',
      rate: target,
      sent: count,
      accepted,
      errors: errors + (count - answers),
      ...receipts.summary(),
      sendRate: rate(count - 1, sending.first, sending.last),
      ack: ack.sort((a, b) => a - b),
      lateness: sending.lateness,
      cpu: cpu.shares(),
      cpuPerNotification: cpu.perOperation(count),
    }
  }

  // The Kafka floor: one producer and one consumer group for every rate; values are "<tag>-<i>".
  const floorProducer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  await floorProducer.connect()
  const floorConsumer = kafka.consumer({
    groupId: `${prefix}.floor`,
    maxWaitTimeInMs: 500,
    allowAutoTopicCreation: false,
  })
  await floorConsumer.connect()
  await floorConsumer.subscribe({ topic: floorTopic, fromBeginning: true })
  let onFloorMessage: (value: string, at: number) => void = () => {}
  const joined = new Promise<void>((resolve) =>
    floorConsumer.on(floorConsumer.events.GROUP_JOIN, () => resolve()),
  )
  await floorConsumer.run({
    partitionsConsumedConcurrently: partitions,
    eachBatch: async ({ batch }) => {
      const at = Date.now()
      for (const m of batch.messages) onFloorMessage(m.value?.toString() ?? '', at)
    },
  })
  await joined

  async function floor(target: number, count: number, tag: string): Promise<Phase> {
    const receipts = new Receipts(count, tag)
    const { due } = receipts
    const ack: number[] = []
    let accepted = 0
    let errors = 0
    onFloorMessage = (value, at) => receipts.note(value, at)
    const cpu = cpuOf()
    cpu.start()
    let pending: Array<{ i: number; message: Message }> = []
    const sends: Array<Promise<void>> = []
    const sending = await openLoop(
      target,
      count,
      (i, at) => {
        due[i] = at
        pending.push({ i, message: { key: `user${i % recipients}@example.com`, value: `${tag}-${i}` } })
      },
      () => {
        if (pending.length === 0) return
        const batch = pending
        pending = []
        sends.push(
          floorProducer
            .send({ topic: floorTopic, acks: -1, messages: batch.map((b) => b.message) })
            .then(() => {
              const now = Date.now()
              accepted += batch.length
              for (const b of batch) ack.push(now - (due[b.i] ?? 0))
            })
            .catch(() => {
              errors += batch.length
            }),
        )
      },
    )
    await Promise.all(sends)
    let progressAt = Date.now()
    let seen = -1
    while (receipts.delivered < accepted) {
      await sleep(100)
      if (receipts.delivered !== seen) {
        seen = receipts.delivered
        progressAt = Date.now()
      }
      if (Date.now() - progressAt > drainTimeoutMs) break
    }
    cpu.stop()
    return {
      pipeline: 'kafka floor',
      rate: target,
      sent: count,
      accepted,
      errors,
      ...receipts.summary(),
      sendRate: rate(count - 1, sending.first, sending.last),
      ack: ack.sort((a, b) => a - b),
      lateness: sending.lateness,
      cpu: cpu.shares(),
      cpuPerNotification: cpu.perOperation(count),
    }
  }

  // Warm-up (connections, pools, JIT), not reported.
  await floor(200, 400, 'warm')
  const warm = await herald(200, 400, 'warm')
  if (warm.delivered < warm.accepted) throw new Error('warm-up: not every notification was delivered')
  console.log('warmed up')

  const phases: Phase[] = []
  // The floor in two rounds, before and after Herald's phase: a floor p50 that moved by more than 2×
  // between them marks the run NOISY.
  const noisy: string[] = []
  for (const target of rates) {
    const count = Math.round(target * seconds)
    const f = await floor(target, count, `floor${target}`)
    phases.push(f)
    const h = await herald(target, count, `herald${target}`)
    phases.push(h)
    const again = await floor(target, count, `floor${target}b`)
    phases.push({ ...again, round: 2 })
    const [p1, p2] = [percentile(f.latency, 50), percentile(again.latency, 50)]
    if (Math.max(p1, p2) > 2 * Math.max(1, Math.min(p1, p2)))
      noisy.push(`at ${target}/s the floor p50 was ${p1} ms, then ${p2} ms`)
    console.log(
      `${target}/s: herald p50 ${percentile(h.latency, 50)} ms p99 ${percentile(h.latency, 99)} ms ` +
        `(floor p50 ${percentile(f?.latency ?? [], 50)} p99 ${percentile(f?.latency ?? [], 99)}), ` +
        `delivered ${h.delivered}/${h.accepted}`,
    )
  }

  const invalid = (p: Phase) => p.errors > 0 || p.delivered !== p.accepted
  const sustained = (p: Phase) => p.deliveredRate >= 0.95 * p.rate && percentile(p.lateness, 99) < 50
  const ms = (v: number) => v.toFixed(0)
  const rows = phases.map((p) => {
    const f = phases.find((q) => q.pipeline === 'kafka floor' && q.rate === p.rate && q.round === undefined)
    const vs = (q: number) => {
      if (p.pipeline !== 'herald' || !f) return ''
      const a = percentile(p.latency, q)
      const b = percentile(f.latency, q)
      return `+${ms(a - b)} (${b > 0 ? (a / b).toFixed(1) : '∞'}×)`
    }
    return [
      `${p.rate}/s`,
      p.round ? `${p.pipeline} (round 2)` : p.pipeline,
      p.sendRate.toFixed(0),
      p.deliveredRate.toFixed(0),
      `${ms(percentile(p.ack, 50))} / ${ms(percentile(p.ack, 99))}`,
      ms(percentile(p.latency, 50)),
      ms(percentile(p.latency, 99)),
      ms(percentile(p.latency, 99.9)),
      ms(p.latency[p.latency.length - 1] ?? 0),
      vs(50),
      vs(99),
      `${p.delivered} / ${p.accepted} / ${p.sent}${p.duplicates ? ` (+${p.duplicates} dup)` : ''}`,
      invalid(p) ? 'INVALID' : sustained(p) ? 'VALID' : 'VALID, rate not sustained',
    ]
  })
  const table = formatTable(
    [
      'target',
      'pipeline',
      'sent/s',
      'delivered/s',
      'ack p50 / p99 ms',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'max ms',
      'p50 vs floor',
      'p99 vs floor',
      'delivered / accepted / sent',
      'run',
    ],
    rows,
  )
  const cpuLines = phases.map(
    (p) =>
      `CPU at ${p.rate}/s, ${p.pipeline}${p.round ? ' (round 2)' : ''}: ${describeCpu(p.cpu)}; per notification (µs): ${describePerOperation(p.cpuPerNotification)}; generator p99 lateness ${ms(percentile(p.lateness, 99))} ms.`,
  )
  cpuLines.push(
    noisy.length > 0
      ? `NOISY: the floor moved by more than 2× between its rounds (${noisy.join('; ')}); the "vs floor" columns of this run are not comparable.`
      : 'Floor steady: its p50 moved by less than 2× between the rounds before and after Herald.',
  )
  console.log(`\n${table}\n\n${cpuLines.join('\n')}`)
  appendReport('End-to-end latency', [
    `${seconds} s per rate, open-loop (latency from each request's due time), ${partitions} partitions, ${recipients} recipients, ` +
      `api + ${replicaCount} email distributor${replicaCount > 1 ? 's' : ''} as separate processes (production main.ts, default settings), ` +
      `SMTP stand-in (own process) answering at once, ${await machineFacts()}`,
    'herald: due time → the stand-in recorded the message; kafka floor: due time → a bare consumer saw the record ' +
      '(bare kafkajs producer, acks=all, one request per timer tick; consumer with no work). "ack" = due time → 202 ' +
      '(herald) or → acknowledgement (floor). "vs floor" = difference in ms (ratio). "rate not sustained" = ' +
      'delivered/s below 95% of the target or the generator more than 50 ms late at p99. INVALID = an error ' +
      'answer or delivered ≠ accepted.',
    '',
    table,
    '',
    ...cpuLines,
  ])

  await floorConsumer.disconnect()
  await floorProducer.disconnect()
  await Promise.all(services.map((s) => stopService(s)))
  await standIn.stop()
  agent.destroy()
  rmSync(recordDir, { recursive: true, force: true })
  for await (const keys of redis.scanStream({ match: `${prefix}:*`, count: 1000 })) {
    if ((keys as string[]).length > 0) await redis.unlink(...(keys as string[]))
  }
  redis.disconnect()
  await admin
    .deleteTopics({ topics: (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`)) })
    .catch(() => {})
  await admin.disconnect()
  if (up.startedKafka || up.startedRedis)
    await stopStack(stack, { kafka: up.startedKafka, redis: up.startedRedis })
  if (phases.some(invalid)) process.exitCode = 1
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
