// The clustered local stack: three KRaft Kafka nodes (each controller and broker) and a Redis Cluster of
// three primaries with one replica each, on their own ports and data folders under .data/cluster/.
// It lives beside the single-node stack (9092/6379) and never touches it.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import {
  type KafkaInstance,
  kafkaPid,
  newClusterId,
  type StartResult,
  startKafka,
  stopKafka,
} from './kafka.ts'
import { repoRoot, waitFor } from './process.ts'
import { type RedisInstance, redisPid, startRedis, stopRedis } from './redis.ts'

export interface ClusterStack {
  dataDir: string
  kafka: KafkaInstance[]
  redis: RedisInstance[]
}

export interface ClusterUp {
  /** Comma-separated host:port of the three brokers (KAFKA_BROKERS). */
  brokers: string
  /** Comma-separated host:port of the six Redis nodes (REDIS_CLUSTER_NODES). */
  redisNodes: string
  /** What this call started (false = every node was already running). */
  startedKafka: boolean
  startedRedis: boolean
}

const kafkaNodes = 3
const redisNodes = 6

function portFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const port = Number(raw)
  if (!Number.isInteger(port) || port < 1 || port > 65000)
    throw new Error(`${name} must be a TCP port, got "${raw}"`)
  return port
}

/**
 * HERALD_CLUSTER_KAFKA_PORT (19092: brokers on 19092-19094, controllers 100 above), HERALD_CLUSTER_REDIS_PORT
 * (17001: nodes on 17001-17006), HERALD_CLUSTER_DATA_DIR (.data/cluster).
 */
export function clusterFromEnv(env: NodeJS.ProcessEnv = process.env): ClusterStack {
  const dataDir = env.HERALD_CLUSTER_DATA_DIR
    ? resolve(env.HERALD_CLUSTER_DATA_DIR)
    : join(repoRoot, '.data', 'cluster')
  const kafkaPort = portFrom(env, 'HERALD_CLUSTER_KAFKA_PORT', 19092)
  const redisPort = portFrom(env, 'HERALD_CLUSTER_REDIS_PORT', 17001)
  const nodeIds = Array.from({ length: kafkaNodes }, (_, i) => i + 1)
  const voters = nodeIds.map((id) => `${id}@127.0.0.1:${kafkaPort + 100 + id - 1}`).join(',')
  const clusterId = kafkaClusterId(dataDir)
  return {
    dataDir,
    kafka: nodeIds.map((id) => ({
      port: kafkaPort + id - 1,
      controllerPort: kafkaPort + 100 + id - 1,
      dataDir: join(dataDir, `kafka-${id}`),
      clusterId,
      overrides: {
        'node.id': String(id),
        'controller.quorum.voters': voters,
        // Three copies of everything, and a write acknowledged by acks=all is on at least two of them.
        'offsets.topic.replication.factor': '3',
        'offsets.topic.num.partitions': '3',
        'transaction.state.log.replication.factor': '3',
        'transaction.state.log.min.isr': '2',
        'default.replication.factor': '3',
        'min.insync.replicas': '2',
        'unclean.leader.election.enable': 'false',
        // Three JVMs on a small machine: fewer threads each.
        'num.network.threads': '1',
        'num.io.threads': '2',
        'num.replica.fetchers': '1',
      },
    })),
    redis: Array.from({ length: redisNodes }, (_, i) => ({
      port: redisPort + i,
      dataDir: join(dataDir, `redis-${redisPort + i}`),
      extraArgs: [
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        // A primary unreachable this long is failed over to its replica.
        '--cluster-node-timeout',
        '5000',
      ],
    })),
  }
}

/** The cluster's KRaft id, kept in the data folder so a restarted node joins the same cluster. */
function kafkaClusterId(dataDir: string): string {
  const file = join(dataDir, 'kafka-cluster-id')
  if (existsSync(file)) return readFileSync(file, 'utf8').trim()
  const id = newClusterId()
  mkdirSync(dataDir, { recursive: true })
  writeFileSync(file, `${id}\n`)
  return id
}

