// The chaos harness: the whole system (private Kafka and Redis, stand-ins, api, two distributors per channel)
// under a steady load while a fault schedule runs, then a strict check of every accepted notification.
//   accepted      = ids in the 202 bodies the load generator got (clients retry 503s and connection errors
//                   with the same Idempotency-Key, as a careful client would)
//   delivered     = the notification's token found in a stand-in's record of what it received
//   dead-lettered = counts only when a permanent fault was injected for that recipient
// The run fails when an id is lost, when draining times out, or when a scheduled fault did not happen.
import { execFileSync } from 'node:child_process'
import { appendFileSync, existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { DeadLetterStore } from '@herald/shared/dead-letters'
import { createRedis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { topicNames } from '@herald/shared/topics'
import { Kafka, logLevel } from 'kafkajs'
import { kafkaPid, startKafka, stopKafka } from '../../dev/lib/kafka.ts'
import { repoRoot } from '../../dev/lib/process.ts'
import { redisCommand, startRedis, stopRedis } from '../../dev/lib/redis.ts'
import { type Sandbox, startSandbox } from '../../dev/standins/index.ts'
import { freePort, type PrivateStack, startPrivateStack } from '../helpers.ts'
import { type ServiceProcess, startService } from '../support/service-process.ts'

/** The load generator's token in a delivered text (`chaos-<seed>-<i>`). */
const tokenOf = (text: string): string | undefined => /chaos-\d+-\d+/.exec(text)?.[0]

export type Fault =
  | 'kill'
  | 'term'
  | 'freeze'
  | 'outage'
  | 'auth'
  | 'transient'
  | 'permanent'
  | 'api'
  | 'broker'
  | 'redis'
  | 'redis-empty'

export interface ChaosOptions {
  notifications: number
  ratePerSecond: number
  seed: number
  faults: ReadonlySet<Fault>
  /** Test-only broken distributor (negative control). */
  brokenVariant?: string
  drainTimeoutMs: number
  /** Latency of every stand-in answer: deliveries are in flight when faults strike. */
  providerLatencyMs?: number
  /** Distinct email recipients (default 97): fewer means longer per-recipient queues. */
  emailRecipients?: number
  /** When the SIGKILL fault strikes, as a share of the load's duration (default 0.25). */
  killAt?: number
  /** Distributor replicas per channel (default 2). */
  replicasPerChannel?: number
  log?: (line: string) => void
}

export interface ChaosReport {
  accepted: number
  delivered: number
  deadLettered: number
  lost: string[]
  duplicates: number
  /** Duplicate deliveries by channel and by the fault that struck last before the repeat arrived. */
  duplicatesBy: { channel: Record<string, number>; fault: Record<string, number> }
  drainSeconds: number
  faultsRun: string[]
  faultsMissing: string[]
  ok: boolean
}

const channels = ['email', 'sms', 'slack'] as const
type ChannelName = (typeof channels)[number]

function prng(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Sent {
  token: string
  channel: ChannelName
  permanent: boolean
  id?: string
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => {})
  const random = prng(options.seed)
  const on = (f: Fault) => options.faults.has(f)
  const stack: PrivateStack = await startPrivateStack()
  for (const name of [
    'SMTP_STANDIN_PORT',
    'SMTP_STANDIN_HTTP_PORT',
    'TWILIO_STANDIN_PORT',
    'SLACK_STANDIN_PORT',
  ]) {
    process.env[name] = '0'
  }
  const sandbox: Sandbox = await startSandbox({ quiet: true })
  const apiPort = await freePort()
  const env = {
    KAFKA_BROKERS: stack.brokers,
    REDIS_URL: stack.redisUrl,
    TOPIC_PARTITIONS: '6',
    SESSION_TIMEOUT_MS: '6000',
    SHUTDOWN_TIMEOUT_MS: '5000',
    RETRY_BASE_MS: '200',
    RETRY_CAP_MS: '5000',
    MAX_ATTEMPTS: '10',
    BREAKER_PROBE_MS: '1000',
    BREAKER_PROBE_MAX_MS: '4000',
    PRODUCE_TIMEOUT_MS: '3000',
    LOG_LEVEL: 'info',
    DEFAULT_EMAIL_TO: 'oncall@example.com',
    ...sandbox.env,
  }
  const faultsRun: string[] = []
  const faultsMissing: string[] = []
  /** When each fault struck: a repeated delivery is attributed to the last fault before it. */
  const marks: Array<{ fault: string; at: number }> = []
  const mark = (fault: string) => marks.push({ fault, at: Date.now() })
  const processes: ServiceProcess[] = []
  const startApi = () => {
    const p = startService('api', 'api', { ...env, PORT: String(apiPort) })
    processes.push(p)
    return p
  }
  const replicas = new Map<string, ServiceProcess>()
  const startReplica = (channel: ChannelName, n: number) => {
    const p = startService(`${channel}-${n}`, 'distributor', {
      ...env,
      CHANNEL: channel,
      METRICS_PORT: '0',
      ...(options.brokenVariant ? { HERALD_TEST_BROKEN_VARIANT: options.brokenVariant } : {}),
    })
    processes.push(p)
    replicas.set(`${channel}-${n}`, p)
    return p
  }
  let api = startApi()
  try {
    await api.waitForLog((l) => String(l.msg ?? '').startsWith('api listening'), 60_000)
    for (const channel of channels) {
      for (let n = 1; n <= (options.replicasPerChannel ?? 2); n++) startReplica(channel, n)
    }
    await Promise.all(
      [...replicas.values()].map((p) => p.waitForLog((l) => l.msg === 'claimed partition', 60_000)),
    )
    const latency = { latencyMs: options.providerLatencyMs ?? 0 }
    const twilioBase = { ...latency, ...(on('transient') ? { failRate: 0.1, status: 500 } : {}) }
    sandbox.twilio.setFaults(twilioBase)
    sandbox.slack.setFaults(latency)
    sandbox.smtp.setFaults({
      ...latency,
      ...(on('permanent')
        ? { permanentRecipients: Array.from({ length: 50 }, (_, i) => `bounce${i}@example.com`) }
        : {}),
    })

    // Load: a steady rate; each notification carries a unique token and is retried with the same key.
    const sent: Sent[] = []
    const url = `http://127.0.0.1:${apiPort}/api/v1/notification`
    const post = async (s: Sent, body: unknown) => {
      for (let attempt = 0; attempt < 200; attempt++) {
        const r = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': s.token },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(10_000),
        }).catch(() => undefined)
        if (r?.status === 202) {
          s.id = ((await r.json()) as { id: string }).id
          return
        }
        await r?.arrayBuffer().catch(() => {})
        await sleep(250)
      }
    }
    const inFlight: Array<Promise<void>> = []
    const loadDone = (async () => {
      for (let i = 0; i < options.notifications; i++) {
        const channel = channels[Math.floor(random() * 3)] as ChannelName
        const token = `chaos-${options.seed}-${i}`
        const permanent = on('permanent') && channel === 'email' && random() < 0.02
        const s: Sent = { token, channel, permanent }
        sent.push(s)
        const body =
          channel === 'email'
            ? {
                channel,
                to: permanent
                  ? `bounce${i % 50}@example.com`
                  : `user${i % (options.emailRecipients ?? 97)}@example.com`,
                message: token,
              }
            : channel === 'sms'
              ? { channel, to: `+1415555${String(1000 + (i % 89)).padStart(4, '0')}`, message: token }
              : { channel, to: i % 2 ? 'ops' : 'default', message: token }
        inFlight.push(post(s, body))
        await sleep(1000 / options.ratePerSecond)
      }
      await Promise.all(inFlight)
    })()

    // The fault schedule, spread over the load.
    const loadMs = (options.notifications / options.ratePerSecond) * 1000
    const at = (share: number) => sleep(loadMs * share)
    const schedule: Array<Promise<void>> = []
    const deliveredCount = () =>
      sandbox.smtp.messages().length + sandbox.twilio.messages().length + sandbox.slack.messages().length
    if (on('outage')) {
      schedule.push(
        (async () => {
          await at(0.15)
          mark('outage')
          sandbox.slack.setFaults({ ...latency, failRate: 1, status: 503 })
          await sleep(Math.min(60_000, loadMs * 0.3))
          sandbox.slack.setFaults(latency)
          faultsRun.push('slack outage (503)')
        })(),
      )
    }
    if (on('auth')) {
      schedule.push(
        (async () => {
          await at(0.5)
          mark('auth')
          sandbox.twilio.setFaults({ ...latency, authFail: true })
          await sleep(Math.min(30_000, loadMs * 0.15))
          sandbox.twilio.setFaults(twilioBase)
          faultsRun.push('twilio credentials rejected')
        })(),
      )
    }
    if (on('kill')) {
      schedule.push(
        (async () => {
          await at(options.killAt ?? 0.25)
          const victim = replicas.get('email-1')
          // On a condition, not a timer: some email partition's stored offset strictly inside its range while
          // deliveries are in flight.
          const kafka = new Kafka({
            clientId: 'chaos-probe',
            brokers: [stack.brokers],
            logLevel: logLevel.NOTHING,
          })
          const admin = kafka.admin()
          await admin.connect()
          const redis = createRedis(stack.redisUrl)
          await redis.connect()
          const offsetsKey = redisKeys().offsets('herald.distributor.email', 'notifications.email')
          for (let tries = 0; tries < 2000; tries++) {
            const before = deliveredCount()
            const [stored, bounds] = await Promise.all([
              redis.hgetall(offsetsKey),
              admin.fetchTopicOffsets('notifications.email'),
            ])
            const inside = bounds.some((b) => {
              const next = Number(stored[String(b.partition)] ?? -1)
              return next > Number(b.low) && next < Number(b.high)
            })
            if (inside && deliveredCount() > before) break
            await sleep(10)
          }
          await admin.disconnect()
          redis.disconnect()
          mark('kill')
          victim?.kill('SIGKILL')
          if ((await victim?.exited) === 'SIGKILL') faultsRun.push('SIGKILL email-1 mid-delivery')
          else faultsMissing.push('SIGKILL email-1')
          await sleep(2000)
          startReplica('email', 1)
        })(),
      )
    }
    if (on('term')) {
      schedule.push(
        (async () => {
          await at(0.4)
          const victim = replicas.get('sms-1')
          mark('term')
          victim?.kill('SIGTERM')
          if ((await victim?.exited) === 0) faultsRun.push('SIGTERM sms-1 (rebalance)')
          else faultsMissing.push('SIGTERM sms-1')
          await sleep(1000)
          startReplica('sms', 1)
        })(),
      )
    }
    if (on('freeze')) {
      schedule.push(
        (async () => {
          await at(0.55)
          const victim = replicas.get('slack-2')
          mark('freeze')
          victim?.kill('SIGSTOP')
          await sleep(8000)
          victim?.kill('SIGCONT')
          faultsRun.push('SIGSTOP slack-2 for 8 s (past its 6 s session)')
        })(),
      )
    }
    if (on('api')) {
      schedule.push(
        (async () => {
          await at(0.6)
          mark('api')
          api.kill('SIGKILL')
          await api.exited
          await sleep(500)
          api = startApi()
          await api.waitForLog((l) => String(l.msg ?? '').startsWith('api listening'), 60_000)
          faultsRun.push('api SIGKILL and restart while clients post')
        })(),
      )
    }
    if (on('broker')) {
      schedule.push(
        (async () => {
          await at(0.7)
          const before = kafkaPid(stack.stack.kafka)
          mark('broker')
          if (before) process.kill(before, 'SIGKILL')
          await sleep(1000)
          await stopKafka(stack.stack.kafka, 1000)
          await startKafka(stack.stack.kafka)
          const after = kafkaPid(stack.stack.kafka)
          if (after && after !== before) faultsRun.push('broker kill -9 and restart')
          else faultsMissing.push('broker restart')
        })(),
      )
    }
    if (on('redis') || on('redis-empty')) {
      schedule.push(
        (async () => {
          await at(0.8)
          const empty = on('redis-empty')
          // A sentinel written before the restart tells whether Redis really came back empty (or kept its
          // AOF): the services write new keys as soon as it is up, so counting keys would not.
          await redisCommand(stack.stack.redis.port, 'SET chaos:sentinel 1')
          await sleep(1500) // appendfsync everysec: let the AOF catch up
          mark(empty ? 'redis-empty' : 'redis')
          await stopRedis(stack.stack.redis)
          if (empty) execFileSync('rm', ['-rf', join(stack.stack.redis.dataDir, 'redis-data')])
          await startRedis(stack.stack.redis)
          const kept = (await redisCommand(stack.stack.redis.port, 'EXISTS chaos:sentinel')) === ':1'
          if (empty && kept) faultsMissing.push('Redis was to come back empty but kept its data')
          if (!empty && !kept) faultsMissing.push('Redis lost its data on a plain restart (AOF)')
          faultsRun.push(empty ? 'Redis restarted empty' : 'Redis restarted (AOF)')
        })(),
      )
    }
    await Promise.all([loadDone, ...schedule])
    const lastFault = Date.now()
    log(`load done: ${sent.filter((s) => s.id).length} accepted; draining`)

    // Drain: every accepted token delivered, or dead-lettered where a permanent fault was injected.
    const tokensSeen = () => {
      const seen = new Map<string, number>()
      const add = (t: string | undefined) => {
        const token = t && tokenOf(t)
        if (token) seen.set(token, (seen.get(token) ?? 0) + 1)
      }
      for (const m of sandbox.smtp.messages()) add(m.text)
      for (const m of sandbox.twilio.messages()) add(m.text)
      for (const m of sandbox.slack.messages()) add(m.text)
      return seen
    }
    const accepted = sent.filter((s) => s.id !== undefined)
    const expectDelivered = accepted.filter((s) => !s.permanent)
    const deadline = Date.now() + options.drainTimeoutMs
    let seen = tokensSeen()
    while (Date.now() < deadline && !expectDelivered.every((s) => seen.has(s.token))) {
      await sleep(500)
      seen = tokensSeen()
    }
    const drainSeconds = (Date.now() - lastFault) / 1000
    const lost = expectDelivered
      .filter((s) => !seen.has(s.token))
      .map((s) => `${s.id} (${s.channel} ${s.token})`)
    // A dead letter counts only when it is there, for the injected reason.
    const permanent = accepted.filter((s) => s.permanent)
    if (permanent.length > 0) {
      const kafka = new Kafka({
        clientId: 'chaos-checker',
        brokers: [stack.brokers],
        logLevel: logLevel.NOTHING,
      })
      const letters = await new DeadLetterStore(kafka, topicNames()).list('email', {
        errorClass: 'permanent',
      })
      const ids = new Set(letters.map((l) => l.id))
      for (const s of permanent)
        if (!ids.has(s.id)) lost.push(`${s.id} (email ${s.token}, not in the dead-letter topic)`)
    }
    const duplicates = [...seen.values()].reduce((sum, n) => sum + n - 1, 0)
    const duplicatesBy = attributeDuplicates(
      [
        ...sandbox.smtp.messages().map((m) => ({ channel: 'email', ...m })),
        ...sandbox.twilio.messages().map((m) => ({ channel: 'sms', ...m })),
        ...sandbox.slack.messages().map((m) => ({ channel: 'slack', ...m })),
      ],
      marks,
    )
    const report: ChaosReport = {
      accepted: accepted.length,
      delivered: expectDelivered.filter((s) => seen.has(s.token)).length,
      deadLettered: permanent.length,
      lost,
      duplicates,
      duplicatesBy,
      drainSeconds,
      faultsRun,
      faultsMissing,
      ok: lost.length === 0 && faultsMissing.length === 0 && accepted.length === options.notifications,
    }
    return report
  } finally {
    for (const p of processes) p.kill('SIGKILL')
    await Promise.all(processes.map((p) => p.exited))
    await sandbox.close()
    await stack.destroy()
  }
}

