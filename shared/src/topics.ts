// Topic names (built here only) and the start-up check that every topic exists with Herald's settings.
import type { Admin } from 'kafkajs'
import type { Channel } from './config.ts'
import { isLocalCluster } from './config.ts'
import { HeraldError, TopicMismatchError } from './errors.ts'
import type { Logger } from './logger.ts'

const day = 24 * 60 * 60 * 1000

export interface TopicNames {
  main: (channel: Channel) => string
  deadLetter: (channel: Channel) => string
  events: string
}

export function topicNames(prefix = 'notifications'): TopicNames {
  return {
    main: (channel) => `${prefix}.${channel}`,
    deadLetter: (channel) => `${prefix}.${channel}.dlq`,
    events: `${prefix}.events`,
  }
}

export interface TopicSpec {
  topic: string
  configEntries: Array<{ name: string; value: string }>
  /** Partitions of this topic when not ensureTopics' `partitions` (configuration topics are small). */
  partitions?: number
}

/** The compacted configuration topics: `<KEY_PREFIX>.recipients` etc. (`herald.recipients` by default). */
export const configKinds = ['recipients', 'templates', 'routes'] as const
export type ConfigKind = (typeof configKinds)[number]

export function configTopicNames(keyPrefix = 'herald'): Record<ConfigKind, string> {
  return {
    recipients: `${keyPrefix}.recipients`,
    templates: `${keyPrefix}.templates`,
    routes: `${keyPrefix}.routes`,
  }
}

/**
 * Configuration topics are compacted, keyed by name, with one partition (a total order of writes and a
 * small map). A tombstone stays a day at least and compaction leaves the last day alone, so a reader that
 * lags by less than that still sees every delete and every value it has not read yet.
 */
export function configTopicSpecs(names: Record<ConfigKind, string>, replication: number): TopicSpec[] {
  const minInsync = String(replication >= 3 ? 2 : 1)
  return configKinds.map((kind) => ({
    topic: names[kind],
    partitions: 1,
    configEntries: [
      { name: 'cleanup.policy', value: 'compact' },
      { name: 'min.compaction.lag.ms', value: String(day) },
      { name: 'delete.retention.ms', value: String(day) },
      { name: 'max.message.bytes', value: String(1024 * 1024) },
      { name: 'min.insync.replicas', value: minInsync },
    ],
  }))
}

/** The alarm topics (issue 15): `<KEY_PREFIX>.alarms.registered` etc. (`herald.alarms.registered` by default). */
export const alarmTopicKinds = ['registered', 'activations', 'overrides', 'effective'] as const
export type AlarmTopicKind = (typeof alarmTopicKinds)[number]

export function alarmTopicNames(keyPrefix = 'herald'): Record<AlarmTopicKind, string> {
  return {
    registered: `${keyPrefix}.alarms.registered`,
    activations: `${keyPrefix}.alarms.activations`,
    overrides: `${keyPrefix}.alarms.overrides`,
    effective: `${keyPrefix}.alarms.effective`,
  }
}

/**
 * The alarm topics are compacted like the configuration topics (a tombstone deletes; a day before either is
 * compacted away), but with TOPIC_PARTITIONS partitions: the processors scale by partitions, and every
 * record of an alarm is written to the partition of its name on each of them (shared/src/alarms/partitioner.ts).
 */
export function alarmTopicSpecs(names: Record<AlarmTopicKind, string>, replication: number): TopicSpec[] {
  const minInsync = String(replication >= 3 ? 2 : 1)
  return alarmTopicKinds.map((kind) => ({
    topic: names[kind],
    configEntries: [
      { name: 'cleanup.policy', value: 'compact' },
      { name: 'min.compaction.lag.ms', value: String(day) },
      { name: 'delete.retention.ms', value: String(day) },
      { name: 'max.message.bytes', value: String(1024 * 1024) },
      { name: 'min.insync.replicas', value: minInsync },
    ],
  }))
}

/** Alarm events, for the router: `<KEY_PREFIX>.alarm-events` (`herald.alarm-events` by default). */
export function alarmEventTopicName(keyPrefix = 'herald'): string {
  return `${keyPrefix}.alarm-events`
}

/** Alarm events the router could not read or render: `<alarm-events topic>.dlq`, kept like dead letters. */
export function alarmEventDeadLetterTopicName(eventsTopic: string): string {
  return `${eventsTopic}.dlq`
}

/**
 * Alarm events are a queue like the main topics (not compacted: every transition counts), keyed by alarm
 * name, with TOPIC_PARTITIONS partitions so routers scale by partitions; 14 days and 1 MiB records.
 */
export function alarmEventTopicSpec(topic: string, replication: number): TopicSpec {
  return {
    topic,
    configEntries: [
      { name: 'retention.ms', value: String(14 * day) },
      { name: 'max.message.bytes', value: String(1024 * 1024) },
      { name: 'min.insync.replicas', value: String(replication >= 3 ? 2 : 1) },
      { name: 'cleanup.policy', value: 'delete' },
    ],
  }
}

/** The router's dead letters of an alarm-events topic: 90 days and 4 MiB, like the channels' dead letters. */
export function alarmEventDeadLetterTopicSpec(topic: string, replication: number): TopicSpec {
  const spec = alarmEventTopicSpec(topic, replication)
  return {
    topic,
    configEntries: spec.configEntries.map((entry) =>
      entry.name === 'retention.ms'
        ? { name: entry.name, value: String(90 * day) }
        : entry.name === 'max.message.bytes'
          ? { name: entry.name, value: String(4 * 1024 * 1024) }
          : entry,
    ),
  }
}

