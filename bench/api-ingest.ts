// API ingest benchmark: accepted notifications per second and latency at fixed concurrency, against baselines
// measured in the same run on the same machine: a bare node:http server and a bare express app answering 202
// with no work (the Node and framework ceilings), and a bare kafkajs producer sending the same records with
// the same settings (the Kafka-client ceiling). Every figure is reported as a ratio to its baseline, with the
// CPU each server process used per accepted request (user + system from /proc; the bare producer's is this
// process's own), and the api's CPU per request against bare express's (issue 17, goal 2: ≤ 1.2×).
// Run: npm run bench:api   (BENCH_SECONDS per point, default 5; BENCH_CONNECTIONS, default 1,16,64,256)
import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'
import { Kafka, logLevel, Partitioners } from 'kafkajs'
import { repoRoot } from '../dev/lib/process.ts'
import { stackFromEnv, startStack, stopStack } from '../dev/lib/stack.ts'
import { processCpuMs } from './processes.ts'
import { appendReport, formatTable, machineFacts, percentile } from './report.ts'

const seconds = Number(process.env.BENCH_SECONDS ?? 5)
const connectionLevels = (process.env.BENCH_CONNECTIONS ?? '1,16,64,256').split(',').map(Number)
const prefix = `bench${randomUUID().slice(0, 6)}`
const children: ChildProcess[] = []

function start(name: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  child.on('exit', (code) => {
    if (code && code !== 0) console.error(`${name} exited with ${code}`)
  })
  children.push(child)
  return child
}

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(0),
    })
      .then((r) => r.status === 202)
      .catch(() => false)
    if (ok) return
    await sleep(100)
  }
  throw new Error(`${url} never answered 202`)
}

const body = (n: number) =>
  JSON.stringify({ channel: 'email', to: `user${n % 1000}@example.com`, message: `bench ${n}` })

interface Point {
  target: string
  connections: number
  rps: number
  p50: number
  p99: number
  p999: number
  non2xx: number
  /** Answers 202 (counted one by one). */
  accepted: number
  /** Requests built and not answered when the load stopped: at most one per connection. */
  unanswered: number
  /** Answers that were neither 202 nor a client error: the api's "outcome unknown" (503). */
  unknown: number
  /** CPU time of the serving process per accepted request, µs (undefined when /proc is unreadable). */
  cpuMicros?: number
}

/** CPU per accepted request over a measured load, µs. */
const perAccepted = (cpuMs: number | undefined, accepted: number) =>
  cpuMs === undefined || accepted === 0 ? undefined : (cpuMs * 1000) / accepted

async function load(target: string, url: string, connections: number, pid?: number): Promise<Point> {
  let n = 0
  let built = 0
  let answered = 0
  let accepted = 0
  let unknown = 0
  const instance = autocannon({
    url,
    connections,
    duration: seconds,
    pipelining: 1,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        setupRequest: (req) => {
          built++
          return { ...req, body: body(n++) }
        },
        onResponse: (status) => {
          answered++
          if (status === 202) accepted++
          else if (status >= 500) unknown++
        },
      },
    ],
  })
  const cpuBefore = processCpuMs(pid)
  const result = await instance
  const cpuAfter = processCpuMs(pid)
  const cpuMs = cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore
  return {
    cpuMicros: perAccepted(cpuMs, accepted),
    target,
    connections,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    p999: result.latency.p99_9,
    non2xx: result.non2xx + result.errors + result.timeouts,
    accepted,
    unanswered: Math.max(0, built - answered),
    unknown,
  }
}

/** The bare producer: `connections` loops each sending one record at a time with acks=all. */
async function bareProducer(brokers: string, topic: string, connections: number): Promise<Point> {
  const kafka = new Kafka({ clientId: 'bench', brokers: [brokers], logLevel: logLevel.NOTHING })
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  await producer.connect()
  const latencies: number[] = []
  const cpuBefore = process.cpuUsage()
  const end = Date.now() + seconds * 1000
  let n = 0
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (Date.now() < end) {
        const i = n++
        const started = performance.now()
        await producer.send({
          topic,
          acks: -1,
          messages: [{ key: `user${i % 1000}@example.com`, value: body(i) }],
        })
        latencies.push(performance.now() - started)
      }
    }),
  )
  const cpu = process.cpuUsage(cpuBefore)
  await producer.disconnect()
  latencies.sort((a, b) => a - b)
  return {
    cpuMicros: perAccepted((cpu.user + cpu.system) / 1000, latencies.length),
    target: 'bare kafkajs producer',
    connections,
    rps: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    p999: percentile(latencies, 99.9),
    non2xx: 0,
    accepted: latencies.length,
    unanswered: 0,
    unknown: 0,
  }
}

