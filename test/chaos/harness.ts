// The chaos harness: the whole system (private Kafka and Redis, stand-ins, api, distributors per channel)
// under a steady load while a fault schedule runs, then a strict check of every accepted notification.
//   accepted      = ids in the 202 bodies the load generator got (clients retry 503s and connection errors
//                   with the same Idempotency-Key, as a careful client would)
//   settled       = every partition of every channel's main topic has its stored offset (Redis, else the
//                   offset mirrored to Kafka) at its log end: nothing below it is still owed. Only then is a
//                   missing id called lost; a group that does not get there within the bound is a stall.
//   delivered     = the stand-ins received it (email by its Herald id; SMS and Slack, whose providers carry
//                   only the text, by the token in the text, at least once per distinct id Kafka holds for it)
//   dead-lettered = its id is in the channel's dead-letter topic
//   lost          = accepted and neither delivered nor dead-lettered once settled (or never written to Kafka)
// Every fault is checked after it ran (exit signals, process ids, receipts, log lines), not just labelled.
// The run fails when an id is lost, when the group stalls, or when a scheduled fault could not be shown.
// With `cluster` the same load and checks run on a private clustered stack (three KRaft brokers, a Redis
// Cluster of three primaries with a replica each); there the restarts of the only broker and the only Redis
// give way to killing the leader broker of the busiest partition and the Redis primary of the offsets.
import { execFileSync } from 'node:child_process'
import { appendFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createRedis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { topicNames } from '@herald/shared/topics'
import { Kafka, logLevel } from 'kafkajs'
import { redisSlotOwner, waitForRedisCluster } from '../../dev/lib/cluster.ts'
import { kafkaPid, startKafka, stopKafka } from '../../dev/lib/kafka.ts'
import { isPortOpen, isRunning, pidsListeningOn, repoRoot } from '../../dev/lib/process.ts'
import { redisCommand, redisPid, startRedis } from '../../dev/lib/redis.ts'
import type { Sandbox } from '../../dev/standins/index.ts'
import { freePort, type PrivateStack, startPrivateStack } from '../helpers.ts'
import { groupCoordinator, type PrivateCluster, startPrivateCluster } from '../support/cluster.ts'
import { startTestSandbox } from '../support/fixtures.ts'
import { type PartitionBehind, readTopics, waitUntilConsumed } from '../support/offsets.ts'
import { type ServiceProcess, startService } from '../support/service-process.ts'
import { type SmtpWatch, startSmtpWatch } from './smtp-watch.ts'

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
  | 'broker-leader'
  | 'redis-primary'

/** What `--faults all` means on the single-node stack: every fault of one broker and one Redis. */
export const allFaults: readonly Fault[] = [
  'kill',
  'term',
  'freeze',
  'outage',
  'auth',
  'transient',
  'permanent',
  'api',
  'broker',
  'redis',
  'redis-empty',
]

/**
 * Faults of one broker and one Redis, skipped on a cluster (the report says why): restarting the only broker
 * or the only Redis has its counterparts in the clustered kills below, and a node restarted empty would have
 * lost its cluster membership (nodes.conf), a rebuild rather than a restart.
 */
const singleNodeFaults: Partial<Record<Fault, string>> = {
  broker: 'the restart of the only broker; on a cluster the broker-leader kill stands for it',
  redis: 'the restart of the only Redis from its AOF; on a cluster the redis-primary kill stands for it',
  'redis-empty':
    'a Redis Cluster node restarted without its data folder has lost its membership (nodes.conf): a rebuild, not a restart',
}

/**
 * Faults of the clustered stack: SIGKILL the broker leading the busiest partition, SIGKILL the Redis primary
 * of the email distributors' offsets; each is restarted once the cluster moved on.
 */
const clusterOnlyFaults: readonly Fault[] = ['broker-leader', 'redis-primary']

/** Every fault name the harness knows. */
export const knownFaults: readonly Fault[] = [...allFaults, ...clusterOnlyFaults]

/**
 * What `--faults all` means on a stack. On a cluster: every fault, the single-node ones then reported as
 * skipped (with why), so a clustered section says what it did not do.
 */
export const allFaultsOf = (cluster: boolean): readonly Fault[] => (cluster ? knownFaults : allFaults)

export interface ChaosOptions {
  notifications: number
  ratePerSecond: number
  seed: number
  faults: ReadonlySet<Fault>
  /**
   * Run on a private clustered stack (three KRaft brokers, topics with three replicas and min.insync.replicas
   * 2; a Redis Cluster of three primaries with a replica each) instead of one broker and one Redis.
   */
  cluster?: boolean
  /** A test-only broken distributor (the negative control); the only setting a control changes. */
  brokenVariant?: string
  /**
   * Upper bound on the wait, after the load and the faults, for every partition's stored offset to reach its
   * log end. Generous: reaching it is a stall, reported as such.
   */
  settleTimeoutMs: number
  /** Latency of every stand-in answer: deliveries are in flight when faults strike. */
  providerLatencyMs?: number
  /** Distinct email recipients of the steady load (default 97). */
  emailRecipients?: number
  /** When the SIGKILL fault strikes, as a share of the load's duration (default 0.25). */
  killAt?: number
  /**
   * Notifications of the burst to one mailbox that the SIGKILL fault starts with (default 20): one batch
   * request, so one record batch, delivered one after another (one recipient), with the replica killed
   * while the first is in flight and the rest of the batch not started.
   */
  burst?: number
  /** Distributor replicas per channel (default 2). */
  replicasPerChannel?: number
  log?: (line: string) => void
}

export interface ChaosReport {
  accepted: number
  delivered: number
  /** Accepted ids found in a dead-letter topic: injected permanent errors, and any other (`deadLetteredOther`). */
  deadLettered: number
  /** Dead letters of accepted ids whose recipient had no injected permanent error (not lost: replayable). */
  deadLetteredOther: string[]
  lost: string[]
  /** Partitions still behind their log end at the settle bound: a stall, not a loss. */
  stalled: string[]
  /** Accepted ids not delivered nor dead-lettered when the run stalled (not called lost: not settled). */
  unsettled: number
  duplicates: number
  /** Duplicate deliveries by channel and by the fault that struck last before the repeat arrived. */
  duplicatesBy: { channel: Record<string, number>; fault: Record<string, number> }
  /** From the end of the last fault (the last restart, the end of the last outage) to settled. */
  drainSeconds: number
  faultsRun: string[]
  faultsMissing: string[]
  /** Scheduled faults the stack has no place for (a single-node fault on a cluster, or the reverse), and why. */
  faultsSkipped: string[]
  ok: boolean
}

const channels = ['email', 'sms', 'slack'] as const
type ChannelName = (typeof channels)[number]
const burstRecipient = 'burst@example.com'

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

const timeOf = (line: Record<string, unknown>) => Date.parse(String(line.time ?? '')) || 0

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const began = Date.now()
  const say = options.log ?? (() => {})
  const log = (line: string) => say(`${((Date.now() - began) / 1000).toFixed(1)} s: ${line}`)
  const random = prng(options.seed)
  const cluster = options.cluster === true
  const skipped = [...options.faults].filter((f) =>
    cluster ? singleNodeFaults[f] !== undefined : clusterOnlyFaults.includes(f),
  )
  const faultsSkipped = skipped.map((f) =>
    cluster ? `${f} (${singleNodeFaults[f]})` : `${f} (a clustered-stack fault; run with --cluster)`,
  )
  const on = (f: Fault) => options.faults.has(f) && !skipped.includes(f)
  const servers: Servers = cluster ? await clusterServers(log) : await singleServers()
  const sandbox: Sandbox = await startTestSandbox()
  log(servers.describe)
  for (const f of faultsSkipped) log(`fault skipped: ${f}`)
  const apiPort = await freePort()
  const env = {
    ...servers.env,
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
  const ran = (what: string) => {
    faultsRun.push(what)
    log(`fault: ${what}`)
  }
  const missing = (what: string) => {
    faultsMissing.push(what)
    log(`fault MISSING: ${what}`)
  }
  /** When each fault struck: a repeated delivery is attributed to the last fault before it. */
  const marks: Array<{ fault: string; at: number }> = []
  const mark = (fault: string) => marks.push({ fault, at: Date.now() })
  /** When each fault's effect ended (restarted, back up, outage lifted): the drain runs from the last. */
  let lastFaultEnded = 0
  const ended = () => {
    lastFaultEnded = Math.max(lastFaultEnded, Date.now())
  }
  const processes: ServiceProcess[] = []
  const startApi = () => {
    const p = startService('api', 'api', { ...env, PORT: String(apiPort) })
    processes.push(p)
    return p
  }
  // Each email replica talks to the SMTP stand-in through a watch of its own, and signs its mail with its
  // name and incarnation: the stand-in's receipts tell which process sent what.
  const watches = new Map<string, SmtpWatch>()
  const incarnations = new Map<string, number>()
  const senderOf = (name: string) => `${name}.${incarnations.get(name) ?? 0}@chaos.test`
  const replicas = new Map<string, ServiceProcess>()
  const startReplica = (channel: ChannelName, n: number) => {
    const name = `${channel}-${n}`
    incarnations.set(name, (incarnations.get(name) ?? 0) + 1)
    const watch = watches.get(name)
    const p = startService(name, 'distributor', {
      ...env,
      CHANNEL: channel,
      METRICS_PORT: '0',
      ...(watch ? { SMTP_URL: `smtp://127.0.0.1:${watch.port}`, MAIL_FROM: senderOf(name) } : {}),
      ...(options.brokenVariant ? { HERALD_TEST_BROKEN_VARIANT: options.brokenVariant } : {}),
    })
    processes.push(p)
    replicas.set(name, p)
    return p
  }
  /** Log lines of every incarnation of a channel's replicas (optionally but one), from `since` on. */
  const linesOf = (channel: ChannelName, since: number, except?: ServiceProcess) =>
    processes
      .filter((p) => p.name.startsWith(`${channel}-`) && p !== except)
      .flatMap((p) => p.lines)
      .filter((l) => timeOf(l) >= since)
  const failedAttempts = (channel: ChannelName, from: number, to: number) =>
    linesOf(channel, from).filter(
      (l) => /^delivery attempt \d+ of \d+ failed/.test(String(l.msg ?? '')) && timeOf(l) <= to,
    ).length
  /**
   * Signs that a provider refused Herald: failed attempts, or the breaker probing (it opened; a rejected
   * credential opens it at the first refusal, without a failed-attempt line).
   */
  const refusals = (channel: ChannelName, since: number) =>
    linesOf(channel, since).filter((l) => {
      const msg = String(l.msg ?? '')
      return /^delivery attempt .* failed/.test(msg) || msg.startsWith('breaker half-open')
    }).length
  /**
   * A provider fault lasts at least until the channel met it (bounded): a window in which the channel
   * happened to deliver nothing (a rebalance in progress) would show nothing.
   */
  const refusedOnce = async (channel: ChannelName, since: number) => {
    for (let waited = 0; waited < 30_000 && refusals(channel, since) === 0; waited += 200) await sleep(200)
  }
  /** Waits (bounded) for another replica (or the restarted one) of `channel` to claim a partition. */
  const claimedAfter = async (channel: ChannelName, since: number, except: ServiceProcess | undefined) => {
    for (let waited = 0; waited < 60_000; waited += 200) {
      if (linesOf(channel, since, except).some((l) => l.msg === 'claimed partition')) return true
      await sleep(200)
    }
    return false
  }
  const replicasPerChannel = options.replicasPerChannel ?? 2
  for (let n = 1; n <= replicasPerChannel; n++) {
    watches.set(`email-${n}`, await startSmtpWatch({ host: '127.0.0.1', port: sandbox.smtp.port }))
  }
  let api = startApi()
  try {
    await api.waitForLog((l) => String(l.msg ?? '').startsWith('api listening'), 60_000)
    for (const channel of channels) {
      for (let n = 1; n <= replicasPerChannel; n++) startReplica(channel, n)
    }
    await Promise.all(
      [...replicas.values()].map((p) => p.waitForLog((l) => l.msg === 'claimed partition', 60_000)),
    )
    log('api and distributors up; load starts')
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
    const base = `http://127.0.0.1:${apiPort}/api/v1`
    const post = async (s: Sent, body: unknown) => {
      for (let attempt = 0; attempt < 200; attempt++) {
        const r = await fetch(`${base}/notification`, {
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
    /**
     * The burst: one batch request, so one record batch. Items not answered 202 are posted again (the
     * batch endpoint has no idempotency key: a retry after a lost answer writes a second record).
     */
    const postBurst = async (items: Sent[]) => {
      for (let attempt = 0; attempt < 200; attempt++) {
        const open = items.filter((s) => s.id === undefined)
        if (open.length === 0) return
        const r = await fetch(`${base}/notifications`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(open.map((s) => ({ channel: 'email', to: burstRecipient, message: s.token }))),
          signal: AbortSignal.timeout(10_000),
        }).catch(() => undefined)
        if (r?.status === 207) {
          const { results } = (await r.json()) as { results: Array<{ status: number; id?: string }> }
          results.forEach((result, index) => {
            const s = open[index]
            if (s && result.status === 202) s.id = result.id
          })
        } else await r?.arrayBuffer().catch(() => {})
        if (items.some((s) => s.id === undefined)) await sleep(250)
      }
    }

    // The fault schedule, spread over the load.
    const loadMs = (options.notifications / options.ratePerSecond) * 1000
    const scheduleStart = Date.now()
    const at = (share: number) => sleep(Math.max(0, scheduleStart + loadMs * share - Date.now()))
    const schedule: Array<Promise<void>> = []
    if (on('outage')) {
      schedule.push(
        (async () => {
          await at(0.15)
          const from = Date.now()
          mark('outage')
          sandbox.slack.setFaults({ ...latency, failRate: 1, status: 503 })
          await sleep(Math.min(60_000, loadMs * 0.3))
          await refusedOnce('slack', from)
          sandbox.slack.setFaults(latency)
          ended()
          const failed = refusals('slack', from)
          if (failed > 0) ran(`slack outage (503; ${failed} refusals: failed attempts, breaker probes)`)
          else missing('slack outage: no Slack delivery attempt failed during it')
        })(),
      )
    }
    if (on('auth')) {
      schedule.push(
        (async () => {
          await at(0.5)
          const from = Date.now()
          mark('auth')
          sandbox.twilio.setFaults({ ...latency, authFail: true })
          await sleep(Math.min(30_000, loadMs * 0.15))
          await refusedOnce('sms', from)
          sandbox.twilio.setFaults(twilioBase)
          ended()
          const rejected = refusals('sms', from)
          if (rejected > 0)
            ran(`twilio credentials rejected (${rejected} refusals: failed attempts, breaker probes)`)
          else missing('twilio credentials rejected: no SMS delivery attempt failed during it')
        })(),
      )
    }
    if (on('kill')) {
      schedule.push(
        (async () => {
          await at(options.killAt ?? 0.25)
          const burst: Sent[] = Array.from({ length: options.burst ?? 20 }, (_, j) => ({
            token: `chaos-${options.seed}-${options.notifications + j}`,
            channel: 'email',
            permanent: false,
          }))
          sent.push(...burst)
          // The victim is whichever email replica owns the burst's partition: killed the moment the first
          // burst message's data reached the stand-in, before the answer (the rest of the batch waits for
          // it: one recipient's messages go out one after another).
          let killedAt = 0
          const victimName = new Promise<string | undefined>((resolve) => {
            const timer = setTimeout(() => resolve(undefined), 60_000)
            for (const [name, watch] of watches) {
              watch.onDataEnd((recipient) => {
                if (recipient !== burstRecipient || killedAt > 0) return
                killedAt = Date.now()
                mark('kill')
                replicas.get(name)?.kill('SIGKILL')
                clearTimeout(timer)
                resolve(name)
              })
            }
          })
          const burstPosted = postBurst(burst)
          inFlight.push(burstPosted)
          const name = await victimName
          for (const watch of watches.values()) watch.onDataEnd(undefined)
          const victim = name ? replicas.get(name) : undefined
          if (!name || !victim) {
            missing('SIGKILL mid-delivery: no email replica started delivering the burst within 60 s')
            return
          }
          const signal = await victim.exited
          const sender = senderOf(name)
          // Proof from the stand-in: mail this process sent was answered only after it was killed.
          let inFlightAtKill = 0
          for (let waited = 0; waited <= 5000 && inFlightAtKill === 0; waited += 100) {
            await sleep(100)
            inFlightAtKill = sandbox.smtp
              .messages()
              .filter((m) => m.from === sender && Date.parse(m.at) >= killedAt).length
          }
          await sleep(2000)
          startReplica('email', Number(name.split('-')[1]))
          await replicas.get(name)?.waitForLog((l) => l.msg === 'claimed partition', 60_000)
          ended()
          if (signal === 'SIGKILL' && inFlightAtKill > 0)
            ran(
              `SIGKILL ${name} mid-delivery (${inFlightAtKill} of its messages reached the stand-in after the kill)`,
            )
          else
            missing(
              `SIGKILL ${name} mid-delivery: exit ${signal}, ${inFlightAtKill} messages in flight at the kill`,
            )
        })(),
      )
    }
    if (on('term')) {
      schedule.push(
        (async () => {
          await at(0.4)
          const victim = replicas.get('sms-1')
          const from = Date.now()
          mark('term')
          victim?.kill('SIGTERM')
          const code = await victim?.exited
          await sleep(1000)
          startReplica('sms', 1)
          const takenOver = await claimedAfter('sms', from, victim)
          ended()
          if (code === 0 && takenOver) ran('SIGTERM sms-1 (rebalance: its partitions claimed again)')
          else missing(`SIGTERM sms-1: exit ${code}, partitions claimed again: ${takenOver}`)
        })(),
      )
    }
    if (on('freeze')) {
      schedule.push(
        (async () => {
          await at(0.55)
          const victim = replicas.get('slack-2')
          const from = Date.now()
          mark('freeze')
          victim?.kill('SIGSTOP')
          await sleep(8000)
          victim?.kill('SIGCONT')
          // Past the 6 s session the group moved on: another replica claimed the frozen one's partitions.
          const takenOver = await claimedAfter('slack', from, victim)
          // Its repeats (what the frozen replica had in flight) start at that claim, seconds after the
          // SIGSTOP and often after a later fault's mark: they are the freeze's from the claim on.
          const claims = linesOf('slack', from, victim).filter((l) => l.msg === 'claimed partition')
          if (claims.length > 0) marks.push({ fault: 'freeze', at: Math.min(...claims.map(timeOf)) })
          ended()
          if (takenOver) ran('SIGSTOP slack-2 for 8 s (past its 6 s session; partitions taken over)')
          else missing('SIGSTOP slack-2: no other replica claimed its partitions')
        })(),
      )
    }
    if (on('api')) {
      schedule.push(
        (async () => {
          await at(0.6)
          mark('api')
          const victim = api
          victim.kill('SIGKILL')
          const signal = await victim.exited
          await sleep(500)
          api = startApi()
          await api.waitForLog((l) => String(l.msg ?? '').startsWith('api listening'), 60_000)
          ended()
          if (signal === 'SIGKILL') ran('api SIGKILL and restart while clients post')
          else missing(`api SIGKILL: exit ${signal}`)
        })(),
      )
    }
    const single = servers.single
    if (on('broker') && single) {
      schedule.push(
        (async () => {
          await at(0.7)
          const before = kafkaPid(single.stack.kafka)
          mark('broker')
          if (before) process.kill(before, 'SIGKILL')
          let dead = false
          for (let waited = 0; waited < 10_000 && before && !dead; waited += 50) {
            dead = !isRunning(before)
            if (!dead) await sleep(50)
          }
          await sleep(1000)
          await stopKafka(single.stack.kafka, 1000)
          await startKafka(single.stack.kafka)
          ended()
          const after = kafkaPid(single.stack.kafka)
          if (dead && after && after !== before) ran('broker SIGKILL and restart')
          else missing(`broker SIGKILL: died ${dead}, restarted ${after !== undefined}`)
        })(),
      )
    }
    // A Redis crash is a SIGKILL: what the AOF had not written by then is gone (a graceful stop would
    // flush it). "redis-empty" also deletes the data folder before the restart.
    const crashRedis = async (stack: PrivateStack, share: number, empty: boolean) => {
      await at(share)
      const port = stack.stack.redis.port
      // A sentinel tells whether Redis really came back empty (or kept its AOF): the services write new keys
      // as soon as it is up, so counting keys would not.
      await redisCommand(port, 'SET chaos:sentinel 1')
      await sleep(1500) // appendfsync everysec: the sentinel is on disk
      const before = redisPid(stack.stack.redis)
      const fault = empty ? 'redis-empty' : 'redis'
      mark(fault)
      if (before) process.kill(before, 'SIGKILL')
      let dead = false
      for (let waited = 0; waited < 10_000 && before && !dead; waited += 20) {
        dead = !isRunning(before)
        if (!dead) await sleep(20)
      }
      // A child forked for an AOF rewrite outlives the server and keeps its port: it dies with the crash too.
      for (const pid of pidsListeningOn(port)) process.kill(pid, 'SIGKILL')
      for (let waited = 0; waited < 10_000 && (await isPortOpen(port)); waited += 50) await sleep(50)
      if (empty) rmSync(join(stack.stack.redis.dataDir, 'redis-data'), { recursive: true, force: true })
      await startRedis(stack.stack.redis)
      ended()
      const kept = (await redisCommand(port, 'EXISTS chaos:sentinel')) === ':1'
      const what = empty ? 'Redis SIGKILL, restarted empty' : 'Redis SIGKILL, restarted from its AOF'
      if (!before || !dead) missing(`${what}: the process was not killed`)
      else if (empty && kept) missing(`${what}: it kept its data`)
      else if (!empty && !kept) missing(`${what}: it lost data written 1.5 s before the kill`)
      else ran(what)
    }
    if ((on('redis') || on('redis-empty')) && single) {
      schedule.push(
        (async () => {
          if (on('redis')) await crashRedis(single, 0.8, false)
          if (on('redis-empty')) await crashRedis(single, on('redis') ? 0.9 : 0.8, true)
        })(),
      )
    }
    const clustered = servers.cluster
    if (on('broker-leader') && clustered) {
      schedule.push(
        (async () => {
          await at(0.7)
          const what = await killLeaderBroker(clustered, mark)
          ended()
          if (what.ok) ran(what.text)
          else missing(what.text)
        })(),
      )
    }
    if (on('redis-primary') && clustered) {
      schedule.push(
        (async () => {
          await at(0.8)
          const what = await killRedisPrimary(clustered, mark)
          ended()
          if (what.ok) ran(what.text)
          else missing(what.text)
        })(),
      )
    }
    await Promise.all([loadDone, ...schedule])
    await Promise.all(inFlight)
    const loadEnded = Date.now()
    const accepted = sent.filter((s) => s.id !== undefined)
    log(`load done: ${accepted.length} accepted; waiting for every partition to reach its log end`)

    // Settle: every channel's group has its stored offsets at the log end of every partition.
    const kafka = new Kafka({
      clientId: 'chaos-checker',
      brokers: servers.brokers.split(','),
      logLevel: logLevel.NOTHING,
    })
    const admin = kafka.admin()
    await admin.connect()
    const redis = createRedis(servers.redisUrl, {}, servers.redisNodes)
    await redis.connect()
    const names = topicNames()
    let behind: PartitionBehind[]
    try {
      behind = await waitUntilConsumed(
        admin,
        redis,
        channels.map((c) => ({ groupId: `herald.distributor.${c}`, topic: names.main(c) })),
        { timeoutMs: options.settleTimeoutMs, intervalMs: 250 },
      )
    } finally {
      redis.disconnect()
    }
    const settledAt = Date.now()
    const stalled = behind.map((b) => `${b.topic}[${b.partition}] at ${b.next ?? 'unknown'} of ${b.logEnd}`)
    log(
      stalled.length
        ? `STALLED: ${stalled.join(', ')}`
        : `settled ${((settledAt - loadEnded) / 1000).toFixed(1)} s after the load`,
    )

    // What Kafka holds, what the dead-letter topics hold, what the stand-ins received.
    log('reading the main and dead-letter topics')
    const inKafka = new Set<string>()
    // Distinct ids per token: a retried write may put the same id in Kafka twice (delivered once: the
    // distributor skips an id already final), a retried batch item a second id (delivered twice).
    const idsPerToken = new Map<string, Set<string>>()
    const deadLettered = new Map<string, string>()
    const read = await readTopics(kafka, [
      ...channels.map((c) => names.main(c)),
      ...channels.map((c) => names.deadLetter(c)),
    ])
    const idOf = (value: string) => {
      try {
        return JSON.parse(value) as { id?: string; message?: string }
      } catch {
        return {}
      }
    }
    for (const channel of channels) {
      for (const { value } of read.get(names.main(channel)) ?? []) {
        const record = idOf(value)
        if (record.id) inKafka.add(record.id)
        const token = tokenOf(record.message ?? '')
        if (token && record.id) idsPerToken.set(token, (idsPerToken.get(token) ?? new Set()).add(record.id))
      }
      for (const { value, errorClass } of read.get(names.deadLetter(channel)) ?? []) {
        const { id } = idOf(value)
        if (id) deadLettered.set(id, errorClass)
      }
    }
    await admin.disconnect()
    const emailIds = new Map<string, number>()
    for (const m of sandbox.smtp.messages()) {
      if (m.heraldId) emailIds.set(m.heraldId, (emailIds.get(m.heraldId) ?? 0) + 1)
    }
    const seen = new Map<string, number>()
    const deliveries = [
      ...sandbox.smtp.messages().map((m) => ({ channel: 'email', ...m })),
      ...sandbox.twilio.messages().map((m) => ({ channel: 'sms', ...m })),
      ...sandbox.slack.messages().map((m) => ({ channel: 'slack', ...m })),
    ]
    for (const d of deliveries) {
      const token = tokenOf(d.text)
      if (token) seen.set(token, (seen.get(token) ?? 0) + 1)
    }
    const isDelivered = (s: Sent) =>
      s.channel === 'email'
        ? emailIds.has(s.id ?? '')
        : (seen.get(s.token) ?? 0) >= Math.max(1, idsPerToken.get(s.token)?.size ?? 1)
    const lost: string[] = []
    const deadLetteredOther: string[] = []
    let delivered = 0
    let letters = 0
    let unsettled = 0
    for (const s of accepted) {
      const what = `${s.id} (${s.channel} ${s.token})`
      const letter = deadLettered.get(s.id ?? '')
      if (!inKafka.has(s.id ?? '')) lost.push(`${what}: answered 202, not in Kafka`)
      else if (s.permanent) {
        if (letter === 'permanent') letters++
        else if (stalled.length > 0) unsettled++
        else lost.push(`${what}: injected permanent error, not in the dead-letter topic`)
      } else if (isDelivered(s)) delivered++
      else if (letter !== undefined) {
        letters++
        deadLetteredOther.push(`${what}: ${letter}`)
      } else if (stalled.length > 0) unsettled++
      else
        lost.push(
          `${what}: neither delivered nor dead-lettered (Kafka holds ${idsPerToken.get(s.token)?.size ?? 0} ids for it, the stand-in got it ${seen.get(s.token) ?? 0} times)`,
        )
    }
    const permanentInjected = accepted.filter((s) => s.permanent).length
    if (on('permanent')) {
      if (permanentInjected > 0) ran(`permanent errors for ${permanentInjected} emails`)
      else missing('permanent errors: no notification went to a bouncing recipient')
    }
    if (on('transient')) {
      const retried = failedAttempts('sms', 0, Number.POSITIVE_INFINITY)
      if (retried > 0) ran(`transient Twilio errors (${retried} SMS attempts failed and retried)`)
      else missing('transient Twilio errors: no SMS attempt failed')
    }
    const duplicates = [...seen.values()].reduce((sum, n) => sum + n - 1, 0)
    const expected = options.notifications + (on('kill') ? (options.burst ?? 20) : 0)
    return {
      accepted: accepted.length,
      delivered,
      deadLettered: letters,
      deadLetteredOther,
      lost,
      stalled,
      unsettled,
      duplicates,
      duplicatesBy: attributeDuplicates(deliveries, marks),
      drainSeconds: (settledAt - (lastFaultEnded || loadEnded)) / 1000,
      faultsRun,
      faultsMissing,
      faultsSkipped,
      ok:
        lost.length === 0 &&
        stalled.length === 0 &&
        faultsMissing.length === 0 &&
        accepted.length === expected,
    }
  } finally {
    for (const p of processes) p.kill('SIGKILL')
    await Promise.all(processes.map((p) => p.exited))
    for (const w of watches.values()) await w.close()
    await sandbox.close()
    await servers.destroy()
  }
}

/** The servers of one run: a private single-node stack, or a private clustered one. */
interface Servers {
  /** KAFKA_BROKERS, REDIS_URL (and on a cluster REDIS_CLUSTER_NODES, TOPIC_REPLICATION) of the services. */
  env: Record<string, string>
  brokers: string
  redisUrl: string
  /** The Redis Cluster's nodes (none: one Redis at redisUrl). */
  redisNodes: string[]
  describe: string
  single?: PrivateStack
  cluster?: PrivateCluster
  destroy(): Promise<void>
}

async function singleServers(): Promise<Servers> {
  const stack = await startPrivateStack()
  return {
    env: { KAFKA_BROKERS: stack.brokers, REDIS_URL: stack.redisUrl },
    brokers: stack.brokers,
    redisUrl: stack.redisUrl,
    redisNodes: [],
    describe: `private Kafka ${stack.brokers} and Redis ${stack.redisUrl} up`,
    single: stack,
    destroy: () => stack.destroy(),
  }
}

async function clusterServers(log: (line: string) => void): Promise<Servers> {
  log('starting a private clustered stack (three Kafka nodes, six Redis nodes: a minute or more)')
  const cluster = await startPrivateCluster()
  return {
    // The services create their topics with three replicas (min.insync.replicas 2 is the brokers' default).
    env: {
      KAFKA_BROKERS: cluster.brokers,
      REDIS_URL: cluster.redisUrl,
      REDIS_CLUSTER_NODES: cluster.redisNodes.join(','),
      TOPIC_REPLICATION: '3',
    },
    brokers: cluster.brokers,
    redisUrl: cluster.redisUrl,
    redisNodes: cluster.redisNodes,
    describe: `private Kafka cluster ${cluster.brokers} and Redis Cluster ${cluster.redisNodes.join(',')} up`,
    cluster,
    destroy: () => cluster.destroy(),
  }
}

/** Polls `probe` (a failed probe counts as not yet) until it returns a value, or undefined at the bound. */
async function poll<T>(probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 250) {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(intervalMs)) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
  }
  return undefined
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/**
 * SIGKILLs the broker leading the partition with the most records of the channels' main topics, waits for
 * the partition to get another leader (one of its in-sync followers), then restarts the broker. The text
 * says how long the leader took to move: the time the partition could take no write.
 */
async function killLeaderBroker(
  cluster: PrivateCluster,
  mark: (fault: string) => void,
): Promise<{ ok: boolean; text: string }> {
  const kafka = new Kafka({
    clientId: 'chaos-broker-fault',
    brokers: cluster.brokers.split(','),
    logLevel: logLevel.NOTHING,
    // While the leader is gone a request to it fails fast and the poll asks again (another broker).
    connectionTimeout: 1000,
    retry: { retries: 2, initialRetryTime: 100 },
  })
  const admin = kafka.admin()
  await admin.connect()
  try {
    const names = topicNames()
    // The busiest partition led by the broker coordinating the email distributors' group (the hard case:
    // kafkajs keeps committing to the coordinator it found, issue 20), else the busiest of all.
    const coordinator = await groupCoordinator(admin, 'herald.distributor.email')
    const partitions: Array<{ topic: string; partition: number; records: number; leader?: number }> = []
    for (const channel of channels) {
      const topic = names.main(channel)
      const [metadata] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics
      for (const { partition, high, low } of await admin.fetchTopicOffsets(topic)) {
        const leader = metadata?.partitions.find((p) => p.partitionId === partition)?.leader
        partitions.push({
          topic,
          partition,
          records: Number(high) - Number(low),
          ...(leader === undefined ? {} : { leader }),
        })
      }
    }
    partitions.sort((a, b) => b.records - a.records)
    const busiest = partitions.find((p) => p.leader === coordinator) ?? partitions[0]
    if (!busiest) return { ok: false, text: 'broker-leader SIGKILL: no partition found' }
    const { topic, partition } = busiest
    const leaderOf = async () => {
      const [metadata] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics
      return metadata?.partitions.find((p) => p.partitionId === partition)?.leader
    }
    const leader = await leaderOf()
    // clusterFromEnv numbers the nodes 1, 2, 3 in order.
    const node = leader === undefined ? undefined : cluster.stack.kafka[leader - 1]
    const before = node ? kafkaPid(node) : undefined
    if (!node || !before)
      return {
        ok: false,
        text: `broker-leader SIGKILL: leader ${leader} of ${topic}[${partition}] not running`,
      }
    mark('broker-leader')
    const killedAt = Date.now()
    process.kill(before, 'SIGKILL')
    const dead = await poll(async () => (isRunning(before) ? undefined : true), 10_000, 50)
    const moved = await poll(async () => {
      const now = await leaderOf()
      return now !== undefined && now >= 0 && now !== leader ? now : undefined
    }, 60_000)
    const movedMs = Date.now() - killedAt
    await stopKafka(node, 1000) // its pid file
    const restartFrom = Date.now()
    await startKafka(node)
    const restartedMs = Date.now() - restartFrom
    const after = kafkaPid(node)
    const role = leader === coordinator ? ", coordinator of the email distributors' group" : ''
    const where = `broker ${leader}${role}, leader of ${topic}[${partition}] (${busiest.records} records)`
    if (!dead || moved === undefined || !after || after === before)
      return {
        ok: false,
        text: `broker-leader SIGKILL of ${where}: died ${dead === true}, leader moved ${moved !== undefined}, restarted ${after !== undefined && after !== before}`,
      }
    return {
      ok: true,
      text: `SIGKILL ${where}: leadership moved to broker ${moved} ${seconds(movedMs)} after the kill; broker restarted (${seconds(restartedMs)} to serve)`,
    }
  } finally {
    await admin.disconnect()
  }
}

/** The replication role of a Redis node (master, slave), or undefined when it does not answer. */
function redisRole(port: number): string | undefined {
  try {
    return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'role'], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'pipe'],
    }).split('\n')[0]
  } catch {
    return undefined
  }
}

