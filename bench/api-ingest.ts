// API ingest benchmark: accepted notifications per second and latency at fixed concurrency, against baselines
// measured in the same run on the same machine: a bare node:http server and a bare express app answering 202
// with no work (the Node and framework ceilings), and a bare kafkajs producer sending the same records with
// the same settings (the Kafka-client ceiling). Every figure is reported as a ratio to its baseline.
// Run: npm run bench:api   (BENCH_SECONDS per point, default 5; BENCH_CONNECTIONS, default 1,16,64,256)
import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'
import { Kafka, logLevel, Partitioners } from 'kafkajs'
import { repoRoot } from '../dev/lib/process.ts'
import { stackFromEnv, startStack, stopStack } from '../dev/lib/stack.ts'
import { appendReport, formatTable, machineFacts, percentile } from './report.ts'

const seconds = Number(process.env.BENCH_SECONDS ?? 5)
const connectionLevels = (process.env.BENCH_CONNECTIONS ?? '1,16,64,256').split(',').map(Number)
const prefix = `bench${randomUUID().slice(0, 6)}`
const children: ChildProcess[] = []

function start(name: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1', ...env },
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
  total2xx: number
}

async function load(target: string, url: string, connections: number): Promise<Point> {
  let n = 0
  const result = await autocannon({
    url,
    connections,
    duration: seconds,
    pipelining: 1,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        setupRequest: (req) => ({ ...req, body: body(n++) }),
      },
    ],
  })
  return {
    target,
    connections,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    p999: result.latency.p99_9,
    non2xx: result.non2xx + result.errors + result.timeouts,
    total2xx: result['2xx'],
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
  await producer.disconnect()
  latencies.sort((a, b) => a - b)
  return {
    target: 'bare kafkajs producer',
    connections,
    rps: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    p999: percentile(latencies, 99.9),
    non2xx: 0,
    total2xx: latencies.length,
  }
}

async function main(): Promise<void> {
  const stack = stackFromEnv()
  const up = await startStack(stack, (l) => console.log(`[infra] ${l}`), { adoptRunning: true })
  const ports = { http: 18081, express: 18082, herald: 18083 }
  start('http', ['bench/servers.ts', 'http', String(ports.http)])
  start('express', ['bench/servers.ts', 'express', String(ports.express)])
  start('herald', ['api/src/main.ts'], {
    PORT: String(ports.herald),
    KAFKA_BROKERS: up.brokers,
    REDIS_URL: up.redisUrl,
    TOPIC_PREFIX: prefix,
    KEY_PREFIX: prefix,
    LOG_LEVEL: 'warn',
    DEFAULT_EMAIL_TO: 'bench@example.com',
  })
  const url = (port: number) => `http://127.0.0.1:${port}/api/v1/notification`
  await Promise.all(Object.values(ports).map((p) => waitReady(url(p))))
  const kafka = new Kafka({ clientId: 'bench-admin', brokers: [up.brokers], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const topic = `${prefix}.email`
  const total = async () => (await admin.fetchTopicOffsets(topic)).reduce((s, p) => s + Number(p.high), 0)

  const points: Point[] = []
  let heraldAccepted = 0
  const before = await total()
  for (const connections of connectionLevels) {
    points.push(await load('bare node:http', url(ports.http), connections))
    points.push(await load('bare express', url(ports.express), connections))
    const herald = await load('herald api', url(ports.herald), connections)
    heraldAccepted += herald.total2xx
    points.push(herald)
    points.push(await bareProducer(up.brokers, topic, connections))
    console.log(`connections ${connections}: done`)
  }
  // A run is valid only if every 202 is a record: the topic grew by the api's 202s plus the producer's sends.
  const producerSent = points
    .filter((p) => p.target === 'bare kafkajs producer')
    .reduce((s, p) => s + p.total2xx, 0)
  const grown = (await total()) - before
  // autocannon stops counting at the deadline: a request in flight then may be written but not counted,
  // so up to one record per connection may exceed the counted 202s, never the other way round.
  const counted = heraldAccepted + producerSent + 3
  const slack = connectionLevels.reduce((s, c) => s + c, 0)
  const valid = grown >= counted && grown <= counted + slack

  // Batch endpoint: 100 notifications per request.
  const batchUrl = `http://127.0.0.1:${ports.herald}/api/v1/notifications`
  let b = 0
  const batch = await autocannon({
    url: batchUrl,
    connections: 16,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        setupRequest: (req) => ({
          ...req,
          body: `[${Array.from({ length: 100 }, () => body(b++)).join(',')}]`,
        }),
      },
    ],
  })
  const batchRecordsPerSecond = batch.requests.average * 100

  const rows = points.map((p) => {
    const same = (target: string) =>
      points.find((q) => q.target === target && q.connections === p.connections)
    const ratio = (base?: Point) => (base && p.target === 'herald api' ? (p.rps / base.rps).toFixed(2) : '')
    return [
      p.target,
      String(p.connections),
      p.rps.toFixed(0),
      p.p50.toFixed(1),
      p.p99.toFixed(1),
      p.p999.toFixed(1),
      String(p.non2xx),
      ratio(same('bare express')),
      ratio(same('bare node:http')),
      ratio(same('bare kafkajs producer')),
    ]
  })
  const table = formatTable(
    [
      'target',
      'conns',
      'req/s',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'errors',
      'vs express',
      'vs node:http',
      'vs producer',
    ],
    rows,
  )
  const bestProducer = Math.max(
    ...points.filter((p) => p.target === 'bare kafkajs producer').map((p) => p.rps),
  )
  const summary = [
    `Batch endpoint (100 per request, 16 connections): ${batchRecordsPerSecond.toFixed(0)} records/s = ` +
      `${(batchRecordsPerSecond / bestProducer).toFixed(2)}× the best bare-producer rate (${bestProducer.toFixed(0)}/s).`,
    `Validity: topic grew by ${grown}, api 202s + producer sends + 3 warm-ups = ${counted} (+ at most ${slack} in flight at the deadlines): ${valid ? 'VALID' : 'INVALID (records and 202s differ)'}.`,
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
