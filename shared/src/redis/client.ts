// Redis connections and Herald's Lua scripts. Every multi-step change is one script, registered with
// ioredis defineCommand; a script named `name-<numKeys>.lua` becomes the command `name`.
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { type ChainableCommander, Cluster, Redis, type RedisOptions } from 'ioredis'
import type { Logger } from '../logger.ts'

export type { Redis }

const retryDelay = (times: number) => Math.min(times * 200, 2000)

/**
 * A client of one Redis server at `url`, or with `clusterNodes` (host:port, e.g. from REDIS_CLUSTER_NODES) a
 * Redis Cluster client; credentials and TLS then come from `url`. Both are typed as Redis: the Cluster
 * client has every command Herald calls, defineCommand, pipelines (within one slot: each script's keys
 * share a hash tag), status, connect and quit.
 */
export function createRedis(
  url: string,
  options: RedisOptions = {},
  clusterNodes: readonly string[] = [],
): Redis {
  const base: RedisOptions = {
    maxRetriesPerRequest: 2,
    connectTimeout: 2000,
    retryStrategy: retryDelay,
    ...options,
  }
  if (clusterNodes.length === 0) {
    return new Redis(url, { lazyConnect: true, enableAutoPipelining: true, ...base })
  }
  const { username, password, protocol } = new URL(url)
  const cluster = new Cluster(
    clusterNodes.map((node) => {
      const at = node.lastIndexOf(':')
      return { host: node.slice(0, at), port: Number(node.slice(at + 1)) }
    }),
    {
      lazyConnect: true,
      // Off on a cluster: ioredis batches automatic pipelines per node, not per slot, and while a failover
      // moves slots such a batch fails with the MOVED replies instead of following them (ioredis issue
      // 2075; seen in the distributors' logs when a primary was killed). Without it a command follows
      // redirections until the promoted replica serves the slot, or fails after maxRedirections.
      enableAutoPipelining: false,
      enableOfflineQueue: options.enableOfflineQueue ?? true,
      clusterRetryStrategy: retryDelay,
      redisOptions: {
        ...base,
        ...(username ? { username: decodeURIComponent(username) } : {}),
        ...(password ? { password: decodeURIComponent(password) } : {}),
        ...(protocol === 'rediss:' ? { tls: {} } : {}),
      },
    },
  )
  return cluster as unknown as Redis
}

/** Scripts whose callers pass any number of keys (`<name>-n.lua`): callScript sends the count first. */
const variableKeys = new Set<string>()

/**
 * Registers every `<name>-<numKeys>.lua` file of `dir` (a file URL) as a command; returns their names.
 * `<name>-n.lua` takes any number of keys.
 */
export function defineScripts(redis: Redis, dir: URL): string[] {
  const names: string[] = []
  for (const file of readdirSync(fileURLToPath(dir))) {
    const match = /^(\w+)-(\d+|n)\.lua$/.exec(file)
    if (!match?.[1] || !match[2]) continue
    const lua = readFileSync(new URL(file, dir), 'utf8')
    // A script named like an ioredis method would replace it (e.g. `setStatus` breaks connecting).
    const existing = (redis as unknown as Record<string, unknown>)[match[1]]
    const ours =
      (redis as unknown as { scriptsSet?: Record<string, unknown> }).scriptsSet?.[match[1]] !== undefined
    if (existing !== undefined && !ours)
      throw new Error(`Redis script ${file} would shadow the ioredis method ${match[1]}`)
    if (match[2] === 'n') {
      variableKeys.add(match[1])
      redis.defineCommand(match[1], { lua })
    } else redis.defineCommand(match[1], { numberOfKeys: Number(match[2]), lua })
    names.push(match[1])
  }
  return names
}

type ScriptTarget = Redis | ChainableCommander
type ScriptFunction = (...args: Array<string | number>) => Promise<unknown>

/** Calls a script registered by defineScripts, on a connection or in a pipeline. */
export function callScript(
  target: ScriptTarget,
  name: string,
  keys: readonly string[],
  args: ReadonlyArray<string | number>,
): Promise<unknown> {
  const fn = (target as unknown as Record<string, ScriptFunction | undefined>)[name]
  if (typeof fn !== 'function') throw new Error(`Redis script ${name} is not defined on this connection`)
  if (variableKeys.has(name)) return fn.call(target, keys.length, ...keys, ...args)
  return fn.call(target, ...keys, ...args)
}

export const sharedScripts = new URL('./scripts/', import.meta.url)

/**
 * Checks the settings Herald's guarantees rest on: AOF on (appendfsync everysec or always) and noeviction.
 * Warns loudly when they are off; returns what was found. CONFIG may be disabled on managed Redis.
 */
export async function checkRedisDurability(
  redis: Redis,
  logger: Logger,
): Promise<{ appendonly?: string; appendfsync?: string; policy?: string }> {
  try {
    const [, appendonly] = (await redis.config('GET', 'appendonly')) as string[]
    const [, appendfsync] = (await redis.config('GET', 'appendfsync')) as string[]
    const [, policy] = (await redis.config('GET', 'maxmemory-policy')) as string[]
    if (appendonly !== 'yes' || appendfsync === 'no') {
      logger.warn(
        { appendonly, appendfsync },
        'REDIS DURABILITY: AOF is off; a Redis restart loses offsets and statuses. Run Redis with appendonly yes, appendfsync everysec',
      )
    }
    if (policy !== 'noeviction') {
      logger.warn(
        { policy },
        'REDIS DURABILITY: maxmemory-policy is not noeviction; Redis may evict offsets under memory pressure',
      )
    }
    return {
      ...(appendonly ? { appendonly } : {}),
      ...(appendfsync ? { appendfsync } : {}),
      ...(policy ? { policy } : {}),
    }
  } catch (error) {
    logger.warn(
      { err: error },
      'could not read the Redis configuration (CONFIG GET refused?): check AOF and noeviction yourself',
    )
    return {}
  }
}
