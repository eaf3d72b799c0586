// Alarms benchmark (issue 15): BENCH_ALARMS registered alarms (default 10,000) and BENCH_RATE activations a
// second (default 1,000) for BENCH_SECONDS (default 60) through the production alarms processor
// (alarms/src/main.ts as a process of its own on a fresh namespace, 12 partitions), with the records written
// as the api writes them: keyed by alarm name (overrides by `<name>/<kind>`) on the partition of the name
// (AlarmPartitioner).
// The alarms: 90% plain ones that take the activations, round robin, each visit alternately setting and
// clearing; 5% shelved for 2 to 5 s at times spread over the run; 5% registered with a 2 s on-delay and
// activated once at times spread over the run. Every deadline falls a second or more before the writes end.
// Read back at the end: the effective topic (every alarm's final state as expected; each plain alarm's
// transitions one per write, in order) and the alarm events (each set one `alarm`, each clear one `ok`, one
// `alarm` per on-delayed alarm, none for the shelved ones; counted by distinct event id).
// Figures:
// - activations processed a second (all of them over the time from the first write to the processor's last
//   effective record for them) against the offered rate, and each activation's latency to its effective
//   record (the record's Kafka timestamp, written by the processor);
// - CPU per input record (activation or shelve) of the processor and Kafka from /proc, over the time from the
//   first write to the processor's last output;
// - timer accuracy: the effective record's Kafka timestamp minus the deadline (shelve `until`, activation
//   `at` + on-delay) for every timed alarm, and the processor's own herald_alarm_timer_lateness_seconds;
// - memory per alarm: the processor's RSS (VmRSS) loaded with every alarm minus before any, over the count
//   (its V8 heap in use likewise, from its metrics; neither is collected first, so both include garbage).
// A run whose read-back differs from what was written, or whose processor logged an error or found a record
// unreadable, is INVALID.
// Run: npm run bench:alarms [-- --record]   (BENCH_ALARMS, BENCH_RATE, BENCH_SECONDS to scale down)
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { AlarmPartitioner } from '@herald/shared/alarms/partitioner'
import type { Activation, Effective, RegistrationInput, ShelvedOverride } from '@herald/shared/alarms/schemas'
import { createLogger } from '@herald/shared/logger'
import {
  alarmEventTopicName,
  alarmEventTopicSpec,
  alarmTopicNames,
  alarmTopicSpecs,
  ensureTopics,
} from '@herald/shared/topics'
import { Kafka, logLevel, type Message, type TopicMessages } from 'kafkajs'
import { kafkaPid } from '../dev/lib/kafka.ts'
import { stackFromEnv, startStack, stopStack } from '../dev/lib/stack.ts'
import {
  CpuMeter,
  errorLines,
  metricsPortOf,
  residentBytes,
  type ServiceProcess,
  spawnService,
  stopService,
} from './processes.ts'
import {
  histogramBound,
  histogramDelta,
  histogramOf,
  histogramQuantile,
  metricSum,
  scrapeMetrics,
} from './prometheus.ts'
import { logEnd, type ReadRecord, readRecords } from './records.ts'
import { appendReport, formatTable, machineFacts, percentile } from './report.ts'

const alarmCount = Number(process.env.BENCH_ALARMS ?? 10_000)
const rate = Number(process.env.BENCH_RATE ?? 1000)
const seconds = Number(process.env.BENCH_SECONDS ?? 60)
const partitions = 12
const onDelaySeconds = 2
/** A shelve lasts 2 to 5 s. */
const shelveMs = (j: number) => 2000 + (j % 4) * 1000
/** Timed writes fall in [1 s, end − 6 s]: every deadline is at least a second before the writes end. */
const timedFromMs = 1000
const timedToMs = seconds * 1000 - 6000
/** The run is over once the processor's output has not grown for this long after the writes and deadlines. */
const quietMs = 3000
const logger = createLogger({ service: 'bench', level: 'silent' })
const audit = { 'herald-user': 'bench', 'herald-source': 'bench', 'herald-host': 'bench' }

