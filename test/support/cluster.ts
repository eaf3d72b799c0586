// Tests on the clustered stack (npm run test:cluster): the same test files, pointed at a Redis Cluster by
// REDIS_CLUSTER_NODES. A test's own client then needs KEYS and DEL across the cluster's nodes.
import type { Redis } from '@herald/shared/redis/client'
import type { Cluster } from 'ioredis'

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
