// Distributor benchmark (issue 17, goal 1): deliveries per second and CPU per delivered message of one
// distributor replica (a process running distributor/src/main.ts, the production code) with an instant
// provider, for Slack (50 webhook destinations) and email (50 recipients, the SMTP stand-in), each against a
// baseline in the same run: bench/naive-distributor-process.ts, the naive design on the same libraries (one
// message at a time per partition, a Redis SET and two log lines per message, none of Herald's guarantees).
// The records are preloaded; each round is a fresh consumer group reading them all. The rate and the CPU
// (user + system from /proc, per process) run from the first receipt at the provider to the last one. The
// baseline runs first and last: one that moved by more than 2× marks the run NOISY.
// Valid when every record reached the provider and, for Herald, every offset was recorded in Redis and
// every notification has its event on notifications.events.
// Run: npm run bench:distributor [-- --record]  (BENCH_RECORDS, default 30000; BENCH_DESTINATIONS, 50;
// BENCH_CHANNELS, slack,email; BENCH_PROFILE_DIR: Herald's replica writes a V8 CPU profile there)
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { redisKeys } from '@herald/shared/redis/keys'
import type { Admin, Kafka } from 'kafkajs'
import { kafkaPid } from '../dev/lib/kafka.ts'
import { repoRoot } from '../dev/lib/process.ts'
import { redisPid } from '../dev/lib/redis.ts'
import {
  CpuMeter,
  ReceiptTail,
  type StandInProcess,
  spawnService,
  startStandInProcess,
  stopService,
} from './processes.ts'
import { deleteKeys, openBenchStack, preloadByPartition } from './records.ts'
import { appendReport, formatTable, machineFacts } from './report.ts'

type ChannelName = 'slack' | 'email'
const records = Number(process.env.BENCH_RECORDS ?? 30_000)
const destinations = Number(process.env.BENCH_DESTINATIONS ?? 50)
const channels = (process.env.BENCH_CHANNELS ?? 'slack,email').split(',') as ChannelName[]
const profileDir = process.env.BENCH_PROFILE_DIR
const partitions = 12
const concurrency = loadConfig({ CHANNEL: 'email' }, 'distributor').delivery.concurrency
const _logger = createLogger({ service: 'bench', level: 'silent' })
/** Goal 1 of issue 17, per replica on this machine kind. */
const goal = { perSecond: 6000, cpuMicros: 150 }

interface Round {
  who: 'baseline' | 'herald'
  rate: number
  /** CPU per delivered message in µs, per process name (replica, stand-in, kafka, redis). */
  cpuMicros: Record<string, number>
  delivered: number
  duplicates: number
  /** Herald only: offsets recorded in Redis and events on notifications.events, against the records. */
  recorded?: number
  events?: number
  valid: boolean
}

const destinationOf = (channel: ChannelName, n: number) =>
  channel === 'slack' ? `d${n % destinations}` : `user${n % destinations}@example.com`

/** `records` notifications of `channel` over the destinations, spread over the partitions. */
function preload(kafka: Kafka, admin: Admin, topic: string, channel: ChannelName, prefix: string) {
  const createdAt = new Date().toISOString()
  return preloadByPartition(kafka, admin, topic, records, (n) => {
    const to = destinationOf(channel, n)
    const value = { v: 1, id: `${prefix}-${n}`, channel, to, message: `bench-${channel}-${n}`, createdAt }
    return { partition: n % partitions, message: { key: to, value: JSON.stringify(value) } }
  })
}