if (!(alarmCount >= 40 && rate > 0 && seconds >= 10)) {
  console.error('BENCH_ALARMS must be at least 40, BENCH_RATE above 0 and BENCH_SECONDS at least 10')
  process.exit(2)
}

type AlarmKind = 'plain' | 'shelved' | 'delayed'
const kindOf = (i: number): AlarmKind => (i % 20 === 0 ? 'shelved' : i % 20 === 1 ? 'delayed' : 'plain')
const nameOf = (i: number) => `bench-alarm-${i}`

const names = Array.from({ length: alarmCount }, (_, i) => nameOf(i))
const plain = names.filter((_, i) => kindOf(i) === 'plain')
const shelved = names.filter((_, i) => kindOf(i) === 'shelved')
const delayed = names.filter((_, i) => kindOf(i) === 'delayed')
const plainIndex = new Map(plain.map((name, x) => [name, x]))
const activationCount = Math.round(rate * seconds)

function registrationOf(i: number): RegistrationInput {
  return {
    name: nameOf(i),
    class: 'bench',
    location: `rack-${i % 40}`,
    severity: 'MEDIUM',
    labels: { team: `team-${i % 10}` },
    ...(kindOf(i) === 'delayed' ? { onDelaySeconds } : {}),
  }
}

/** Activation k goes to plain alarm k mod P; that alarm's visits alternate set, clear, set... */
const activationTarget = (k: number) => ({
  name: plain[k % plain.length] as string,
  set: Math.floor(k / plain.length) % 2 === 0,
})

/** How many activations plain alarm x gets. */
const writesOf = (x: number) =>
  x < activationCount ? Math.floor((activationCount - 1 - x) / plain.length) + 1 : 0

interface TimedWrite {
  /** ms after the start of the run. */
  at: number
  kind: 'shelve' | 'delayed'
  name: string
  j: number
}

/** The shelves and the on-delayed activations, spread evenly over [timedFromMs, timedToMs], in time order. */
function timedWrites(): TimedWrite[] {
  const span = timedToMs - timedFromMs
  const writes: TimedWrite[] = [
    ...shelved.map((name, j) => ({
      at: timedFromMs + (j * span) / shelved.length,
      kind: 'shelve' as const,
      name,
      j,
    })),
    ...delayed.map((name, j) => ({
      at: timedFromMs + ((j + 0.5) * span) / delayed.length,
      kind: 'delayed' as const,
      name,
      j,
    })),
  ]
  return writes.sort((a, b) => a.at - b.at)
}

const sorted = (values: number[]) => [...values].sort((a, b) => a - b)
const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : 'n/a')
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1)

