import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { redisKeys } from '@herald/shared/redis/keys'
import type { Admin, Kafka } from 'kafkajs'
import { kafkaPid } from '../dev/lib/kafka.ts'
import { redisPid } from '../dev/lib/redis.ts'
import { readTopics } from '../test/support/offsets.ts'
import {
  CpuMeter,
  groupSettled,
  ReceiptTail,
  type ServiceProcess,
  spawnService,
  startStandInProcess,
  stopService,
} from './processes.ts'
import { deleteKeys, openBenchStack, preloadByPartition } from './records.ts'
import { appendReport, formatTable, machineFacts } from './report.ts'

const replicaCounts = (process.env.BENCH_REPLICAS ?? '1,2,4').split(',').map(Number)
const windowSeconds = Number(process.env.BENCH_SECONDS ?? 12)
const records = Number(process.env.BENCH_RECORDS ?? 40_000)
const recipients = Number(process.env.BENCH_RECIPIENTS ?? 5000)
const latencyMs = Number(process.env.BENCH_LATENCY_MS ?? 50)
const partitions = 12
// The production default unless the environment says otherwise (the replicas read the same variable).
const concurrency = loadConfig(
  {
    CHANNEL: 'email',
    ...(process.env.DELIVERY_CONCURRENCY ? { DELIVERY_CONCURRENCY: process.env.DELIVERY_CONCURRENCY } : {}),
  },
  'distributor',
).delivery.concurrency
/** Ramp after the group settled and the first delivery arrived, before the window opens. */
const rampMs = 1000
const _logger = createLogger({ service: 'bench', level: 'silent' })

interface Run {
  replicas: number
  rate: number
  windowSeconds: number
  inWindow: number
  settleSeconds: number
  rebalancesInWindow: number
  /** Records whose offset the replicas recorded as finished (below the stored next, or noted beyond it). */
  finished: number
  /** Finished records whose text never reached the provider: lost (compared by id, not by count). */
  missing: number
  received: number
  duplicates: number
  errors: number
  ranOut: boolean
  cpu: Record<string, number>
  /** CPU of the replicas (summed) per delivery in the window, µs. */
  replicaMicros: number | undefined
  valid: boolean
}

const joinsOf = (replicas: ServiceProcess[]) =>
  replicas.reduce(
    (s, r) => s + r.lines.filter((l) => l.msg === 'joined the group; claiming partitions').length,
    0,
  )

/** `records` notifications over the recipients; recipient i always goes to partition i mod 12. */
function preload(kafka: Kafka, admin: Admin, topic: string, prefix: string): Promise<number> {
  return preloadByPartition(kafka, admin, topic, records, (n) => {
    const recipient = n % recipients
    const to = `user${recipient}@example.com`
    const value = {
      v: 1,
      id: `${prefix}-${n}`,
      channel: 'email',
      to,
      message: `scale-${n}`,
      createdAt: new Date().toISOString(),
    }
    return { partition: recipient % partitions, message: { key: to, value: JSON.stringify(value) } }
  })
}

