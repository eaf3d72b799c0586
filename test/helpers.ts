// Shared helpers for integration tests: the servers they talk to, unique names, private stacks.
import { randomUUID } from 'node:crypto'
import { rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { isPortOpen, repoRoot } from '../dev/lib/process.ts'
import { defineStack, type Stack, startStack, stopStack } from '../dev/lib/stack.ts'

export const kafkaBrokers = (): string => process.env.KAFKA_BROKERS ?? '127.0.0.1:9092'
export const redisUrl = (): string => process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** A name no other test or run uses: topics, groups, key prefixes. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`
}

/** Fails with the command that starts the servers when Kafka or Redis is not reachable. */
export async function requireServers(): Promise<void> {
  const missing: string[] = []
  const kafka = kafkaBrokers().split(',')[0] ?? ''
  const kafkaPort = Number(kafka.split(':')[1])
  if (!(await isPortOpen(kafkaPort))) missing.push(`Kafka at ${kafka}`)
  const redisPort = Number(new URL(redisUrl()).port || 6379)
  if (!(await isPortOpen(redisPort))) missing.push(`Redis at ${redisUrl()}`)
  if (missing.length > 0) {
    throw new Error(
      `${missing.join(' and ')} not reachable: start them with "npm run infra:up" (npm test does it by itself)`,
    )
  }
}

/**
 * A port nothing listens on right now. Another process may take it before the caller binds it: a service
 * that can listen on port 0 and report its port is the steadier choice.
 */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1)
  return port as number
}

/** `count` different free ports: every one is held until all are found, so none is handed out twice. */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = []
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer()
      servers.push(server)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(0, '127.0.0.1', resolve)
      })
    }
    return servers.map((server) => {
      const address = server.address()
      if (typeof address !== 'object' || !address) throw new Error('no port')
      return address.port
    })
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  }
}

export interface PrivateStack {
  stack: Stack
  brokers: string
  redisUrl: string
  /** Stops both servers and deletes the data folder. */
  destroy(): Promise<void>
}

/**
 * A Kafka broker and a Redis server of the test's own, on free ports with their own data folder, for tests
 * that stop, freeze or wipe a server and must not touch the developer's stack.
 */
export async function startPrivateStack(kafkaOverrides?: Record<string, string>): Promise<PrivateStack> {
  for (let attempt = 1; ; attempt++) {
    const dataDir = join(repoRoot, '.data', 'test', randomUUID().slice(0, 8))
    const [kafkaPort, controllerPort, redisPort] = (await freePorts(3)) as [number, number, number]
    const stack = defineStack({
      dataDir,
      kafkaPort,
      controllerPort,
      redisPort,
      ...(kafkaOverrides ? { kafkaOverrides } : {}),
    })
    try {
      const up = await startStack(stack)
      return {
        stack,
        brokers: up.brokers,
        redisUrl: up.redisUrl,
        async destroy() {
          await stopStack(stack)
          rmSync(dataDir, { recursive: true, force: true })
        },
      }
    } catch (error) {
      await stopStack(stack).catch(() => {})
      rmSync(dataDir, { recursive: true, force: true })
      // Another process took one of the ports between the check and the bind: pick new ones.
      if (attempt >= 3 || !/already in use/.test(String((error as Error).message))) throw error
    }
  }
}
