// Rules benchmark (issue 16): BENCH_RULES threshold rules (default 10,000) at a BENCH_INTERVAL s interval
// (default 10) against the alerts-engine stand-in (dev/standins/alerts-engine.ts as a process of its own, no
// injected failures unless BENCH_ENGINE_FAIL_RATE), evaluated by the production rules service
// (rules/src/main.ts, 1 and 2 replicas: BENCH_REPLICAS) in processes of their own, each run on a fresh
// namespace (12 partitions) with the rules preloaded on the rules topic as the api writes them. 1% of the
// rules' values cross their threshold (their alarms are set once); the others pass.
// Each run waits for the group to settle (every partition owned, every replica ready, every rule loaded),
// one interval and 2 s more for the schedule to be steady, then measures for BENCH_SECONDS (default 60):
// - schedule lateness p50/p99 from the service's herald_rule_evaluation_lateness_seconds (the observations
//   in the window, all replicas; interpolated within the buckets as histogram_quantile does);
// - evaluations a second from herald_rule_evaluations_total, against rules ÷ interval;
// - CPU per evaluation from /proc for each replica and all of them, the engine stand-in, Kafka and Redis.
// Baseline, in the same run: a bare loop (bench/query-loop-process.ts, its own process) issuing the same
// GET /query calls with the same client, timeout, grid and concurrency, and nothing else; the evaluator's CPU
// per evaluation is reported as a ratio to the loop's per call.
// A run is INVALID when it evaluated less than 95% or more than 105% of rules × window ÷ interval, an
// evaluation failed or went unrecorded (with no injected failures), a rule's latest evaluated slot (its
// state in Redis) is more than an interval and a second before the window's end (it was passed over), the
// group rebalanced in the window, a replica logged an error, or a crossing rule's alarm is not set (or a
// passing one's is).
// Run: npm run bench:rules [-- --record]   (BENCH_RULES, BENCH_INTERVAL, BENCH_SECONDS, BENCH_REPLICAS to scale;
// RULES_CONCURRENCY, default the production default)
import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { createRedis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import type { RuleInput } from '@herald/shared/rules/schemas'
import { rulesTopicName, rulesTopicSpec } from '@herald/shared/rules/topics'
import { alarmTopicNames, alarmTopicSpecs, ensureTopics } from '@herald/shared/topics'
import { Kafka, logLevel, Partitioners } from 'kafkajs'
import { kafkaPid } from '../dev/lib/kafka.ts'
import { repoRoot } from '../dev/lib/process.ts'
import { redisPid } from '../dev/lib/redis.ts'
import { stackFromEnv, startStack, stopStack } from '../dev/lib/stack.ts'
import { CpuMeter, errorLines, metricsPortOf, spawnService, stopService } from './processes.ts'
import {
  type Histogram,
  histogramBound,
  histogramDelta,
  histogramOf,
  histogramQuantile,
  histogramTotal,
  metricSum,
  scrapeMetrics,
} from './prometheus.ts'
import { deleteKeys, readRecords } from './records.ts'
import { appendReport, formatTable, machineFacts } from './report.ts'

const ruleCount = Number(process.env.BENCH_RULES ?? 10_000)
const intervalSecs = Number(process.env.BENCH_INTERVAL ?? 10)
const seconds = Number(process.env.BENCH_SECONDS ?? 60)
const replicaCounts = (process.env.BENCH_REPLICAS ?? '1,2').split(',').map(Number)
const engineFailRate = Number(process.env.BENCH_ENGINE_FAIL_RATE ?? 0)
const partitions = 12
// The production default unless the environment says otherwise (the replicas read the same variable).
const concurrency = loadConfig(
  process.env.RULES_CONCURRENCY ? { RULES_CONCURRENCY: process.env.RULES_CONCURRENCY } : {},
  'rules',
).rules.concurrency
/** After the group settled: one interval for every rule's first evaluation, and a little more. */
const warmupMs = intervalSecs * 1000 + 2000
const namePrefix = 'bench-rule-'
const nameOf = (i: number) => `${namePrefix}${i}`
const crosses = (i: number) => i % 100 === 0
const expectedRate = ruleCount / intervalSecs
const logger = createLogger({ service: 'bench', level: 'silent' })

interface Run {
  label: string
  replicas: number
  evaluations: number
  rate: number
  lateness: { p50: number; p99: number; max?: number; bound50?: number; bound99?: number }
  /** µs of CPU per evaluation (per call for the bare loop) by process name. */
  cpu: Record<string, number>
  /** µs per evaluation of each replica, from its own CPU and evaluations. */
  perReplica: number[]
  /** Rules not evaluated in the window's last interval (starved by the others). */
  starved?: number
  /** Cores the machine's other processes used over the window (other benchmarks, tests, builds). */
  otherCores: number
  valid: boolean
  problem?: string
}

/** The alerts-engine stand-in as a process of its own; resolves with its URL once it listens. */
async function startEngine(
  valuesFile: string,
): Promise<{ child: ChildProcess; url: string; stop(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    [
      join(repoRoot, 'dev', 'standins', 'alerts-engine.ts'),
      '--port',
      '0',
      '--quiet',
      '--fail-rate',
      String(engineFailRate),
      '--values',
      valuesFile,
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const url = await new Promise<string>((resolve, reject) => {
    let text = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8')
      const match = /stand-in on (http:\/\/\S+)/.exec(text)
      if (match?.[1]) resolve(match[1])
    })
    void exited.then(() => reject(new Error('the alerts-engine stand-in exited before listening')))
  })
  return {
    child,
    url,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    },
  }
}