/** Main topics keep 14 days and 1 MiB records; dead letters keep 90 days and 4 MiB; events 7 days. */
export function topicSpecs(
  names: TopicNames,
  channels: readonly Channel[],
  replication: number,
): TopicSpec[] {
  const minInsync = String(replication >= 3 ? 2 : 1)
  const spec = (topic: string, retentionMs: number, maxBytes: number): TopicSpec => ({
    topic,
    configEntries: [
      { name: 'retention.ms', value: String(retentionMs) },
      { name: 'max.message.bytes', value: String(maxBytes) },
      { name: 'min.insync.replicas', value: minInsync },
      { name: 'cleanup.policy', value: 'delete' },
    ],
  })
  return [
    ...channels.flatMap((c) => [
      spec(names.main(c), 14 * day, 1024 * 1024),
      spec(names.deadLetter(c), 90 * day, 4 * 1024 * 1024),
    ]),
    spec(names.events, 7 * day, 1024 * 1024),
  ]
}

/**
 * Creates the missing topics with explicit partitions, replication and retention, and checks that existing
 * ones have the configured partition count (another count would move recipients between partitions).
 */
export async function ensureTopics(
  admin: Admin,
  options: {
    specs: TopicSpec[]
    partitions: number
    replication: number
    brokers: readonly string[]
    logger: Logger
  },
): Promise<void> {
  const { specs, partitions, replication, logger } = options
  if (replication < 3 && !isLocalCluster(options.brokers)) {
    logger.warn(
      { replication },
      'TOPIC_REPLICATION is below 3 on a non-local cluster: with one replica acks=all is acks=1 and a lost broker loses notifications',
    )
  }
  const existing = new Set(await admin.listTopics())
  const missing = specs.filter((s) => !existing.has(s.topic))
  if (missing.length > 0) {
    await admin.createTopics({
      // KafkaJS's own wait gives up on the first UNKNOWN_TOPIC_OR_PARTITION of a topic still being created.
      waitForLeaders: false,
      topics: missing.map((s) => ({
        topic: s.topic,
        numPartitions: s.partitions ?? partitions,
        replicationFactor: replication,
        configEntries: s.configEntries,
      })),
    })
    const created = Object.fromEntries(missing.map((s) => [s.topic, s.partitions ?? partitions]))
    logger.info({ topics: Object.keys(created), partitions: created, replication }, 'created topics')
  }
  // Existing topics too: another service may have created them a moment ago.
  await waitForLeaders(
    admin,
    specs.map((s) => s.topic),
  )
  const present = specs.filter((s) => existing.has(s.topic))
  if (present.length === 0) return
  const expected = new Map(present.map((s) => [s.topic, s.partitions ?? partitions]))
  const metadata = await admin.fetchTopicMetadata({ topics: [...expected.keys()] })
  const wrong = metadata.topics.filter((t) => t.partitions.length !== expected.get(t.name))
  if (wrong.length > 0) {
    const found = wrong.map((t) => `${t.name} has ${t.partitions.length}, not ${expected.get(t.name)}`)
    throw new TopicMismatchError(
      `topic partition count differs from TOPIC_PARTITIONS=${partitions}: ${found.join(', ')}. ` +
        'Set TOPIC_PARTITIONS to the existing count, or migrate the topics deliberately.',
      { expected: partitions, topics: Object.fromEntries(wrong.map((t) => [t.name, t.partitions.length])) },
    )
  }
}

const leaderErrors = new Set([
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'UNKNOWN_TOPIC_OR_PARTITION',
])

function isLeaderError(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) {
    if (leaderErrors.has(String((e as { type?: unknown }).type))) return true
  }
  return false
}

/**
 * Returns once every partition of the topics has a leader that answers offset requests. A topic the
 * controller just created is listed before its broker leads it: metadata and ListOffsets fail with the
 * errors above for a moment, which this waits out for at most `timeoutMs`.
 */
/**
 * On a cluster, the broker kafkajs asks for offsets may not know a just-created topic's partitions yet
 * (metadata reaches the brokers one by one): kafkajs then sends an empty ListOffsets and fails reading its
 * answer with a TypeError. That is "not listed yet"; anything else is thrown.
 */
function noOffsetsYet(error: unknown): never[] {
  if (error instanceof TypeError) return []
  throw error
}

export async function waitForLeaders(
  admin: Admin,
  topics: readonly string[],
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let reason: unknown
    try {
      const metadata = await admin.fetchTopicMetadata({ topics: [...topics] })
      const leaderless = metadata.topics.filter(
        (t) => t.partitions.length === 0 || t.partitions.some((p) => p.leader < 0),
      )
      if (leaderless.length === 0) {
        const listed = await Promise.all(
          metadata.topics.map(
            async (t) =>
              (await admin.fetchTopicOffsets(t.name).catch(noOffsetsYet)).length === t.partitions.length,
          ),
        )
        if (listed.every(Boolean)) return
        reason = 'offsets not listed for every partition'
      } else {
        reason = `no leader yet: ${leaderless.map((t) => t.name).join(', ')}`
      }
    } catch (error) {
      if (!isLeaderError(error)) throw error
      reason = error
    }
    if (Date.now() >= deadline) {
      throw new HeraldError(
        'HERALD_TOPIC_LEADERLESS',
        `partitions of ${topics.join(', ')} have no leader after ${timeoutMs} ms`,
        { retryable: true, cause: reason },
      )
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
