// API across cores: accepted notifications per second at 64 connections with API_WORKERS=1 and with
// API_WORKERS=2, measured in alternating rounds in the same run, reported as the ratio of the two (issue 17
// goal: 2 workers ≥ 1.4× one), with the CPU per accepted request of each (primary and workers, from /proc).
// Each round also reads the whole machine's CPU (/proc/stat) and this process's own (the load generator):
// every accepted request costs CPU in the api, in Kafka, in Redis and in the load generator, all on the same
// cores, so the most any number of workers can reach here is the cores over the cores busy with one worker.
// Run: npm run bench:api-workers   (BENCH_SECONDS per round, default 5; BENCH_ROUNDS, default 2;
// BENCH_CONNECTIONS, default 64)
import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'
import { Kafka, logLevel } from 'kafkajs'
import { repoRoot } from '../dev/lib/process.ts'
import { stackFromEnv, startStack, stopStack } from '../dev/lib/stack.ts'
import { machineCpuMs, processCpuMs } from './processes.ts'
import { appendReport, formatTable, machineFacts } from './report.ts'

const seconds = Number(process.env.BENCH_SECONDS ?? 5)
const rounds = Number(process.env.BENCH_ROUNDS ?? 2)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 64)
const prefix = `bench${randomUUID().slice(0, 6)}`
const children: ChildProcess[] = []

const body = (n: number) =>
  JSON.stringify({ channel: 'email', to: `user${n % 1000}@example.com`, message: `bench ${n}` })

interface Target {
  workers: number
  port: number
  child: ChildProcess
  /** The primary and its workers (or the single process). */
  pids: number[]
}

async function startApi(workers: number, port: number, brokers: string, redisUrl: string): Promise<Target> {
  const child = spawn(process.execPath, ['api/src/main.ts'], {
    cwd: repoRoot,
    env: {
      ...process.env,
      PORT: String(port),
      API_WORKERS: String(workers),
      KAFKA_BROKERS: brokers,
      REDIS_URL: redisUrl,
      TOPIC_PREFIX: prefix,
      KEY_PREFIX: prefix,
      LOG_LEVEL: 'warn',
      DEFAULT_EMAIL_TO: 'bench@example.com',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  children.push(child)
  // Ready: /readyz 200 (with two workers, both listening and ready) and a notification accepted.
  for (let i = 0; ; i++) {
    if (i > 600) throw new Error(`the api with ${workers} worker(s) never became ready`)
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`)
      .then(async (r) =>
        r.status === 200 ? ((await r.json()) as { workers?: Array<{ pid: number }> }) : undefined,
      )
      .catch(() => undefined)
    const accepted =
      ready &&
      (await fetch(`http://127.0.0.1:${port}/api/v1/notification`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: body(0),
      })
        .then((r) => r.status === 202)
        .catch(() => false))
    if (ready && accepted) {
      const pids = [child.pid as number, ...(ready.workers ?? []).map((w) => w.pid)]
      return { workers, port, child, pids }
    }
    await sleep(100)
  }
}

interface Round {
  workers: number
  /** Accepted (202) per second. */
  rps: number
  p99: number
  errors: number
  /** CPU of the primary and the workers per accepted request, µs. */
  cpuPerRequestUs: number | undefined
  /** The primary's part of that CPU (0 without a cluster), µs per accepted request. */
  primaryPerRequestUs: number | undefined
  /** Cores busy on the whole machine during the round (api, Kafka, Redis, load generator, the rest). */
  machineCores: number | undefined
  /** Cores this process (autocannon, the load generator) used during the round. */
  loadCores: number
}

async function load(target: Target): Promise<Round> {
  let n = 0
  let accepted = 0
  const cpu = () =>
    target.pids.reduce<number | undefined>((s, pid) => {
      const ms = processCpuMs(pid)
      return s === undefined || ms === undefined ? undefined : s + ms
    }, 0)
  const cpuBefore = cpu()
  const primaryBefore = processCpuMs(target.pids[0])
  const machineBefore = machineCpuMs()
  const loadBefore = process.cpuUsage()
  const startedAt = performance.now()
  const result = await autocannon({
    url: `http://127.0.0.1:${target.port}/api/v1/notification`,
    connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        setupRequest: (req) => ({ ...req, body: body(n++) }),
        onResponse: (status) => {
          if (status === 202) accepted++
        },
      },
    ],
  })
  const cpuAfter = cpu()
  const primaryAfter = processCpuMs(target.pids[0])
  const machineAfter = machineCpuMs()
  const load = process.cpuUsage(loadBefore)
  const wallMs = performance.now() - startedAt
  const used = cpuBefore !== undefined && cpuAfter !== undefined ? cpuAfter - cpuBefore : undefined
  return {
    workers: target.workers,
    rps: accepted / seconds,
    p99: result.latency.p99,
    errors: result.non2xx + result.errors + result.timeouts,
    cpuPerRequestUs: used !== undefined && accepted > 0 ? (used * 1000) / accepted : undefined,
    primaryPerRequestUs:
      target.workers === 1
        ? 0
        : primaryBefore !== undefined && primaryAfter !== undefined && accepted > 0
          ? ((primaryAfter - primaryBefore) * 1000) / accepted
          : undefined,
    machineCores:
      machineBefore && machineAfter ? (machineAfter.busy - machineBefore.busy) / wallMs : undefined,
    loadCores: (load.user + load.system) / 1000 / wallMs,
  }
}