/**
 * SIGKILLs the Redis primary that holds the email distributors' offsets (its AOF-rewrite child too), waits
 * for Redis Cluster to promote its replica (cluster-node-timeout 5 s), then restarts the old primary, which
 * rejoins as a replica of the promoted one. Replication is asynchronous: the promoted replica may miss the
 * last offset writes, so records are delivered again (duplicates), never lost.
 */
async function killRedisPrimary(
  cluster: PrivateCluster,
  mark: (fault: string) => void,
): Promise<{ ok: boolean; text: string }> {
  const nodes = cluster.stack.redis
  const first = nodes[0]
  if (!first) return { ok: false, text: 'redis-primary SIGKILL: no Redis nodes' }
  const key = redisKeys().offsets('herald.distributor.email', topicNames().main('email'))
  const slot = Number((await redisCommand(first.port, `CLUSTER KEYSLOT ${key}`, 5000)).slice(1))
  const primary = redisSlotOwner(first.port, slot)
  const node = nodes.find((n) => `127.0.0.1:${n.port}` === primary)
  const before = node ? redisPid(node) : undefined
  if (!node || !before)
    return { ok: false, text: `redis-primary SIGKILL: primary ${primary} of slot ${slot} not running` }
  mark('redis-primary')
  const killedAt = Date.now()
  // A child forked for an AOF rewrite outlives the server and keeps its port: it dies with the crash too.
  for (const pid of new Set([before, ...pidsListeningOn(node.port)])) process.kill(pid, 'SIGKILL')
  const dead = await poll(
    async () => (isRunning(before) || (await isPortOpen(node.port)) ? undefined : true),
    10_000,
    50,
  )
  const survivors = nodes.filter((n) => n !== node)
  const promoted = await poll(async () => {
    for (const n of survivors) {
      const owner = redisSlotOwner(n.port, slot)
      if (owner !== undefined) return owner !== primary ? owner : undefined
    }
    return undefined
  }, 60_000)
  const promotedMs = Date.now() - killedAt
  const restartFrom = Date.now()
  await startRedis(node)
  const served = await waitForRedisCluster(cluster.stack, 120_000).then(
    () => true,
    () => false,
  )
  const role = await poll(async () => (redisRole(node.port) === 'slave' ? 'slave' : undefined), 60_000, 500)
  const rejoinedMs = Date.now() - restartFrom
  const where = `Redis primary ${primary} (slot ${slot}: the email distributors' offsets)`
  if (!dead || promoted === undefined || role === undefined || !served)
    return {
      ok: false,
      text: `redis-primary SIGKILL of ${where}: died ${dead === true}, replica promoted ${promoted !== undefined}, back as a replica ${role !== undefined}, every slot served ${served}`,
    }
  return {
    ok: true,
    text: `SIGKILL ${where}: replica ${promoted} promoted ${seconds(promotedMs)} after the kill; the old primary restarted and rejoined as its replica (${seconds(rejoinedMs)}, every slot served)`,
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

/** Which code ran: the short commit, and whether TypeScript files differed from it. */
function commitOf(): string {
  try {
    let commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot }).toString().trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', '*.ts'], {
      cwd: repoRoot,
    }).toString()
    if (dirty.trim()) commit += ' + uncommitted changes'
    return commit
  } catch {
    return 'unknown'
  }
}

