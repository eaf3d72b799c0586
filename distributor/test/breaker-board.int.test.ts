// The breaker board against a real Redis: what a replica publishes on a change and on its refresh, the
// sweep of a dead replica's fields, the removal of its own when it stops, and a Redis that does not answer
// costing a breaker nothing (changed() returns at once, however often it is called).
import assert from 'node:assert/strict'
import { before, test } from 'node:test'
import { createLogger } from '@herald/shared/logger'
import { createRedis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { testContext } from '../../test/support/context.ts'
import type { TestNamespace } from '../../test/support/fixtures.ts'
import { eventually } from '../../test/support/service-process.ts'
import { Breaker } from '../src/breaker.ts'
import { BreakerBoard, type PublishedBreaker } from '../src/breaker-board.ts'
import { DeliveryError } from '../src/channels/channel.ts'

const ctx = testContext()
const logger = createLogger({ service: 'test', level: 'silent' })
let ns: TestNamespace

before(async () => {
  await ctx.ready
  ns = ctx.namespace('breaker-board')
})

const breakerOf = (board: BreakerBoard) =>
  new Breaker({
    failureThreshold: 3,
    probeDelayMs: 60_000,
    maxProbeDelayMs: 60_000,
    onChange: () => board.changed(),
  })

async function published(key: string): Promise<Map<string, PublishedBreaker>> {
  const hash = await ctx.redis.hgetall(key)
  return new Map(Object.entries(hash).map(([field, value]) => [field, JSON.parse(value) as PublishedBreaker]))
}

test('a replica publishes its breakers on each change, sweeps dead replicas and removes its own on stop', async () => {
  const key = redisKeys(ns.prefix).breakers('slack')
  const dead: PublishedBreaker = {
    destination: 'ops',
    state: 'open',
    openUntil: new Date().toISOString(),
    reason: 'gone',
    replica: 'dead',
    expiresAt: Date.now() - 1,
  }
  await ctx.redis.hset(key, 'dead ops', JSON.stringify(dead))

  const board = new BreakerBoard({ redis: ctx.redis, key, replica: 'r1', logger, refreshMs: 200 })
  const channel = breakerOf(board)
  board.watch(null, channel)
  board.start()
  const other = new BreakerBoard({ redis: ctx.redis, key, replica: 'r2', logger, refreshMs: 60_000 })
  other.watch(null, breakerOf(other))
  other.start()
  const first = await eventually('both replicas published and the dead one swept', async () => {
    const found = await published(key)
    return found.has('r1 *') && found.has('r2 *') && !found.has('dead ops') ? found : undefined
  })
  assert.deepEqual(
    (({ destination, state, openUntil, reason, replica }) => ({
      destination,
      state,
      openUntil,
      reason,
      replica,
    }))(first.get('r1 *') as PublishedBreaker),
    { destination: null, state: 'closed', openUntil: null, reason: '', replica: 'r1' },
  )
  assert.ok((first.get('r1 *')?.expiresAt ?? 0) > Date.now(), 'an expiry ahead')
  assert.ok((await ctx.redis.pttl(key)) > 0, 'the key expires unless refreshed')

  const destination = breakerOf(board)
  board.watch('alerts', destination)
  assert.equal(
    destination.recordFailure(new DeliveryError('provider', 'SLACK_410', 'webhook revoked')),
    'opened',
  )
  const opened = await eventually('the open destination breaker published', async () => {
    const found = (await published(key)).get('r1 alerts')
    return found?.state === 'open' ? found : undefined
  })
  assert.equal(opened.reason, 'SLACK_410: webhook revoked')
  assert.equal(opened.openUntil, new Date(destination.openUntil).toISOString())

  board.stop()
  other.stop()
  await eventually('both stopped replicas removed their fields', async () =>
    (await ctx.redis.hlen(key)) === 0 ? true : undefined,
  )
})

test('a Redis that does not answer never holds a breaker change up', async () => {
  const unreachable = createRedis('redis://127.0.0.1:9', {
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
  })
  unreachable.on('error', () => {})
  const board = new BreakerBoard({
    redis: unreachable,
    key: 'unused',
    replica: 'r',
    logger,
    refreshMs: 60_000,
  })
  const breaker = breakerOf(board)
  board.watch(null, breaker)
  board.start()
  for (let i = 0; i < 1000; i++) {
    breaker.recordFailure(new DeliveryError('provider', 'DOWN', 'provider down'))
    breaker.recordSuccess()
  }
  assert.equal(breaker.state, 'closed')
  board.stop()
  unreachable.disconnect()
})
