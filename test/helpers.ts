// Shared helpers for integration tests: the servers they talk to, unique names, private stacks.
import { randomUUID } from 'node:crypto'
import { rmSync } from 'node:fs'
import { createServer } from 'node:net'
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

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
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
  const dataDir = join(repoRoot, '.data', 'test', randomUUID().slice(0, 8))
  const stack = defineStack({
    dataDir,
    kafkaPort: await freePort(),
    controllerPort: await freePort(),
    redisPort: await freePort(),
    ...(kafkaOverrides ? { kafkaOverrides } : {}),
  })
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
}