async function main(): Promise<void> {
  const stack = stackFromEnv()
  const up = await startStack(stack, (l) => console.log(`[infra] ${l}`), { adoptRunning: true })
  // One at a time: the first creates the topics the second finds.
  const one = await startApi(1, 18091, up.brokers, up.redisUrl)
  const two = await startApi(2, 18092, up.brokers, up.redisUrl)
  // Warm both (JIT, producer connections) before measuring.
  for (const t of [one, two])
    await autocannon({ url: `http://127.0.0.1:${t.port}/healthz`, connections, duration: 1 })
  const measured: Round[] = []
  for (let r = 0; r < rounds; r++) {
    for (const t of [one, two]) {
      const round = await load(t)
      measured.push(round)
      console.log(`round ${r + 1}, ${t.workers} worker(s): ${round.rps.toFixed(0)} accepted/s`)
    }
  }
  const mean = (workers: number, pick: (r: Round) => number | undefined) => {
    const values = measured
      .filter((r) => r.workers === workers)
      .map(pick)
      .filter((v) => v !== undefined)
    return values.length === 0 ? undefined : values.reduce((s, v) => s + v, 0) / values.length
  }
  const rows = [1, 2].map((workers) => {
    const mine = measured.filter((r) => r.workers === workers)
    const cpu = mean(workers, (r) => r.cpuPerRequestUs)
    const primary = mean(workers, (r) => r.primaryPerRequestUs)
    return [
      String(workers),
      String(connections),
      (mean(workers, (r) => r.rps) ?? 0).toFixed(0),
      mine.map((r) => r.rps.toFixed(0)).join(' / '),
      (mean(workers, (r) => r.p99) ?? 0).toFixed(1),
      String(mine.reduce((s, r) => s + r.errors, 0)),
      cpu === undefined ? 'n/a' : cpu.toFixed(0),
      workers === 1 ? '' : primary === undefined ? 'n/a' : primary.toFixed(0),
      mean(workers, (r) => r.machineCores)?.toFixed(2) ?? 'n/a',
      (mean(workers, (r) => r.loadCores) ?? 0).toFixed(2),
    ]
  })
  const ratio = (mean(2, (r) => r.rps) ?? 0) / (mean(1, (r) => r.rps) ?? 1)
  const table = formatTable(
    [
      'API_WORKERS',
      'conns',
      'accepted/s',
      'rounds',
      'p99 ms',
      'errors',
      'CPU µs per accepted',
      'of which primary',
      'machine cores busy',
      'load generator cores',
    ],
    rows,
  )
  const cores = availableParallelism()
  const busyAtOne = mean(1, (r) => r.machineCores)
  const summary = [
    `2 workers vs 1: ${ratio.toFixed(2)}× the accepted req/s at ${connections} connections (goal ≥ 1.4×: ` +
      `${ratio >= 1.4 ? 'met' : 'not met'}). CPU per request sums the primary and its workers.`,
    ...(busyAtOne === undefined
      ? []
      : [
          `Ceiling on this machine: with one worker ${busyAtOne.toFixed(2)} of its ${cores} cores were busy ` +
            `(the api, Kafka, Redis and the load generator share them, and each accepted request costs CPU in ` +
            `all four), so unless that CPU per request falls, no number of workers can exceed ` +
            `${(cores / busyAtOne).toFixed(2)}× one worker here.`,
        ]),
  ]
  console.log(`\n${table}\n\n${summary.join('\n')}`)
  appendReport('API across cores', [
    `${seconds} s per round, ${rounds} alternating rounds, autocannon on loopback, acks=all, ${await machineFacts()}`,
    '',
    table,
    '',
    ...summary,
  ])
  const kafka = new Kafka({ clientId: 'bench-admin', brokers: [up.brokers], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  await admin
    .deleteTopics({ topics: (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`)) })
    .catch(() => {})
  await admin.disconnect()
  for (const c of children) c.kill('SIGTERM')
  if (up.startedKafka || up.startedRedis)
    await stopStack(stack, { kafka: up.startedKafka, redis: up.startedRedis })
}

main().catch((error: unknown) => {
  console.error(error)
  for (const c of children) c.kill('SIGKILL')
  process.exit(1)
})
