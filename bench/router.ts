// Router benchmark: alarm events per second in, notifications per second out, through the production router
// (router/src/main.ts as a process of its own: config stores, offset protocol, matching, rendering, acks=all
// produce, `queued` statuses, reminder bookkeeping) with a route fanning out to 1 and to 10 recipients,
// against a bare kafkajs consume-and-produce loop (bench/relay-process.ts, also its own process: the same
// events in, records of a similar size out (the event embedded), acks=all, nothing else) measured in the same run.
// Each run has a fresh namespace with the events preloaded; the process under test starts on them and is
// timed from its first produced record to its last (the drain rate), so process start, config reads and
// group joins are excluded.
// CPU of the process under test, Kafka and Redis is read from /proc over that window, per event and per
// notification.
// The bare loop runs first and last for each fan-out: a baseline that moved by more than 2× marks the run
// NOISY. A router run that produced other than events × fan-out records, or logged an error, is INVALID.
// Run: npm run bench:router [-- --record]   (BENCH_NOTIFICATIONS per run, default 50000; BENCH_FANOUTS, default 1,10)
import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { type AlarmEvent, encodeAlarmEvent } from '@herald/shared/alarm-events'
import { channels } from '@herald/shared/config'
import { createConfigStores, startConfigStores, stopConfigStores } from '@herald/shared/config-topics/stores'
import { createLogger } from '@herald/shared/logger'
import { createRedis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import {
  alarmEventTopicName,
  alarmEventTopicSpec,
  configTopicNames,
  configTopicSpecs,
  ensureTopics,
  topicNames,
  topicSpecs,
} from '@herald/shared/topics'
import { type Admin, Kafka, logLevel, type Message, Partitioners } from 'kafkajs'
import { kafkaPid } from '../dev/lib/kafka.ts'
import { repoRoot } from '../dev/lib/process.ts'
import { redisPid } from '../dev/lib/redis.ts'
import { stackFromEnv, startStack, stopStack } from '../dev/lib/stack.ts'
import { monascaEvent } from '../test/support/alarm-events.ts'
import { CpuMeter, type ServiceProcess, spawnService, stopService } from './processes.ts'
import { deleteKeys } from './records.ts'
import { appendReport, formatTable, machineFacts } from './report.ts'

/** Notifications per run: a run at fan-out F routes this many ÷ F events, so every run takes a few seconds. */
const notifications = Number(process.env.BENCH_NOTIFICATIONS ?? 50_000)
const eventsFor = (fanOut: number) => Math.ceil(notifications / fanOut)
const fanOuts = (process.env.BENCH_FANOUTS ?? '1,10').split(',').map(Number)
const partitions = 12
const logger = createLogger({ service: 'bench', level: 'silent' })

type Kind = 'bare' | 'router'

interface Run {
  kind: Kind
  fanOut: number
  round: number
  /** Alarm events per second and notifications per second over the window. */
  eventRate: number
  notificationRate: number
  windowSeconds: number
  produced: number
  /** CPU ms per event and per notification, by process (the one under test, kafka, redis). */
  cpuPerEvent: Record<string, number>
  cpuPerNotification: Record<string, number>
  cores: Record<string, number>
  valid: boolean
  problem?: string
}

/** Sum of the high watermarks of a topic. */
async function logEnd(admin: Admin, topic: string): Promise<number> {
  return (await admin.fetchTopicOffsets(topic)).reduce((s, p) => s + Number(p.high), 0)
}

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
  const prefixes: string[] = []

  /**
   * A fresh namespace: its topics, a route `page` to `fanOut` recipients (email only) written through the
   * config stores as the api writes them, and the ALARM events to write, one send per partition (a
   * retried request of many partitions could duplicate some).
   */
  async function prepare(label: string, fanOut: number) {
    const events = eventsFor(fanOut)
    const prefix = `bench${randomUUID().slice(0, 6)}-${label}`
    prefixes.push(prefix)
    const names = topicNames(prefix)
    const configNames = configTopicNames(prefix)
    const eventsTopic = alarmEventTopicName(prefix)
    await ensureTopics(admin, {
      specs: [
        ...topicSpecs(names, channels, 1),
        ...configTopicSpecs(configNames, 1),
        alarmEventTopicSpec(eventsTopic, 1),
      ],
      partitions,
      replication: 1,
      brokers: [up.brokers],
      logger,
    })
    const stores = createConfigStores(kafka, { names: configNames, producer, logger, groupPrefix: prefix })
    await startConfigStores(stores, { logger })
    const audit = { user: 'bench', source: 'bench' }
    const recipients = Array.from({ length: fanOut }, (_, i) => `person-${i}`)
    for (const id of recipients)
      await stores.recipients.put(
        id,
        { id, name: `Person ${id}`, email: `${id}@example.com`, channels: ['email'] },
        audit,
      )
    await stores.routes.put('page', { name: 'page', match: { states: ['ALARM'] }, recipients }, audit)
    await stopConfigStores(stores)

    const now = Date.now()
    const byPartition = Array.from({ length: partitions }, () => [] as Message[])
    for (let n = 0; n < events; n++) {
      const event = monascaEvent({
        alarmId: `bench-alarm-${n % 500}`,
        alarmName: `bench alarm ${n % 500}`,
        eventId: `${prefix}-${n}`,
        timestamp: now + n,
      }) as AlarmEvent
      byPartition[n % partitions]?.push(encodeAlarmEvent(event))
    }
    /** Writes the events, one request per partition at a time (a retried request of many could duplicate). */
    const send = async () => {
      await Promise.all(
        byPartition.map(async (messages, partition) => {
          for (let i = 0; i < messages.length; i += 1000)
            await producer.send({
              topic: eventsTopic,
              acks: -1,
              messages: messages.slice(i, i + 1000).map((m) => ({ ...m, partition })),
            })
        }),
      )
      const written = await logEnd(admin, eventsTopic)
      if (written !== events) throw new Error(`${eventsTopic} holds ${written} events, not ${events}`)
    }
    return { prefix, eventsTopic, out: names.main('email'), send }
  }

  /** The bare loop as a process of its own. */
  function startRelay(prefix: string, eventsTopic: string, out: string, fanOut: number): ChildProcess {
    const args = [up.brokers, eventsTopic, out, `${prefix}.relay`, String(fanOut), String(partitions)]
    return spawn(process.execPath, [join(repoRoot, 'bench', 'relay-process.ts'), ...args], {
      cwd: repoRoot,
      env: { ...process.env },
      stdio: ['ignore', 'ignore', 'inherit'],
    })
  }

  /**
   * Preloads the events, starts the process under test, and times from its first produced record to its
   * last (polled every 20 ms): the drain rate, with process start, config reads and group joins excluded.
   */
  async function measure(kind: Kind, fanOut: number, round: number): Promise<Run> {
    const { prefix, eventsTopic, out, send } = await prepare(`${kind}${fanOut}`, fanOut)
    const events = eventsFor(fanOut)
    const expected = events * fanOut
    await send()
    let service: ServiceProcess | undefined
    let relay: ChildProcess | undefined
    if (kind === 'router')
      service = spawnService(`router-${fanOut}`, 'router', {
        KAFKA_BROKERS: up.brokers,
        REDIS_URL: up.redisUrl,
        TOPIC_PREFIX: prefix,
        KEY_PREFIX: prefix,
        TOPIC_PARTITIONS: String(partitions),
        METRICS_PORT: '0',
        STATUS_TTL_SECONDS: '3600',
        SHUTDOWN_TIMEOUT_MS: '5000',
        LOG_LEVEL: 'info',
      })
    else relay = startRelay(prefix, eventsTopic, out, fanOut)
    const pid = () => [service?.child.pid ?? relay?.pid]
    const cpu = new CpuMeter({
      [kind]: pid,
      kafka: () => [kafkaPid(stack.kafka)],
      redis: () => [redisPid(stack.redis)],
    })
    const exited = () => (service ? service.child.exitCode : relay?.exitCode) ?? null
    const deadline = Date.now() + 180_000
    let first: { at: number; produced: number } | undefined
    let windowMs = 0
    for (;;) {
      const produced = await logEnd(admin, out)
      const at = performance.now()
      if (first === undefined && produced > 0) {
        first = { at, produced }
        cpu.start()
      }
      if (first && produced >= expected) {
        windowMs = at - first.at
        cpu.stop()
        break
      }
      if (exited() !== null) throw new Error(`${kind} fan-out ${fanOut}: the process exited (${exited()})`)
      if (Date.now() > deadline)
        throw new Error(`${kind} fan-out ${fanOut}: ${produced} of ${expected} in 180 s`)
      await sleep(20)
    }
    const inWindow = expected - first.produced
    if (inWindow < expected / 2)
      throw new Error(`${kind} fan-out ${fanOut}: the run is too short to time (raise BENCH_NOTIFICATIONS)`)
    // The router finishes an event's offset after its produce and statuses: wait for the last of them, so a
    // run that produced everything but failed to finish is seen, then stop it.
    let problem: string | undefined
    if (service) {
      const offsetsKey = redisKeys(prefix).offsets(`${prefix}.router`, eventsTopic)
      const finished = async () =>
        Object.entries(await redis.hgetall(offsetsKey))
          .filter(([k]) => /^\d+$/.test(k))
          .reduce((s, [, v]) => s + Number(v), 0)
      const until = Date.now() + 30_000
      while ((await finished()) < events && Date.now() < until) await sleep(100)
      const done = await finished()
      if (done < events) problem = `${done} of ${events} events finished`
      await stopService(service)
      const errors = service.lines.filter((l) => typeof l.level === 'number' && l.level >= 50).length
      if (errors > 0) problem = `${problem ? `${problem}; ` : ''}${errors} error lines logged`
    } else if (relay) {
      const gone = new Promise((resolve) => relay?.once('exit', resolve))
      if (relay.exitCode === null) {
        relay.kill('SIGTERM')
        await gone
      }
    }
    const produced = await logEnd(admin, out)
    if (produced !== expected)
      problem = `${problem ? `${problem}; ` : ''}${produced} records produced, ${expected} expected`
    const shares = cpu.shares()
    const perUnit = (units: number) =>
      Object.fromEntries(
        [kind, 'kafka', 'redis'].flatMap((name) =>
          shares[name] === undefined ? [] : [[name, ((shares[name] ?? 0) * windowMs) / units]],
        ),
      )
    const run: Run = {
      kind,
      fanOut,
      round,
      notificationRate: inWindow / (windowMs / 1000),
      eventRate: inWindow / fanOut / (windowMs / 1000),
      windowSeconds: windowMs / 1000,
      produced,
      cpuPerEvent: perUnit(inWindow / fanOut),
      cpuPerNotification: perUnit(inWindow),
      cores: shares,
      valid: problem === undefined,
      ...(problem ? { problem } : {}),
    }
    console.log(
      `${kind} fan-out ${fanOut}${round > 1 ? ` (round ${round})` : ''}: ${run.eventRate.toFixed(0)} events/s, ` +
        `${run.notificationRate.toFixed(0)} notifications/s over ${run.windowSeconds.toFixed(1)} s` +
        `${problem ? ` INVALID: ${problem}` : ''}`,
    )
    await deleteKeys(redis, `${prefix}:*`)
    return run
  }

  const runs: Run[] = []
  for (const fanOut of fanOuts) runs.push(await measure('bare', fanOut, 1))
  for (const fanOut of fanOuts) runs.push(await measure('router', fanOut, 1))
  for (const fanOut of fanOuts) runs.push(await measure('bare', fanOut, 2))

  const bareOf = (fanOut: number) => runs.filter((r) => r.kind === 'bare' && r.fanOut === fanOut)
  const noisy = fanOuts.filter((f) => {
    const rates = bareOf(f).map((r) => r.eventRate)
    return Math.max(...rates) > 2 * Math.min(...rates)
  })
  const bareMean = (fanOut: number) => {
    const rates = bareOf(fanOut).map((r) => r.eventRate)
    return rates.reduce((a, b) => a + b, 0) / rates.length
  }
  const ms = (v: number | undefined) => (v === undefined ? '' : v.toFixed(3))
  const rows = runs.map((r) => [
    r.kind === 'bare'
      ? `bare consume-and-produce loop${r.round > 1 ? ' (round 2)' : ''}`
      : 'router (production main.ts)',
    String(r.fanOut),
    r.eventRate.toFixed(0),
    r.notificationRate.toFixed(0),
    (r.eventRate / bareMean(r.fanOut)).toFixed(2),
    r.windowSeconds.toFixed(1),
    ms(r.cpuPerEvent[r.kind]),
    ms(r.cpuPerNotification[r.kind]),
    ms(r.cpuPerNotification.kafka),
    ms(r.cpuPerNotification.redis),
    (r.cores[r.kind] ?? 0).toFixed(2),
    r.valid ? 'VALID' : `INVALID (${r.problem})`,
  ])
  const table = formatTable(
    [
      'pipeline',
      'fan-out',
      'events/s',
      'notifications/s',
      'vs bare loop (same fan-out, mean of its rounds)',
      'window s',
      'CPU ms / event (process)',
      'CPU ms / notification (process)',
      'CPU ms / notification (kafka)',
      'CPU ms / notification (redis)',
      'cores (process)',
      'run',
    ],
    rows,
  )
  const noise =
    noisy.length > 0
      ? `NOISY: the bare loop moved by more than 2× between its rounds at fan-out ${noisy.join(', ')}; the ratios of this run are not comparable.`
      : 'Baseline steady: the bare loop moved by less than 2× between its two rounds at every fan-out.'
  console.log(`\n${table}\n\n${noise}`)
  appendReport('Router', [
    `${notifications} notifications per run (${fanOuts.map((f) => `${eventsFor(f)} ALARM events at fan-out ${f}`).join(', ')}), ` +
      `${partitions} partitions, one route to F email recipients; ` +
      `preloaded; the router and the bare loop each in a process of their own, timed from their first produced record to the last; ${await machineFacts()}`,
    'The bare loop produces records of a similar size (the event embedded) with acks=all and does nothing else: no ' +
      'matching, rendering, statuses, offset protocol or reminders. CPU from /proc over the window, per event and per ' +
      'notification produced. A router run is INVALID when it produced other than events × fan-out records, left ' +
      'events unfinished, or logged an error.',
    '',
    table,
    '',
    noise,
  ])

  for (const prefix of prefixes) {
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`))
    if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => {})
  }
  await producer.disconnect()
  await admin.disconnect()
  redis.disconnect()
  if (up.startedKafka || up.startedRedis)
    await stopStack(stack, { kafka: up.startedKafka, redis: up.startedRedis })
  if (runs.some((r) => !r.valid)) process.exitCode = 1
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