function spawnBaseline(env: Record<string, string>): { child: ChildProcess; exited: Promise<void> } {
  const child = spawn(process.execPath, [join(repoRoot, 'bench', 'naive-distributor-process.ts')], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  return { child, exited: new Promise<void>((resolve) => child.once('exit', () => resolve())) }
}

async function main(): Promise<void> {
  const bench = await openBenchStack('dist', channels, partitions)
  const { stack, up, prefix, names, kafka, admin, redis } = bench
  const sections: string[] = []
  const summaries: string[] = []
  let failed = false
  for (const channel of channels) {
    const topic = names.main(channel)
    const inTopic = await preload(kafka, admin, topic, channel, `${prefix}-${channel}`)
    console.log(`${channel}: preloaded ${inTopic} records over ${destinations} destinations`)
    const rounds: Round[] = []
    for (const [index, who] of (['baseline', 'herald', 'baseline'] as const).entries()) {
      const recordDir = mkdtempSync(join(tmpdir(), 'herald-bench-distributor-'))
      const provider = channel === 'slack' ? 'slack' : 'smtp'
      const standIn: StandInProcess = await startStandInProcess(recordDir, 0, provider)
      const keyPrefix = `${prefix}-${channel}-${index}`
      const eventsBefore = (await admin.fetchTopicOffsets(names.events)).reduce(
        (s, p) => s + Number(p.high),
        0,
      )
      let pid: () => number | undefined
      let stop: () => Promise<void>
      let errors = () => 0
      if (who === 'baseline') {
        const baseline = spawnBaseline({
          BENCH_BROKERS: up.brokers,
          BENCH_REDIS_URL: up.redisUrl,
          BENCH_TOPIC: topic,
          BENCH_GROUP: `${keyPrefix}.naive`,
          BENCH_CHANNEL: channel,
          BENCH_TARGET: standIn.url,
          BENCH_PARTITIONS: String(partitions),
        })
        pid = () => baseline.child.pid
        stop = async () => {
          baseline.child.kill('SIGTERM')
          await baseline.exited
        }
      } else {
        const webhooks = Object.fromEntries(
          Array.from({ length: destinations }, (_, i) => [`d${i}`, `${standIn.url}/services/d${i}`]),
        )
        const replica = spawnService(`${channel}-1`, 'distributor', {
          KAFKA_BROKERS: up.brokers,
          REDIS_URL: up.redisUrl,
          TOPIC_PREFIX: prefix,
          KEY_PREFIX: keyPrefix,
          TOPIC_PARTITIONS: String(partitions),
          CHANNEL: channel,
          METRICS_PORT: '0',
          ...(channel === 'slack'
            ? { SLACK_WEBHOOKS: JSON.stringify(webhooks) }
            : { SMTP_URL: standIn.url, MAIL_FROM: 'bench@example.com' }),
          SHUTDOWN_TIMEOUT_MS: '3000',
          STATUS_TTL_SECONDS: '3600',
          LOG_LEVEL: 'info',
          ...(profileDir ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` } : {}),
        })
        pid = () => replica.child.pid
        stop = () => stopService(replica)
        errors = () => replica.lines.filter((l) => typeof l.level === 'number' && l.level >= 50).length
      }
      const cpu = new CpuMeter({
        replica: () => [pid()],
        'stand-in': () => [standIn.child.pid],
        kafka: () => [kafkaPid(stack.kafka)],
        redis: () => [redisPid(stack.redis)],
      })
      const tail = new ReceiptTail(standIn.recordFile)
      const received = new Set<string>()
      let duplicates = 0
      let first: number | undefined
      let last = 0
      let counted = 0
      const deadline = Date.now() + 180_000
      while (received.size < inTopic) {
        await sleep(first === undefined ? 20 : 100)
        const receipts = tail.read()
        if (receipts.length > 0 && first === undefined) {
          // The window opens at the first receipt: what arrived in this read is not counted.
          cpu.start()
          first = Date.now()
          counted = -receipts.length
        }
        for (const r of receipts) {
          if (received.has(r.text)) duplicates++
          else received.add(r.text)
        }
        counted += receipts.length
        if (receipts.length > 0) last = Date.now()
        if (Date.now() > deadline) break
      }
      cpu.stop()
      const seconds = (last - (first ?? last)) / 1000
      const shares = cpu.shares()
      const perMessage = (name: string) => ((shares[name] ?? 0) * seconds * 1e6) / Math.max(1, counted)
      const round: Round = {
        who,
        rate: counted / Math.max(0.001, seconds),
        cpuMicros: Object.fromEntries(
          ['replica', 'stand-in', 'kafka', 'redis'].map((n) => [n, perMessage(n)]),
        ),
        delivered: received.size,
        duplicates,
        valid: received.size === inTopic,
      }
      // Herald's own record of it: once its flushes ran, every offset recorded, every event written.
      if (who === 'herald') {
        const keys = redisKeys(keyPrefix)
        const group = `${keyPrefix}.distributor.${channel}`
        const until = Date.now() + 10_000
        for (;;) {
          const stored = await redis.hgetall(keys.offsets(group, topic))
          round.recorded = Object.entries(stored)
            .filter(([field]) => /^\d+$/.test(field))
            .reduce((s, [, v]) => s + Number(v), 0)
          if (round.recorded >= inTopic || Date.now() > until) break
          await sleep(250)
        }
        round.events =
          (await admin.fetchTopicOffsets(names.events)).reduce((s, p) => s + Number(p.high), 0) - eventsBefore
        round.valid &&= round.recorded === inTopic && round.events >= inTopic && errors() === 0
      }
      await stop()
      await standIn.stop()
      rmSync(recordDir, { recursive: true, force: true })
      await deleteKeys(redis, `${keyPrefix}:*`)
      rounds.push(round)
      console.log(
        `${channel} ${who}: ${round.rate.toFixed(0)}/s, replica CPU ${round.cpuMicros.replica?.toFixed(0)} µs per message, ` +
          `${round.delivered}/${inTopic} delivered${round.duplicates ? ` (+${round.duplicates} repeated)` : ''}` +
          `${round.recorded === undefined ? '' : `, ${round.recorded} offsets recorded, ${round.events} events`}${round.valid ? '' : ' INVALID'}`,
      )
    }
    await deleteKeys(redis, `naive:${prefix}-${channel}-*`)
    const baselines = rounds.filter((r) => r.who === 'baseline')
    const herald = rounds.find((r) => r.who === 'herald') as Round
    const base = baselines.reduce((s, r) => s + r.rate, 0) / baselines.length
    const baseCpu = baselines.reduce((s, r) => s + (r.cpuMicros.replica ?? 0), 0) / baselines.length
    const noisy = Math.max(...baselines.map((r) => r.rate)) > 2 * Math.min(...baselines.map((r) => r.rate))
    const valid = rounds.every((r) => r.valid)
    failed ||= !valid
    const µs = (r: Round, n: string) => (r.cpuMicros[n] ?? 0).toFixed(0)
    const table = formatTable(
      [
        'run',
        'deliveries/s',
        'vs baseline',
        'replica CPU µs/msg',
        'stand-in µs/msg',
        'Kafka µs/msg',
        'Redis µs/msg',
        'delivered',
        'run',
      ],
      rounds.map((r) => [
        r.who === 'herald' ? 'Herald distributor' : 'baseline (naive)',
        r.rate.toFixed(0),
        (r.rate / base).toFixed(2),
        µs(r, 'replica'),
        µs(r, 'stand-in'),
        µs(r, 'kafka'),
        µs(r, 'redis'),
        `${r.delivered}/${inTopic}${r.duplicates ? ` +${r.duplicates}` : ''}${r.recorded === undefined ? '' : `, offsets ${r.recorded}, events ${r.events}`}`,
        r.valid ? 'VALID' : 'INVALID',
      ]),
    )
    const cpuMicros = herald.cpuMicros.replica ?? 0
    const summary =
      `${channel}: Herald ${herald.rate.toFixed(0)}/s (${(herald.rate / base).toFixed(2)}× the baseline's ${base.toFixed(0)}/s), ` +
      `${cpuMicros.toFixed(0)} µs of replica CPU per message (${(cpuMicros / baseCpu).toFixed(2)}× the baseline's ${baseCpu.toFixed(0)}); ` +
      `goal ≥ ${goal.perSecond}/s: ${herald.rate >= goal.perSecond ? 'met' : 'NOT met'}, ≤ ${goal.cpuMicros} µs: ${cpuMicros <= goal.cpuMicros ? 'met' : 'NOT met'}` +
      `${noisy ? '; NOISY: the baseline moved by more than 2× between its rounds' : ''}${valid ? '' : '; INVALID'}`
    summaries.push(summary)
    sections.push(`**${channel}**`, '', table, '', summary, '')
    console.log(`\n${table}\n\n${summary}\n`)
  }
  appendReport('Distributor per replica', [
    `${records} records preloaded per channel, ${partitions} partitions, ${destinations} destinations, one replica (production main.ts, ` +
      `DELIVERY_CONCURRENCY=${concurrency}), instant stand-in in its own process, ${await machineFacts()}`,
    'Rate and CPU from the first receipt at the provider to the last; CPU = user + system time from /proc per process, divided by the messages delivered in that window. ' +
      'Baseline: bench/naive-distributor-process.ts (one message at a time per partition, a Redis SET and two log lines each, no statuses, events or offset protocol), first and last.',
    '',
    ...sections,
  ])
  await bench.close()
  if (failed) process.exitCode = 1
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