async function main(): Promise<void> {
  const bench = await openBenchStack('scale', ['email', 'sms', 'slack'], partitions)
  const { stack, up, prefix, names, kafka, admin, redis } = bench
  const topic = names.main('email')
  const inTopic = await preload(kafka, admin, topic, prefix)
  if (inTopic !== records)
    console.warn(`the topic holds ${inTopic} records, not ${records} (producer retries)`)
  console.log(
    `preloaded ${inTopic} records into ${topic} (${partitions} partitions, ${recipients} recipients)`,
  )

  // What each offset holds, to compare what the replicas recorded as finished with what arrived, id by id.
  const texts = new Map<string, string>()
  for (const r of (await readTopics(kafka, [topic])).get(topic) ?? []) {
    const message = (JSON.parse(r.value) as { message?: string }).message
    if (message) texts.set(`${r.partition}:${r.offset}`, message)
  }
  const runs: Run[] = []
  // The baseline (1 replica) runs again at the end: one that moved by more than 2× marks the run NOISY.
  const order = replicaCounts.includes(1) ? [...replicaCounts, 1] : replicaCounts
  for (const [round, count] of order.entries()) {
    const recordDir = mkdtempSync(join(tmpdir(), 'herald-bench-scaling-'))
    const standIn = await startStandInProcess(recordDir, latencyMs)
    // A group of its own per run (KEY_PREFIX names the group and the Redis keys): every run reads from 0.
    const keyPrefix = `${prefix}-r${count}-${round}`
    const env = {
      KAFKA_BROKERS: up.brokers,
      REDIS_URL: up.redisUrl,
      TOPIC_PREFIX: prefix,
      KEY_PREFIX: keyPrefix,
      TOPIC_PARTITIONS: String(partitions),
      CHANNEL: 'email',
      METRICS_PORT: '0',
      SMTP_URL: standIn.url,
      MAIL_FROM: 'bench@example.com',
      DELIVERY_CONCURRENCY: String(concurrency),
      SHUTDOWN_TIMEOUT_MS: '3000',
      STATUS_TTL_SECONDS: '3600',
      LOG_LEVEL: 'info',
    }
    const startedAt = Date.now()
    const replicas = Array.from({ length: count }, (_, i) =>
      spawnService(`email-${i + 1}`, 'distributor', env),
    )
    const cpu = new CpuMeter({
      replicas: () => replicas.map((r) => r.child.pid),
      'stand-in': () => [standIn.child.pid],
      kafka: () => [kafkaPid(stack.kafka)],
      redis: () => [redisPid(stack.redis)],
    })
    const tail = new ReceiptTail(standIn.recordFile)
    const times: number[] = []
    const received = new Set<string>()
    let duplicates = 0
    const take = () => {
      for (const r of tail.read()) {
        times.push(r.at)
        if (received.has(r.text)) duplicates++
        else received.add(r.text)
      }
    }
    let settledAt: number | undefined
    let joinsAtSettle = 0
    let windowStart: number | undefined
    let windowEnd: number | undefined
    let ranOut = false
    const deadline = startedAt + 90_000 + windowSeconds * 1000
    for (;;) {
      await sleep(200)
      take()
      const now = Date.now()
      if (settledAt === undefined && groupSettled(replicas, partitions)) {
        settledAt = now
        joinsAtSettle = joinsOf(replicas)
      }
      if (windowStart === undefined && settledAt !== undefined && times.length > 0) {
        windowStart = Math.max(settledAt, times[0] ?? now) + rampMs
      }
      if (windowStart !== undefined && now >= windowStart && windowEnd === undefined) {
        cpu.start()
        windowEnd = windowStart + windowSeconds * 1000
      }
      if (windowEnd !== undefined && now >= windowEnd) break
      if (times.length >= inTopic) {
        ranOut = true
        break
      }
      for (const r of replicas) {
        if (r.child.exitCode !== null) throw new Error(`${r.name} exited with ${r.child.exitCode}`)
      }
      if (now > deadline) throw new Error(`replicas=${count}: no steady window within the deadline`)
    }
    cpu.stop()
    const rebalancesInWindow = joinsOf(replicas) - joinsAtSettle
    await Promise.all(replicas.map((r) => stopService(r)))
    take()
    const start = windowStart ?? startedAt
    const end = ranOut ? Math.max(...times) : (windowEnd ?? Date.now())
    const inWindow = times.filter((t) => t >= start && t < end).length
    const group = `${keyPrefix}.distributor.email`
    const keys = redisKeys(keyPrefix)
    const offsets = await redis.hgetall(keys.offsets(group, topic))
    const finishedTexts: string[] = []
    for (const [field, value] of Object.entries(offsets)) {
      if (!/^\d+$/.test(field)) continue
      for (let offset = 0; offset < Number(value); offset++) finishedTexts.push(`${field}:${offset}`)
      // Members of the finished set are the offsets noted beyond next.
      const beyond = await redis.zrangebyscore(keys.finished(group, topic, Number(field)), '-inf', '+inf')
      for (const offset of beyond)
        if (Number(offset) >= Number(value)) finishedTexts.push(`${field}:${offset}`)
    }
    const finished = finishedTexts.length
    const missing = finishedTexts.filter(
      (at) => !received.has(texts.get(at) ?? `(no record at ${at})`),
    ).length
    const errors = replicas.reduce(
      (s, r) => s + r.lines.filter((l) => typeof l.level === 'number' && l.level >= 50).length,
      0,
    )
    // Every record whose offset was recorded as finished must have reached the provider.
    const valid = missing === 0 && errors === 0
    const run: Run = {
      replicas: count,
      rate: inWindow / ((end - start) / 1000),
      windowSeconds: (end - start) / 1000,
      inWindow,
      settleSeconds: ((settledAt ?? startedAt) - startedAt) / 1000,
      rebalancesInWindow,
      finished,
      missing,
      received: received.size,
      duplicates,
      errors,
      ranOut,
      cpu: cpu.shares(),
      replicaMicros: cpu.perOperation(inWindow).replicas,
      valid,
    }
    runs.push(run)
    console.log(
      `replicas ${count}: ${run.rate.toFixed(0)}/s over ${run.windowSeconds.toFixed(1)} s ` +
        `(settled after ${run.settleSeconds.toFixed(1)} s), finished ${finished}, received ${received.size}, finished but not received ${missing}` +
        `${valid ? '' : ' INVALID'}`,
    )
    await standIn.stop()
    rmSync(recordDir, { recursive: true, force: true })
    await deleteKeys(redis, `${keyPrefix}:*`)
  }

  const ones = runs.filter((r) => r.replicas === 1).map((r) => r.rate)
  const one = ones.length > 0 ? ones.reduce((a, b) => a + b, 0) / ones.length : undefined
  const noisy = ones.length > 1 && Math.max(...ones) > 2 * Math.min(...ones)
  const cores = (r: Run, name: string) => (r.cpu[name] === undefined ? '' : (r.cpu[name] ?? 0).toFixed(2))
  const rows = runs.map((r) => [
    String(r.replicas),
    r.rate.toFixed(0),
    one ? (r.rate / one).toFixed(2) : '',
    (r.rate / r.replicas).toFixed(0),
    `${r.windowSeconds.toFixed(1)}${r.ranOut ? ' (ran out)' : ''}`,
    String(r.rebalancesInWindow),
    cores(r, 'replicas'),
    r.replicaMicros === undefined ? '' : r.replicaMicros.toFixed(0),
    cores(r, 'stand-in'),
    cores(r, 'kafka'),
    cores(r, 'redis'),
    cores(r, 'other'),
    cores(r, 'machine busy'),
    `${r.received} / ${r.finished} / ${r.missing}${r.duplicates ? ` (+${r.duplicates} dup)` : ''}`,
    r.valid ? 'VALID' : 'INVALID',
  ])
  const table = formatTable(
    [
      'replicas',
      'deliveries/s',
      'vs 1 replica',
      'per replica',
      'window s',
      'rebalances in window',
      'CPU replicas',
      'replica CPU µs/delivery',
      'CPU stand-in',
      'CPU kafka',
      'CPU redis',
      'CPU other',
      'CPU machine',
      'received / finished / finished not received',
      'run',
    ],
    rows,
  )
  const four = runs.find((r) => r.replicas === 4)?.rate
  const ceiling = concurrency / (latencyMs / 1000)
  const goals = [
    `Goal (issue 7): 1 replica ≥ 500/s at ${latencyMs} ms: ${one === undefined ? 'not run' : `${one.toFixed(0)}/s, ${one >= 500 ? 'met' : 'NOT met'}`}; ` +
      `4 replicas ≥ 3.5× one: ${one && four ? `${(four / one).toFixed(2)}×, ${four / one >= 3.5 ? 'met' : 'NOT met'}` : 'not run'}.`,
    noisy
      ? `NOISY: one replica moved by more than 2× between its rounds (${ones.map((r) => r.toFixed(0)).join(' then ')}/s); the ratios of this run are not comparable.`
      : `Baseline steady: one replica ran first and last (${ones.map((r) => r.toFixed(0)).join(' then ')}/s); "vs 1 replica" uses their mean.`,
    `Per-replica bound from DELIVERY_CONCURRENCY=${concurrency} alone: ${concurrency} in flight / ${latencyMs} ms = ${ceiling.toFixed(0)}/s.`,
  ]
  console.log(`\n${table}\n\n${goals.join('\n')}`)
  appendReport('Distributor scaling', [
    `${inTopic} records preloaded, ${partitions} partitions, ${recipients} recipients, email distributors as separate processes (production main.ts), ` +
      `DELIVERY_CONCURRENCY=${concurrency}, SMTP stand-in (own process) answering after ${latencyMs} ms, steady window ${windowSeconds} s ` +
      `from ${rampMs / 1000} s after the group settled and the first delivery, ${await machineFacts()}`,
    'deliveries/s = provider receipts in the window; CPU in cores (1.00 = one core all the time), averaged over the window; ' +
      '"other" = machine busy minus the named processes (the bench itself, other users of the machine). ' +
      'A run is INVALID when a finished record (below the stored offset, or noted as finished beyond it) never reached the provider, compared by its text (unique per record), or a replica logged an error.',
    '',
    table,
    '',
    ...goals,
  ])
  await bench.close()
  if (runs.some((r) => !r.valid)) process.exitCode = 1
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