const µs = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(0))

async function main(): Promise<void> {
  const stack = stackFromEnv()
  const up = await startStack(stack, (l) => console.log(`[infra] ${l}`), { adoptRunning: true })
  const kafka = new Kafka({ clientId: 'bench', brokers: [up.brokers], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const redis = createRedis(up.redisUrl)
  await redis.connect()
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  await producer.connect()
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-rules-'))
  const valuesFile = join(dir, 'values.json')
  writeFileSync(
    valuesFile,
    JSON.stringify(
      Object.fromEntries(Array.from({ length: ruleCount }, (_, i) => [nameOf(i), crosses(i) ? 0.9 : 0.1])),
    ),
  )
  const engine = await startEngine(valuesFile)
  const prefixes: string[] = []
  const runs: Run[] = []

  /** The bare loop: the same calls, timed over the same window length. */
  async function measureBare(): Promise<Run> {
    const args = [engine.url, namePrefix, ruleCount, intervalSecs * 1000, concurrency, 2000, seconds].map(
      String,
    )
    const child = spawn(process.execPath, [join(repoRoot, 'bench', 'query-loop-process.ts'), ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const lines: string[] = []
    let partial = ''
    const firstLine = new Promise<void>((resolve) =>
      child.stdout?.on('data', (chunk: Buffer) => {
        const text = partial + chunk.toString('utf8')
        const split = text.split('\n')
        partial = split.pop() ?? ''
        lines.push(...split.filter((l) => l.length > 0))
        if (lines.length > 0) resolve()
      }),
    )
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    await firstLine
    const { startedAt } = JSON.parse(lines[0] ?? '{}') as { startedAt: number }
    const cpu = new CpuMeter({
      bare: () => [child.pid],
      engine: () => [engine.child.pid],
      kafka: () => [kafkaPid(stack.kafka)],
      redis: () => [redisPid(stack.redis)],
    })
    await sleep(startedAt + 2000 - Date.now())
    cpu.start()
    const t0 = performance.now()
    await sleep(seconds * 1000)
    cpu.stop()
    const wall = (performance.now() - t0) / 1000
    const code = await exited
    if (code !== 0) throw new Error(`the bare loop exited with ${code}`)
    const result = JSON.parse(lines.at(-1) ?? '{}') as {
      calls: number
      failed: number
      lateness: { p50: number; p99: number; max: number }
    }
    const shares = cpu.shares()
    const per = (name: string) => ((shares[name] ?? Number.NaN) * wall * 1e6) / result.calls
    const problem = engineFailRate === 0 && result.failed > 0 ? `${result.failed} calls failed` : undefined
    const run: Run = {
      label: 'bare GET /query loop',
      replicas: 1,
      evaluations: result.calls,
      rate: result.calls / seconds,
      lateness: result.lateness,
      cpu: { process: per('bare'), engine: per('engine'), kafka: per('kafka'), redis: per('redis') },
      perReplica: [],
      otherCores: shares.other ?? Number.NaN,
      valid: problem === undefined,
      ...(problem ? { problem } : {}),
    }
    console.log(
      `bare loop: ${run.rate.toFixed(0)} calls/s, lateness p50 ${run.lateness.p50} ms p99 ${run.lateness.p99} ms, ` +
        `${µs(run.cpu.process)} µs CPU per call`,
    )
    return run
  }

  async function measureRules(replicas: number): Promise<Run> {
    const prefix = `bench${randomUUID().slice(0, 6)}-rules${replicas}`
    prefixes.push(prefix)
    const rulesTopic = rulesTopicName(prefix)
    const alarmTopics = alarmTopicNames(prefix)
    await ensureTopics(admin, {
      specs: [rulesTopicSpec(rulesTopic, 1), ...alarmTopicSpecs(alarmTopics, 1)],
      partitions,
      replication: 1,
      brokers: [up.brokers],
      logger,
    })
    const rules = Array.from(
      { length: ruleCount },
      (_, i): RuleInput => ({
        name: nameOf(i),
        source: 'alerts-engine',
        query: nameOf(i),
        intervalSecs,
        repeatIntervalSecs: 300,
        warn: { value: 0.5, message: `${nameOf(i)} above 0.5` },
      }),
    )
    for (let i = 0; i < rules.length; i += 1000)
      await producer.send({
        topic: rulesTopic,
        acks: -1,
        messages: rules.slice(i, i + 1000).map((r) => ({ key: r.name, value: JSON.stringify(r) })),
      })

    const env = {
      KAFKA_BROKERS: up.brokers,
      REDIS_URL: up.redisUrl,
      KEY_PREFIX: prefix,
      TOPIC_PREFIX: prefix,
      TOPIC_PARTITIONS: String(partitions),
      METRICS_PORT: '0',
      ALERTS_ENGINE_URL: engine.url,
      RULES_CONCURRENCY: String(concurrency),
      SHUTDOWN_TIMEOUT_MS: '10000',
      LOG_LEVEL: 'info',
    }
    const services = Array.from({ length: replicas }, (_, r) =>
      spawnService(`rules-${replicas}-${r + 1}`, 'rules', env),
    )
    try {
      const ports = await Promise.all(services.map((s) => metricsPortOf(s)))
      const scrapeAll = () => Promise.all(ports.map((p) => scrapeMetrics(p)))
      const readyAll = async () =>
        (
          await Promise.all(
            ports.map((p) =>
              fetch(`http://127.0.0.1:${p}/readyz`, { signal: AbortSignal.timeout(2000) })
                .then((r) => r.ok)
                .catch(() => false),
            ),
          )
        ).every(Boolean)
      const settleBy = Date.now() + 120_000
      for (;;) {
        const texts = await scrapeAll()
        const owned = texts.map((t) => metricSum(t, 'herald_rule_partitions_owned'))
        const loadedRules = texts.reduce((s, t) => s + metricSum(t, 'herald_rules_owned'), 0)
        const sum = owned.reduce((a, b) => a + b, 0)
        if (
          sum === partitions &&
          owned.every((n) => n > 0) &&
          loadedRules === ruleCount &&
          (await readyAll())
        )
          break
        if (Date.now() > settleBy)
          throw new Error(
            `${replicas} replicas did not settle in 120 s (partitions owned ${owned.join('+')}, rules ${loadedRules})`,
          )
        await sleep(500)
      }
      await sleep(warmupMs)
      const joins = () =>
        services.map((s) => s.lines.filter((l) => l.msg?.toString().startsWith('joined the group')).length)
      const joinsBefore = joins().join(',')
      const cpu = new CpuMeter({
        ...Object.fromEntries(services.map((s, r) => [`replica ${r + 1}`, () => [s.child.pid]])),
        engine: () => [engine.child.pid],
        kafka: () => [kafkaPid(stack.kafka)],
        redis: () => [redisPid(stack.redis)],
      })
      const before = await scrapeAll()
      cpu.start()
      const t0 = performance.now()
      await sleep(seconds * 1000)
      const after = await scrapeAll()
      cpu.stop()
      const wall = (performance.now() - t0) / 1000
      const windowEnd = Date.now()
      const evaluationsOf = (text: string, result?: string) =>
        metricSum(text, 'herald_rule_evaluations_total', result ? { result } : {})
      const perReplicaEvaluations = after.map((t, r) => evaluationsOf(t) - evaluationsOf(before[r] ?? ''))
      const evaluations = perReplicaEvaluations.reduce((a, b) => a + b, 0)
      const delta = (result: string) =>
        after.reduce((s, t, r) => s + evaluationsOf(t, result) - evaluationsOf(before[r] ?? '', result), 0)
      const lateness: Histogram = histogramTotal(
        after.map((t, r) =>
          histogramDelta(
            histogramOf(before[r] ?? '', 'herald_rule_evaluation_lateness_seconds'),
            histogramOf(t, 'herald_rule_evaluation_lateness_seconds'),
          ),
        ),
      )
      const shares = cpu.shares()
      shares.replicas = services.reduce((sum, _, r) => sum + (shares[`replica ${r + 1}`] ?? Number.NaN), 0)
      const per = (name: string, count: number) => ((shares[name] ?? Number.NaN) * wall * 1e6) / count
      // Each rule's last evaluation as kept in Redis: one not evaluated in the window's last interval (and
      // a second) was passed over for that long.
      const keys = redisKeys(prefix)
      const lastEvaluated = new Map<string, number>()
      for (let p = 0; p < partitions; p++)
        for (const [name, json] of Object.entries(await redis.hgetall(keys.ruleStates(rulesTopic, p))))
          lastEvaluated.set(name, (JSON.parse(json) as { evaluatedAt?: number }).evaluatedAt ?? 0)
      const starved = Array.from({ length: ruleCount }, (_, i) => nameOf(i)).filter(
        (name) => (lastEvaluated.get(name) ?? 0) < windowEnd - intervalSecs * 1000 - 1000,
      ).length
      const problems: string[] = []
      const expected = (ruleCount * seconds) / intervalSecs
      if (evaluations < 0.95 * expected || evaluations > 1.05 * expected)
        problems.push(`${evaluations} evaluations, ${expected.toFixed(0)} expected`)
      if (engineFailRate === 0 && delta('failed') > 0) problems.push(`${delta('failed')} evaluations failed`)
      if (delta('unrecorded') > 0) problems.push(`${delta('unrecorded')} evaluations unrecorded`)
      if (starved > 0) problems.push(`${starved} rules not evaluated in the window's last interval`)
      if (joins().join(',') !== joinsBefore) problems.push('the group rebalanced in the window')
      for (const s of services) await stopService(s)
      for (const s of services) {
        const errors = errorLines(s)
        if (errors.length > 0)
          problems.push(`${s.name} logged ${errors.length} errors (first: ${errors[0]?.msg})`)
      }
      // Every crossing rule's alarm set, no passing rule's.
      const activations = new Map<string, boolean>()
      for (const r of await readRecords(kafka, admin, [alarmTopics.activations]))
        activations.set(r.key, r.value !== null)
      const wrong = Array.from({ length: ruleCount }, (_, i) => i).filter(
        (i) => (activations.get(nameOf(i)) ?? false) !== crosses(i),
      ).length
      if (wrong > 0) problems.push(`${wrong} rules' alarms not as their values say`)
      const problem = problems.length > 0 ? problems.join('; ') : undefined
      const run: Run = {
        label: 'rules service (production main.ts)',
        replicas,
        evaluations,
        rate: evaluations / wall,
        lateness: {
          p50: histogramQuantile(lateness, 0.5) * 1000,
          p99: histogramQuantile(lateness, 0.99) * 1000,
          bound50: histogramBound(lateness, 0.5) * 1000,
          bound99: histogramBound(lateness, 0.99) * 1000,
        },
        cpu: {
          process: per('replicas', evaluations),
          engine: per('engine', evaluations),
          kafka: per('kafka', evaluations),
          redis: per('redis', evaluations),
        },
        perReplica: perReplicaEvaluations.map((n, r) => per(`replica ${r + 1}`, n)),
        starved,
        otherCores: shares.other ?? Number.NaN,
        valid: problem === undefined,
        ...(problem ? { problem } : {}),
      }
      console.log(
        `rules × ${replicas}: ${run.rate.toFixed(0)} evaluations/s, lateness p50 ${run.lateness.p50.toFixed(0)} ms ` +
          `p99 ${run.lateness.p99.toFixed(0)} ms, ${µs(run.cpu.process)} µs CPU per evaluation` +
          `${problem ? ` INVALID: ${problem}` : ''}`,
      )
      return run
    } finally {
      for (const s of services) await stopService(s)
      await deleteKeys(redis, `${prefix}:*`)
    }
  }

  try {
    runs.push(await measureBare())
    for (const replicas of replicaCounts) runs.push(await measureRules(replicas))
  } finally {
    await engine.stop()
    rmSync(dir, { recursive: true, force: true })
    for (const prefix of prefixes) {
      const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`))
      if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => {})
    }
    await producer.disconnect()
    await admin.disconnect()
    redis.disconnect()
    if (up.startedKafka || up.startedRedis)
      await stopStack(stack, { kafka: up.startedKafka, redis: up.startedRedis })
  }

  const bare = runs.find((r) => r.label.startsWith('bare'))
  const lateness = (r: Run) =>
    r.lateness.bound50 === undefined
      ? `${r.lateness.p50} / ${r.lateness.p99} (max ${r.lateness.max})`
      : `${r.lateness.p50.toFixed(0)} / ${r.lateness.p99.toFixed(0)} (buckets ≤ ${r.lateness.bound50} / ≤ ${r.lateness.bound99})`
  const rows = runs.map((r) => [
    r.label,
    r.label.startsWith('bare') ? '' : String(r.replicas),
    `${r.rate.toFixed(0)} (${expectedRate.toFixed(0)})`,
    lateness(r),
    µs(r.cpu.process),
    r.perReplica.map(µs).join(' / '),
    bare && !r.label.startsWith('bare') ? ((r.cpu.process ?? 0) / (bare.cpu.process ?? 1)).toFixed(1) : '',
    µs(r.cpu.engine),
    µs(r.cpu.kafka),
    µs(r.cpu.redis),
    r.starved === undefined ? '' : String(r.starved),
    r.otherCores.toFixed(2),
    r.valid ? 'VALID' : `INVALID (${r.problem})`,
  ])
  const table = formatTable(
    [
      'pipeline',
      'replicas',
      'evaluations/s (rules ÷ interval)',
      'lateness p50 / p99 ms',
      'CPU µs / evaluation (process, all replicas)',
      'CPU µs / evaluation (each replica)',
      'vs bare loop CPU per call',
      'CPU µs / evaluation (engine stand-in)',
      'CPU µs / evaluation (kafka)',
      'CPU µs / evaluation (redis)',
      "rules not evaluated in the window's last interval",
      'cores used by other processes',
      'run',
    ],
    rows,
  )
  console.log(`\n${table}`)
  appendReport('Rules', [
    `${ruleCount} rules at a ${intervalSecs} s interval (1% crossing their threshold), ${partitions} partitions, ` +
      `the alerts-engine stand-in in a process of its own (fail rate ${engineFailRate}), concurrency ${concurrency} per process; ` +
      `${seconds} s windows from one interval after the group settled; ${await machineFacts(['rules', 'alarms', 'shared'])}`,
    "Lateness of the service from its herald_rule_evaluation_lateness_seconds (the window's observations, interpolated as " +
      "histogram_quantile does, with the buckets they fall in); the bare loop's exact, from each call's grid point to its start. " +
      'The bare loop issues the same GET /query calls with the same client, timeout, grid and concurrency and does nothing ' +
      'else (no Kafka, Redis, state or metrics). CPU from /proc over the window. A rule not evaluated in the ' +
      "window's last interval is one whose latest evaluated slot (its state in Redis) is older than that.",
    '',
    table,
  ])
  if (runs.some((r) => !r.valid)) process.exitCode = 1
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
