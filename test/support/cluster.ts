// Tests on the clustered stack (npm run test:cluster): the same test files, pointed at a Redis Cluster by
// REDIS_CLUSTER_NODES. A test's own client then needs KEYS and DEL across the cluster's nodes.
import { randomUUID } from 'node:crypto'
import { rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import type { Redis } from '@herald/shared/redis/client'
import type { Cluster } from 'ioredis'
import type { Admin } from 'kafkajs'
import { type ClusterStack, clusterFromEnv, startCluster } from '../../dev/lib/cluster.ts'
import { stopKafka } from '../../dev/lib/kafka.ts'
import { pidsListeningOn, repoRoot } from '../../dev/lib/process.ts'
import { stopRedis } from '../../dev/lib/redis.ts'

/** Seed nodes of the Redis Cluster the tests use (REDIS_CLUSTER_NODES), or none: a single Redis. */
export const redisClusterNodes = (): string[] =>
  (process.env.REDIS_CLUSTER_NODES ?? '')
    .split(',')
    .map((node) => node.trim())
    .filter(Boolean)

/**
 * Gives a Cluster client the KEYS and DEL a single server has: KEYS asks every primary, DEL deletes each key
 * on its own (keys of several slots in one DEL are refused). Tests use them to find or wipe a namespace.
 */
export function spanNodes(redis: Redis): Redis {
  const cluster = redis as unknown as Cluster
  const del = cluster.del.bind(cluster) as (key: string) => Promise<number>
  const spanning = {
    keys: async (pattern: string) =>
      (await Promise.all(cluster.nodes('master').map((node) => node.keys(pattern)))).flat(),
    del: async (...keys: Array<string | string[]>) =>
      (await Promise.all(keys.flat().map((key) => del(key)))).reduce((a, b) => a + b, 0),
  }
  return Object.assign(redis, spanning)
}

/** A clustered stack of a test's own (startPrivateCluster): its own ports and data folder. */
export interface PrivateCluster {
  stack: ClusterStack
  /** KAFKA_BROKERS: the three brokers, comma-separated. */
  brokers: string
  /** REDIS_CLUSTER_NODES: the six nodes. */
  redisNodes: string[]
  /** REDIS_URL beside the nodes (the services take credentials and TLS from it): the first node. */
  redisUrl: string
  /** Stops every node (no grace: the data is thrown away) and deletes the data folder. */
  destroy(): Promise<void>
}

/** Whether nothing listens on `port` of 127.0.0.1 right now (a bind succeeds). */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/**
 * A base port in [from, to) such that base + each offset is free. The cluster's ports are fixed offsets of
 * a base (clusterFromEnv), so one free port each would not do. The ranges callers pass stay below Linux's
 * ephemeral ports (32768 on), where connections of other processes would take them.
 */
async function freeBlock(offsets: readonly number[], from: number, to: number): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = from + Math.floor(Math.random() * (to - from))
    if ((await Promise.all(offsets.map((o) => canBind(base + o)))).every(Boolean)) return base
  }
  throw new Error(`no free block of ports ${offsets.join(', ')} above a base in ${from}-${to}`)
}

/**
 * Three KRaft brokers and a Redis Cluster of three primaries with a replica each (dev/lib/cluster.ts), on
 * free ports and in a data folder of their own, for runs that kill nodes and must not touch the
 * developer's stacks (single-node or clustered). Three JVMs on a small machine: a minute or more.
 */
export async function startPrivateCluster(log: (line: string) => void = () => {}): Promise<PrivateCluster> {
  for (let attempt = 1; ; attempt++) {
    const dataDir = join(repoRoot, '.data', 'test', `cluster-${randomUUID().slice(0, 8)}`)
    // Kafka: brokers on base..base+2, controllers 100 above. Redis: nodes on base..base+5 and their cluster
    // bus 10000 above. Disjoint ranges, so the two blocks cannot overlap.
    const kafkaPort = await freeBlock([0, 1, 2, 100, 101, 102], 28_000, 32_500)
    const redisPort = await freeBlock(
      [0, 1, 2, 3, 4, 5, 10_000, 10_001, 10_002, 10_003, 10_004, 10_005],
      12_000,
      17_000,
    )
    const stack = clusterFromEnv({
      HERALD_CLUSTER_DATA_DIR: dataDir,
      HERALD_CLUSTER_KAFKA_PORT: String(kafkaPort),
      HERALD_CLUSTER_REDIS_PORT: String(redisPort),
    })
    const destroy = async () => {
      await Promise.all([
        ...stack.kafka.map((node) => stopKafka(node, 0)),
        ...stack.redis.map((node) => stopRedis(node, 0)),
      ])
      // A child forked for an AOF rewrite outlives its server and keeps the port.
      for (const node of stack.redis)
        for (const pid of pidsListeningOn(node.port)) process.kill(pid, 'SIGKILL')
      rmSync(dataDir, { recursive: true, force: true })
    }
    try {
      const up = await startCluster(stack, log)
      const redisNodes = up.redisNodes.split(',')
      return { stack, brokers: up.brokers, redisNodes, redisUrl: `redis://${redisNodes[0]}`, destroy }
    } catch (error) {
      // startCluster stopped what it started.
      rmSync(dataDir, { recursive: true, force: true })
      // Another process took one of the ports between the check and the bind: pick new ones.
      if (attempt >= 3 || !/already in use/.test(String((error as Error).message))) throw error
    }
  }
}

/** Java's String.hashCode, as Kafka computes it for a group id. */
function javaHashCode(text: string): number {
  let hash = 0
  for (let i = 0; i < text.length; i++) hash = (Math.imul(31, hash) + text.charCodeAt(i)) | 0
  return hash
}

/**
 * The broker coordinating `groupId`: the leader of its __consumer_offsets partition (Kafka's partitionFor).
 * Killing it is the hard case of a broker failover (issue 20): kafkajs keeps sending the group's heartbeats
 * and commits to the coordinator it found at join time.
 */
export async function groupCoordinator(admin: Admin, groupId: string): Promise<number | undefined> {
  const [offsets] = (await admin.fetchTopicMetadata({ topics: ['__consumer_offsets'] })).topics
  const count = offsets?.partitions.length ?? 0
  if (count === 0) return undefined
  const hash = javaHashCode(groupId)
  const partition = (hash === -2147483648 ? 0 : Math.abs(hash)) % count
  return offsets?.partitions.find((p) => p.partitionId === partition)?.leader
}