async function main(): Promise<void> {
  const stack = stackFromEnv()
  const up = await startStack(stack, (l) => console.log(`[infra] ${l}`), { adoptRunning: true })
  const ports = { http: 18081, express: 18082, herald: 18083 }
  const pids = {
    http: start('http', ['bench/servers.ts', 'http', String(ports.http)]).pid,
    express: start('express', ['bench/servers.ts', 'express', String(ports.express)]).pid,
    herald: 0 as number | undefined,
  }
  pids.herald = start('herald', ['api/src/main.ts'], {
    PORT: String(ports.herald),
    KAFKA_BROKERS: up.brokers,
    REDIS_URL: up.redisUrl,
    TOPIC_PREFIX: prefix,
    KEY_PREFIX: prefix,
    LOG_LEVEL: 'warn',
    DEFAULT_EMAIL_TO: 'bench@example.com',
  }).pid
  const url = (port: number) => `http://127.0.0.1:${port}/api/v1/notification`
  await Promise.all(Object.values(ports).map((p) => waitReady(url(p))))
  const kafka = new Kafka({ clientId: 'bench-admin', brokers: [up.brokers], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const topic = `${prefix}.email`
  const total = async () => (await admin.fetchTopicOffsets(topic)).reduce((s, p) => s + Number(p.high), 0)

  /**
   * The topic's size once it stopped growing (unchanged over 1 s, bounded): requests cut off at a deadline
   * may still be written after it.
   */
  const settledTotal = async () => {
    let last = await total()
    for (let steady = 0, tries = 0; steady < 5 && tries < 100; tries++) {
      await sleep(200)
      const now = await total()
      steady = now === last ? steady + 1 : 0
      last = now
    }
    return last
  }
  // A fresh topic: what it holds now came from the readiness probes (measured, whatever their number).
  const warmUps = await settledTotal()

  /** One check per measured load: what the topic grew by against the answers counted one by one. */
  interface Check {
    what: string
    grown: number
    accepted: number
    /** Written records that may exceed the 202s: unanswered at the deadline, and "outcome unknown" answers. */
    mayExceed: string
    upper: number
    valid: boolean
  }
  const checks: Check[] = []
  const check = (what: string, grown: number, accepted: number, unanswered: number, unknown: number) => {
    const upper = accepted + unanswered + unknown
    const valid = grown >= accepted && grown <= upper
    checks.push({
      what,
      grown,
      accepted,
      mayExceed: `${unanswered} unanswered at the deadline + ${unknown} answered 503`,
      upper,
      valid,
    })
  }

  const points: Point[] = []
  /** Each baseline is measured in two rounds, before and after Herald's point; its figure is their mean. */
  const rounds = new Map<string, number[]>()
  const baselines = async (connections: number) => {
    const measured = [
      await load('bare node:http', url(ports.http), connections, pids.http),
      await load('bare express', url(ports.express), connections, pids.express),
      await bareProducer(up.brokers, topic, connections),
    ]
    for (const p of measured) {
      const key = `${p.target}@${connections}`
      rounds.set(key, [...(rounds.get(key) ?? []), p.rps])
    }
    return measured
  }
  for (const connections of connectionLevels) {
    const first = await baselines(connections)
    const before = await settledTotal()
    const herald = await load('herald api', url(ports.herald), connections, pids.herald)
    check(
      `herald api, ${connections} connections`,
      (await settledTotal()) - before,
      herald.accepted,
      herald.unanswered,
      herald.unknown,
    )
    const second = await baselines(connections)
    for (const [i, p] of first.entries()) {
      const again = second[i]
      const cpus = [p.cpuMicros, again?.cpuMicros].filter((c): c is number => c !== undefined)
      const cpuMicros = cpus.length > 0 ? cpus.reduce((a, c) => a + c, 0) / cpus.length : undefined
      points.push(
        again ? { ...p, rps: (p.rps + again.rps) / 2, ...(cpuMicros === undefined ? {} : { cpuMicros }) } : p,
      )
      if (i === 1) points.push(herald)
    }
    console.log(`connections ${connections}: done`)
  }
  // A baseline that moved by more than 2× between its rounds: the machine was busy with something else.
  const noisy = [...rounds]
    .filter(([, r]) => r.length > 1 && Math.max(...r) > 2 * Math.min(...r))
    .map(
      ([key, r]) =>
        `${key.replace('@', ' at ')} connections: ${r.map((v) => v.toFixed(0)).join(' then ')} req/s`,
    )

  // Batch endpoint: 100 notifications per request; only the items answered 202 count.
  const batchUrl = `http://127.0.0.1:${ports.herald}/api/v1/notifications`
  let b = 0
  let batchBuilt = 0
  let batchAnswered = 0
  let batchAccepted = 0
  let batchUnknown = 0
  const batchBefore = await settledTotal()
  const batch = await autocannon({
    url: batchUrl,
    connections: 16,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        setupRequest: (req) => {
          batchBuilt++
          return { ...req, body: `[${Array.from({ length: 100 }, () => body(b++)).join(',')}]` }
        },
        onResponse: (status, text) => {
          batchAnswered++
          if (status !== 207) {
            if (status >= 500) batchUnknown += 100
            return
          }
          for (const item of (JSON.parse(text) as { results: Array<{ status: number }> }).results) {
            if (item.status === 202) batchAccepted++
            else if (item.status >= 500) batchUnknown++
          }
        },
      },
    ],
  })
  check(
    'batch endpoint, 16 connections',
    (await settledTotal()) - batchBefore,
    batchAccepted,
    Math.max(0, batchBuilt - batchAnswered) * 100,
    batchUnknown,
  )
  const batchRecordsPerSecond = batchAccepted / batch.duration
  const valid = checks.every((c) => c.valid)

  const rows = points.map((p) => {
    const same = (target: string) =>
      points.find((q) => q.target === target && q.connections === p.connections)
    const ratio = (base?: Point) => (base && p.target === 'herald api' ? (p.rps / base.rps).toFixed(2) : '')
    const cpuRatio = (q: Point, base?: Point) =>
      q.target === 'herald api' && q.cpuMicros !== undefined && base?.cpuMicros
        ? (q.cpuMicros / base.cpuMicros).toFixed(2)
        : ''
    const r = rounds.get(`${p.target}@${p.connections}`)
    return [
      p.target,
      String(p.connections),
      p.rps.toFixed(0),
      r ? r.map((v) => v.toFixed(0)).join(' / ') : '',
      p.p50.toFixed(1),
      p.p99.toFixed(1),
      p.p999.toFixed(1),
      String(p.non2xx),
      ratio(same('bare express')),
      ratio(same('bare node:http')),
      ratio(same('bare kafkajs producer')),
      p.cpuMicros === undefined ? '' : p.cpuMicros.toFixed(0),
      cpuRatio(p, same('bare express')),
    ]
  })
  const table = formatTable(
    [
      'target',
      'conns',
      'req/s',
      'rounds',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'errors',
      'vs express',
      'vs node:http',
      'vs producer',
      'CPU µs/req',
      'CPU vs express',
    ],
    rows,
  )
  const bestProducer = Math.max(
    ...points.filter((p) => p.target === 'bare kafkajs producer').map((p) => p.rps),
  )
  const at64 = (target: string) => points.find((p) => p.target === target && p.connections === 64)
  const herald64 = at64('herald api')?.cpuMicros
  const express64 = at64('bare express')?.cpuMicros
  const summary = [
    herald64 !== undefined && express64 !== undefined
      ? `Goal (issue 17, goal 2): CPU per accepted request at 64 connections ≤ 1.2× bare express: ${herald64.toFixed(0)} against ${express64.toFixed(0)} µs = ` +
        `${(herald64 / express64).toFixed(2)}×, ${herald64 / express64 <= 1.2 ? 'met' : 'NOT met'}.`
      : 'Goal (issue 17, goal 2): not measured (no 64-connection point, or /proc unreadable).',
    `Batch endpoint (100 per request, 16 connections): ${batchRecordsPerSecond.toFixed(0)} accepted records/s = ` +
      `${(batchRecordsPerSecond / bestProducer).toFixed(2)}× the best bare-producer rate (${bestProducer.toFixed(0)}/s).`,
    `Warm-up: the readiness probes wrote ${warmUps} records before the first point (measured, not counted in any point).`,
    ...checks.map(
      (c) =>
        `Validity, ${c.what}: topic grew by ${c.grown}; 202s ${c.accepted}, at most ${c.upper} (${c.mayExceed}): ` +
        `${c.valid ? 'VALID' : 'INVALID (records and 202s differ)'}.`,
    ),
    noisy.length > 0
      ? `NOISY: a baseline moved by more than 2× between its rounds (${noisy.join('; ')}); the ratios of this run are not comparable.`
      : 'Baselines steady: no baseline moved by more than 2× between its two rounds.',
  ]
  console.log(`\n${table}\n\n${summary.join('\n')}`)
  appendReport('API ingest', [
    `${seconds} s per point, autocannon on loopback, acks=all, ${await machineFacts()}`,
    '',
    table,
    '',
    ...summary,
  ])
  await admin
    .deleteTopics({ topics: (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`)) })
    .catch(() => {})
  await admin.disconnect()
  for (const c of children) c.kill('SIGTERM')
  if (up.startedKafka || up.startedRedis)
    await stopStack(stack, { kafka: up.startedKafka, redis: up.startedRedis })
  if (!valid) process.exitCode = 1
}

main().catch((error: unknown) => {
  console.error(error)
  for (const c of children) c.kill('SIGKILL')
  process.exit(1)
})