async function main(): Promise<void> {
  const stack = stackFromEnv()
  const up = await startStack(stack, (l) => console.log(`[infra] ${l}`), { adoptRunning: true })
  const kafka = new Kafka({ clientId: 'bench', brokers: [up.brokers], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: AlarmPartitioner })
  await producer.connect()
  const prefix = `bench${randomUUID().slice(0, 6)}-alarms`
  const topics = alarmTopicNames(prefix)
  const eventsTopic = alarmEventTopicName(prefix)
  let processor: ServiceProcess | undefined
  try {
    await ensureTopics(admin, {
      specs: [...alarmTopicSpecs(topics, 1), alarmEventTopicSpec(eventsTopic, 1)],
      partitions,
      replication: 1,
      brokers: [up.brokers],
      logger,
    })
    processor = spawnService('alarms', 'alarms', {
      KAFKA_BROKERS: up.brokers,
      KEY_PREFIX: prefix,
      TOPIC_PARTITIONS: String(partitions),
      METRICS_PORT: '0',
      SHUTDOWN_TIMEOUT_MS: '10000',
      LOG_LEVEL: 'info',
    })
    const service = processor
    const pid = service.child.pid
    const port = await metricsPortOf(service)
    const loaded = () => service.lines.filter((l) => l.msg === 'alarm partition loaded; following it').length
    const until = Date.now() + 60_000
    while (loaded() < partitions) {
      if (Date.now() > until)
        throw new Error(`the processor loaded ${loaded()} of ${partitions} partitions in 60 s`)
      await sleep(100)
    }
    await sleep(2000)
    const heapUsed = async () =>
      metricSum(await scrapeMetrics(port), 'herald_alarms_nodejs_heap_size_used_bytes')
    const idle = { rss: residentBytes(pid) ?? Number.NaN, heap: await heapUsed() }

    // Registrations, then wait for every alarm's first effective record (and the processor's own copy of it
    // in its parents' store).
    const registrations: Message[] = names.map((_, i) => ({
      key: nameOf(i),
      value: JSON.stringify(registrationOf(i)),
      headers: audit,
    }))
    for (let i = 0; i < registrations.length; i += 1000)
      await producer.send({ topic: topics.registered, acks: -1, messages: registrations.slice(i, i + 1000) })
    const registeredBy = Date.now() + 120_000
    while ((await logEnd(admin, topics.effective)) < alarmCount) {
      if (Date.now() > registeredBy)
        throw new Error('the processor did not publish every registered alarm in 120 s')
      await sleep(200)
    }
    await sleep(2000)
    const registered = { rss: residentBytes(pid) ?? Number.NaN, heap: await heapUsed() }
    console.log(
      `${alarmCount} alarms loaded: RSS ${mib(idle.rss)} → ${mib(registered.rss)} MiB, ` +
        `${((registered.rss - idle.rss) / alarmCount).toFixed(0)} bytes per alarm`,
    )

    // The run: activations at the offered rate, timed writes at their times, one request in flight.
    const before = histogramOf(await scrapeMetrics(port), 'herald_alarm_timer_lateness_seconds')
    const cpu = new CpuMeter({
      alarms: () => [pid],
      kafka: () => [kafkaPid(stack.kafka)],
      bench: () => [process.pid],
    })
    const timed = timedWrites()
    const writtenAt = new Float64Array(activationCount)
    const deadlines = new Map<string, number>()
    const t0 = performance.now()
    const wall0 = Date.now()
    cpu.start()
    let sent = 0
    let nextTimed = 0
    while (sent < activationCount || nextTimed < timed.length) {
      const elapsed = performance.now() - t0
      const due = Math.min(activationCount, Math.floor((elapsed * rate) / 1000) + 1)
      const now = Date.now()
      const activations: Message[] = []
      const overrides: Message[] = []
      for (; sent < due; sent++) {
        const { name, set } = activationTarget(sent)
        writtenAt[sent] = now
        const activation: Activation = {
          severity: 'HIGH',
          message: `${name} tripped`,
          value: sent,
          source: 'bench',
          at: now,
        }
        activations.push({ key: name, value: set ? JSON.stringify(activation) : null, headers: audit })
      }
      for (; nextTimed < timed.length && (timed[nextTimed]?.at ?? 0) <= elapsed; nextTimed++) {
        const w = timed[nextTimed] as TimedWrite
        if (w.kind === 'shelve') {
          const shelve: ShelvedOverride = {
            kind: 'shelved',
            until: now + shelveMs(w.j),
            reason: 'bench',
            user: 'bench',
          }
          deadlines.set(w.name, shelve.until as number)
          overrides.push({ key: `${w.name}/shelved`, value: JSON.stringify(shelve), headers: audit })
        } else {
          const activation: Activation = { message: `${w.name} tripped`, source: 'bench', at: now }
          deadlines.set(w.name, now + onDelaySeconds * 1000)
          activations.push({ key: w.name, value: JSON.stringify(activation), headers: audit })
        }
      }
      if (activations.length === 0 && overrides.length === 0) {
        const nextActivation = sent < activationCount ? (sent * 1000) / rate : Number.POSITIVE_INFINITY
        const wait = Math.min(nextActivation, timed[nextTimed]?.at ?? Number.POSITIVE_INFINITY) - elapsed
        await sleep(Math.max(1, Math.min(50, wait)))
        continue
      }
      const topicMessages: TopicMessages[] = []
      if (activations.length > 0) topicMessages.push({ topic: topics.activations, messages: activations })
      if (overrides.length > 0) topicMessages.push({ topic: topics.overrides, messages: overrides })
      await producer.sendBatch({ acks: -1, topicMessages })
    }
    const writeSeconds = (performance.now() - t0) / 1000
    const lastDeadline = Math.max(...deadlines.values())

    // Until the processor's output stops growing: the CPU window ends at its last growth.
    const output = async () =>
      (
        await Promise.all([topics.effective, topics.overrides, eventsTopic].map((t) => logEnd(admin, t)))
      ).reduce((a, b) => a + b, 0)
    cpu.stop()
    let cpuEnd = performance.now()
    let seen = await output()
    let grewAt = performance.now()
    // A processor slower than the offered rate works through its backlog: the figures say how fast.
    const drainBy = Date.now() + 600_000
    const problems: string[] = []
    for (;;) {
      await sleep(100)
      const now = await output()
      if (now !== seen) {
        seen = now
        grewAt = performance.now()
        cpu.stop()
        cpuEnd = grewAt
      }
      if (performance.now() - grewAt > quietMs && Date.now() > lastDeadline + 1000) break
      if (Date.now() > drainBy) {
        problems.push('the processor was still producing 600 s after the writes ended')
        break
      }
    }
    const cpuSeconds = (cpuEnd - t0) / 1000
    const after = await scrapeMetrics(port)
    const timerHistogram = histogramDelta(before, histogramOf(after, 'herald_alarm_timer_lateness_seconds'))
    const unreadable = metricSum(after, 'herald_alarm_records_unreadable_total')
    const endRss = residentBytes(pid) ?? Number.NaN
    await stopService(service)
    const errors = errorLines(service)
    if (errors.length > 0) problems.push(`${errors.length} error lines logged (first: ${errors[0]?.msg})`)
    if (unreadable > 0) problems.push(`${unreadable} records found unreadable`)

    // Read back and check.
    const records = await readRecords(kafka, admin, [topics.effective, eventsTopic])
    const check = verify(records, topics.effective, writtenAt, deadlines)
    problems.push(...check.problems)
    const processedSeconds = (check.lastPlainAt - wall0) / 1000
    const processedRate = activationCount / processedSeconds
    const inputs = activationCount + timed.length
    const shares = cpu.shares()
    const perInput = (name: string) =>
      shares[name] === undefined ? 'n/a' : (((shares[name] ?? 0) * cpuSeconds * 1e6) / inputs).toFixed(0)
    const latency = sorted(check.latencies)
    const lateness = sorted(check.lateness)
    const q = (p: number) => histogramQuantile(timerHistogram, p) * 1000
    const bound = (p: number) => histogramBound(timerHistogram, p) * 1000
    const valid = problems.length === 0
    const rows = [
      ['activations offered', `${rate}/s for ${seconds} s (${activationCount})`],
      ['activations written by the bench', `${(activationCount / writeSeconds).toFixed(0)}/s`],
      [
        'activations processed (to their effective record)',
        `${processedRate.toFixed(0)}/s, ${(processedRate / rate).toFixed(2)} of offered`,
      ],
      [
        'activation → effective record, p50 / p99 / max',
        `${ms(percentile(latency, 50))} / ${ms(percentile(latency, 99))} / ${ms(latency.at(-1) ?? Number.NaN)} ms`,
      ],
      [
        'CPU per input record (activation or shelve): processor / Kafka / bench (writer)',
        `${perInput('alarms')} / ${perInput('kafka')} / ${perInput('bench')} µs`,
      ],
      [
        'cores in use over the run: processor / other processes on the machine',
        `${(shares.alarms ?? 0).toFixed(2)} / ${(shares.other ?? Number.NaN).toFixed(2)}`,
      ],
      [
        `timer lateness from the records (${lateness.length} deadlines), p50 / p99 / max`,
        `${ms(percentile(lateness, 50))} / ${ms(percentile(lateness, 99))} / ${ms(lateness.at(-1) ?? Number.NaN)} ms`,
      ],
      [
        `timer lateness, processor's histogram (${timerHistogram.count} timers), p50 / p99`,
        `${ms(q(0.5))} / ${ms(q(0.99))} ms (interpolated; buckets ≤ ${ms(bound(0.5))} / ≤ ${ms(bound(0.99))} ms)`,
      ],
      [
        'memory per alarm: RSS / V8 heap in use',
        `${((registered.rss - idle.rss) / alarmCount).toFixed(0)} / ${((registered.heap - idle.heap) / alarmCount).toFixed(0)} bytes ` +
          `(RSS ${mib(idle.rss)} MiB with none, ${mib(registered.rss)} MiB loaded, ${mib(endRss)} MiB after the run)`,
      ],
      ['final effective states as expected', `${alarmCount - check.wrongStates} of ${alarmCount}`],
      [
        'alarms whose transitions and events match the writes',
        `${alarmCount - check.wrongHistories} of ${alarmCount}`,
      ],
      ['run', valid ? 'VALID' : `INVALID (${problems.join('; ')})`],
    ]
    const table = formatTable(['measure', 'value'], rows)
    console.log(`\n${table}`)
    appendReport('Alarms', [
      `${alarmCount} alarms (${plain.length} taking the activations round robin, set and clear alternately; ` +
        `${shelved.length} shelved for 2–5 s and ${delayed.length} with a ${onDelaySeconds} s on-delay activated once, at times spread over the run), ` +
        `${rate} activations/s offered for ${seconds} s, ${partitions} partitions, the processor (alarms/src/main.ts) in a process of its own; ` +
        (await machineFacts(['alarms', 'shared'])),
      'Processed rate: all activations over the time from the first write to the last effective record of one. ' +
        'Latencies and timer lateness from the Kafka timestamps of the effective records (written by the processor) against the ' +
        'write time or deadline. CPU from /proc from the first write to the last record the processor produced; Kafka ' +
        "includes the bench's writes. Memory: VmRSS and the V8 heap in use (no collection forced) with every alarm loaded, " +
        'minus before any, over the count. INVALID when a final state, a transition or an event differs from the writes, or the ' +
        'processor logged an error or found a record unreadable.',
      '',
      table,
    ])
    if (!valid) process.exitCode = 1
  } finally {
    if (processor) await stopService(processor)
    const mine = (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`))
    if (mine.length > 0) await admin.deleteTopics({ topics: mine }).catch(() => {})
    await producer.disconnect()
    await admin.disconnect()
    if (up.startedKafka || up.startedRedis)
      await stopStack(stack, { kafka: up.startedKafka, redis: up.startedRedis })
  }
}

interface Verification {
  problems: string[]
  wrongStates: number
  wrongHistories: number
  /** ms from each activation's write to its effective record. */
  latencies: number[]
  /** ms from each timed alarm's deadline to its effective record. */
  lateness: number[]
  /** The latest Kafka timestamp of a plain alarm's effective record for an activation. */
  lastPlainAt: number
}

/**
 * Each alarm's effective records (consecutive repeats of a state folded: a retried produce may write one
 * twice) against what was written: plain alarm x goes normal (registered), then active on each set and normal
 * on each clear; a shelved one normal, normal-continuous-shelved, normal; an on-delayed one normal,
 * on-delayed, active. Events by distinct id: one `alarm` per set and one `ok` per clear, one `alarm` per
 * on-delayed alarm, none for a shelved one.
 */
function verify(
  records: readonly ReadRecord[],
  effectiveTopic: string,
  writtenAt: Float64Array,
  deadlines: ReadonlyMap<string, number>,
): Verification {
  const states = new Map<string, Array<{ state: string; at: number }>>()
  const events = new Map<string, Map<string, Set<string>>>()
  for (const r of records) {
    if (r.value === null) continue
    if (r.topic === effectiveTopic) {
      const e = JSON.parse(r.value) as Effective
      const list = states.get(r.key) ?? []
      if (list.at(-1)?.state !== e.state) list.push({ state: e.state, at: r.timestamp })
      states.set(r.key, list)
    } else {
      const e = JSON.parse(r.value) as { alarmName: string; kind?: string; eventId: string }
      const byKind = events.get(e.alarmName) ?? new Map<string, Set<string>>()
      const ids = byKind.get(e.kind ?? 'alarm') ?? new Set<string>()
      ids.add(e.eventId)
      byKind.set(e.kind ?? 'alarm', ids)
      events.set(e.alarmName, byKind)
    }
  }
  const result: Verification = {
    problems: [],
    wrongStates: 0,
    wrongHistories: 0,
    latencies: [],
    lateness: [],
    lastPlainAt: 0,
  }
  const examples: string[] = []
  const eventCounts = (name: string) =>
    Object.fromEntries(
      [...(events.get(name) ?? new Map<string, Set<string>>())].map(([k, ids]) => [k, ids.size]),
    )
  const same = (a: Record<string, number>, b: Record<string, number>) =>
    JSON.stringify(
      Object.entries(a)
        .filter(([, n]) => n > 0)
        .sort(),
    ) ===
    JSON.stringify(
      Object.entries(b)
        .filter(([, n]) => n > 0)
        .sort(),
    )
  for (const [i, name] of names.entries()) {
    const seen = states.get(name) ?? []
    let expected: string[]
    let expectedEvents: Record<string, number>
    const kind = kindOf(i)
    const x = plainIndex.get(name) ?? -1
    if (kind === 'plain') {
      const writes = writesOf(x)
      expected = ['normal', ...Array.from({ length: writes }, (_, v) => (v % 2 === 0 ? 'active' : 'normal'))]
      expectedEvents = { alarm: Math.ceil(writes / 2), ok: Math.floor(writes / 2) }
    } else if (kind === 'shelved') {
      expected = ['normal', 'normal-continuous-shelved', 'normal']
      expectedEvents = {}
    } else {
      expected = ['normal', 'on-delayed', 'active']
      expectedEvents = { alarm: 1 }
    }
    if (seen.at(-1)?.state !== expected.at(-1)) result.wrongStates++
    const historyOk = seen.length === expected.length && seen.every((s, v) => s.state === expected[v])
    const eventsOk = same(eventCounts(name), expectedEvents)
    if (!historyOk || !eventsOk) {
      result.wrongHistories++
      if (examples.length < 3)
        examples.push(
          `${name}: ${seen.map((s) => s.state).join(' → ')} (expected ${expected.join(' → ')}), ` +
            `events ${JSON.stringify(eventCounts(name))} (expected ${JSON.stringify(expectedEvents)})`,
        )
      continue
    }
    if (kind === 'plain') {
      for (let v = 1; v < seen.length; v++) {
        const at = seen[v]?.at ?? 0
        result.latencies.push(at - (writtenAt[x + (v - 1) * plain.length] ?? 0))
        result.lastPlainAt = Math.max(result.lastPlainAt, at)
      }
    } else {
      result.lateness.push((seen[2]?.at ?? 0) - (deadlines.get(name) ?? 0))
    }
  }
  if (result.wrongStates > 0) result.problems.push(`${result.wrongStates} final states not as expected`)
  if (result.wrongHistories > 0)
    result.problems.push(
      `${result.wrongHistories} alarms' transitions or events differ from the writes (e.g. ${examples.join('; ')})`,
    )
  return result
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