export interface ChaosRun {
  options: ChaosOptions
  report: ChaosReport
}

/**
 * One markdown section for one or more runs of the same settings: one row per run (the run and its
 * negative control side by side), then the settings and each run's faults.
 */
export function formatSection(runs: readonly ChaosRun[], when = new Date()): string {
  const first = runs[0]
  if (!first) return ''
  const o = first.options
  const distributor = (r: ChaosRun) =>
    r.options.brokenVariant ? `BROKEN: ${r.options.brokenVariant} (negative control)` : 'correct'
  const row = ({ options, report: r }: ChaosRun) => {
    const pct = r.accepted > 0 ? ((100 * r.duplicates) / r.accepted).toFixed(2) : '0'
    const lost = r.stalled.length > 0 ? `stalled (${r.unsettled} not settled)` : String(r.lost.length)
    return `| ${distributor({ options, report: r })} | ${r.accepted} | ${r.delivered} | ${r.deadLettered} | ${lost} | ${r.duplicates} (${pct}%) | ${r.drainSeconds.toFixed(1)} s |`
  }
  const lines = [
    '',
    `## ${when.toISOString()} — commit ${commitOf()}${o.cluster ? ' — clustered stack' : ''}`,
    '',
    '| distributor | accepted | delivered | dead-lettered | lost | duplicate deliveries | drain after last fault |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...runs.map(row),
    '',
    `${o.notifications} notifications at ${o.ratePerSecond}/s, seed ${o.seed}, provider latency ${o.providerLatencyMs ?? 0} ms, ` +
      `${o.replicasPerChannel ?? 2} replicas per channel${o.faults.has('kill') ? `, a burst of ${o.burst ?? 20} to one mailbox at the kill` : ''}` +
      (o.cluster
        ? '; on a private clustered stack: three KRaft brokers (topics with three replicas, min.insync.replicas 2, acks=all) and a Redis Cluster of three primaries with a replica each (cluster-node-timeout 5 s).'
        : '.'),
  ]
  for (const { options, report: r } of runs) {
    const who = runs.length > 1 ? `${distributor({ options, report: r })}: ` : ''
    lines.push(
      '',
      `${who}Faults: ${r.faultsRun.join('; ') || 'none'}.` +
        (r.faultsMissing.length ? ` MISSING: ${r.faultsMissing.join('; ')}.` : '') +
        (r.faultsSkipped.length ? ` Skipped: ${r.faultsSkipped.join('; ')}.` : '') +
        (r.stalled.length ? ` STALLED: ${r.stalled.join(', ')}.` : '') +
        (r.deadLetteredOther.length
          ? ` Dead-lettered without an injected error: ${r.deadLetteredOther.length}.`
          : ''),
    )
    if (r.duplicates > 0)
      lines.push(
        '',
        `${who}Duplicates by channel: ${formatCounts(r.duplicatesBy.channel)}; by the last fault before the repeat: ${formatCounts(r.duplicatesBy.fault)}.`,
      )
  }
  lines.push('')
  return lines.join('\n')
}

/** Appends a section to a markdown file (docs/RELIABILITY.md only when a run is asked to record). */
export function appendSection(file: string, section: string): void {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(file, '# Herald chaos runs\n')
  }
  appendFileSync(file, section)
}

export const reliabilityDoc = join(repoRoot, 'docs', 'RELIABILITY.md')