function redisCli(args: string[], timeoutMs = 30_000): string {
  return execFileSync('redis-cli', args, {
    encoding: 'utf8',
    timeout: timeoutMs,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

/** CLUSTER INFO of one node as a map (empty when the node does not answer). */
export function redisClusterInfo(port: number): Map<string, string> {
  try {
    const text = redisCli(['-h', '127.0.0.1', '-p', String(port), 'cluster', 'info'], 5000)
    return new Map(
      text
        .split(/\r?\n/)
        .map((line) => line.split(':') as [string, string])
        .filter(([k, v]) => k && v !== undefined)
        .map(([k, v]) => [k, v.trim()]),
    )
  } catch {
    return new Map()
  }
}

/** host:port of the primary serving `slot`, as the node on `port` sees it (undefined when it does not answer). */
export function redisSlotOwner(port: number, slot: number): string | undefined {
  let text = ''
  try {
    text = redisCli(['-h', '127.0.0.1', '-p', String(port), 'cluster', 'nodes'], 5000)
  } catch {
    return undefined
  }
  for (const line of text.split('\n')) {
    const [, address, flags, , , , , , ...ranges] = line.trim().split(' ')
    if (!address || !flags?.includes('master') || flags.includes('fail')) continue
    const serves = ranges.some((range) => {
      const [from, to = from] = range.split('-').map(Number)
      return from !== undefined && to !== undefined && slot >= from && slot <= to
    })
    if (serves) return address.split('@')[0]
  }
  return undefined
}

/** Every node sees all six nodes and all 16384 slots served. */
function redisClusterOk(stack: ClusterStack): boolean {
  return stack.redis.every((node) => {
    const info = redisClusterInfo(node.port)
    return (
      info.get('cluster_state') === 'ok' &&
      info.get('cluster_slots_ok') === '16384' &&
      info.get('cluster_known_nodes') === String(stack.redis.length)
    )
  })
}

async function startRedisCluster(stack: ClusterStack, log: (line: string) => void): Promise<boolean> {
  const started = await Promise.all(stack.redis.map((node) => startRedis(node, () => {})))
  const startedAny = started.some((s) => !s.reused)
  if (startedAny) log(`Redis nodes started on ${stack.redis.map((n) => n.port).join(', ')}`)
  const first = stack.redis[0]
  if (!first) throw new Error('no Redis nodes')
  if (redisClusterInfo(first.port).get('cluster_slots_assigned') !== '16384') {
    log('creating the Redis Cluster (three primaries, one replica each)')
    redisCli(
      [
        '--cluster',
        'create',
        ...stack.redis.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ],
      60_000,
    )
  }
  await waitForRedisCluster(stack)
  return startedAny
}

/** Waits until every node of the Redis Cluster sees all nodes and every slot served (after a failover too). */
export function waitForRedisCluster(stack: ClusterStack, timeoutMs = 60_000): Promise<void> {
  return waitFor('Redis Cluster', async () => redisClusterOk(stack), { timeoutMs, intervalMs: 500 })
}

/** Starts (or reuses) both clusters; returns once Kafka takes acks=all writes and Redis serves every slot. */
export async function startCluster(
  stack: ClusterStack,
  log: (line: string) => void = () => {},
): Promise<ClusterUp> {
  const [redis, kafka] = await Promise.allSettled([
    startRedisCluster(stack, log),
    // The nodes wait for each other (a controller quorum needs two): they start together. Three JVMs on
    // two cores take a while.
    Promise.all(stack.kafka.map((node) => startKafka(node, log))) as Promise<StartResult[]>,
  ])
  if (redis.status === 'rejected' || kafka.status === 'rejected') {
    await stopCluster(stack)
    const reasons = [redis, kafka].flatMap((r) =>
      r.status === 'rejected' ? [String(r.reason?.message ?? r.reason)] : [],
    )
    throw new Error(reasons.join('\n'))
  }
  return {
    brokers: stack.kafka.map((n) => `127.0.0.1:${n.port}`).join(','),
    redisNodes: stack.redis.map((n) => `127.0.0.1:${n.port}`).join(','),
    startedKafka: kafka.value.some((r) => !r.reused),
    startedRedis: redis.value,
  }
}

export async function stopCluster(stack: ClusterStack): Promise<string[]> {
  const kafka = await Promise.all(stack.kafka.map((node) => stopKafka(node, 20_000)))
  const redis = await Promise.all(stack.redis.map((node) => stopRedis(node)))
  return [
    ...kafka.map((how, i) => `Kafka node ${i + 1} (port ${stack.kafka[i]?.port}): ${how}`),
    ...redis.map((how, i) => `Redis node ${stack.redis[i]?.port}: ${how}`),
  ]
}

export function clusterStatus(stack: ClusterStack): string[] {
  return [
    ...stack.kafka.map((node, i) => {
      const pid = kafkaPid(node)
      return `Kafka node ${i + 1}: ${pid ? `running (pid ${pid}, port ${node.port})` : 'not running'}`
    }),
    ...stack.redis.map((node) => {
      const pid = redisPid(node)
      return `Redis node ${node.port}: ${pid ? `running (pid ${pid})` : 'not running'}`
    }),
  ]
}