/**
 * Counts repeated deliveries (every delivery of a token after its first) by channel, and by the fault that
 * struck last before the repeat arrived ('none' when no fault had struck yet).
 */
export function attributeDuplicates(
  deliveries: Array<{ channel: string; at: string; text: string }>,
  marks: ReadonlyArray<{ fault: string; at: number }>,
): ChaosReport['duplicatesBy'] {
  const byChannel: Record<string, number> = {}
  const byFault: Record<string, number> = {}
  const seen = new Set<string>()
  const sorted = deliveries.map((d) => ({ ...d, ms: Date.parse(d.at) })).sort((a, b) => a.ms - b.ms)
  const faults = [...marks].sort((a, b) => a.at - b.at)
  for (const d of sorted) {
    const token = tokenOf(d.text)
    if (!token) continue
    if (!seen.has(token)) {
      seen.add(token)
      continue
    }
    byChannel[d.channel] = (byChannel[d.channel] ?? 0) + 1
    const cause = faults.filter((f) => f.at <= d.ms).at(-1)?.fault ?? 'none'
    byFault[cause] = (byFault[cause] ?? 0) + 1
  }
  return { channel: byChannel, fault: byFault }
}

const formatCounts = (counts: Record<string, number>) =>
  Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(', ')

export function appendReliability(options: ChaosOptions, report: ChaosReport): void {
  const file = join(repoRoot, 'docs', 'RELIABILITY.md')
  if (!existsSync(file)) {
    writeFileSync(
      file,
      '# Herald reliability runs\n\nEach section is one `npm run chaos` run (or the short run of `npm test`), appended by the harness ' +
        '(test/chaos/harness.ts). Lost must be 0.\n',
    )
  }
  let commit = 'unknown'
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot }).toString().trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', '*.ts'], {
      cwd: repoRoot,
    }).toString()
    if (dirty.trim()) commit += ' + uncommitted changes'
  } catch {}
  const pct = report.accepted > 0 ? ((100 * report.duplicates) / report.accepted).toFixed(2) : '0'
  appendFileSync(
    file,
    [
      '',
      `## ${new Date().toISOString()} — commit ${commit}${options.brokenVariant ? ` — BROKEN VARIANT ${options.brokenVariant} (negative control)` : ''}`,
      '',
      '| accepted | delivered | dead-lettered (permanent, injected) | lost | duplicate deliveries | drain after last fault |',
      '| --- | --- | --- | --- | --- | --- |',
      `| ${report.accepted} | ${report.delivered} | ${report.deadLettered} | ${report.lost.length} | ${report.duplicates} (${pct}%) | ${report.drainSeconds.toFixed(1)} s |`,
      '',
      `${options.notifications} notifications at ${options.ratePerSecond}/s, seed ${options.seed}. Faults: ${report.faultsRun.join('; ') || 'none'}.` +
        (report.faultsMissing.length ? ` MISSING: ${report.faultsMissing.join('; ')}.` : ''),
      ...(report.duplicates > 0
        ? [
            '',
            `Duplicates by channel: ${formatCounts(report.duplicatesBy.channel)}; by the last fault before the repeat: ${formatCounts(report.duplicatesBy.fault)}.`,
          ]
        : []),
      '',
    ].join('\n'),
  )
}
