import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { createRedis, type Redis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { OffsetStore } from '../../shared/src/offsets/offsets.ts'
import { redisUrl, requireServers, uniqueName } from '../helpers.ts'

let redis: Redis
const prefix = uniqueName('test-offsets')
const keys = redisKeys(prefix)

before(async () => {
  await requireServers()
  redis = createRedis(redisUrl())
  await redis.connect()
})

after(async () => {
  const found = await redis.keys(`${prefix}:*`)
  if (found.length > 0) await redis.del(...found)
  redis.disconnect()
})

test('a claim issues a higher token each time and returns the stored next offset', async () => {
  const store = new OffsetStore(redis, keys, 'g', uniqueName('t'))
  const [first] = await store.claim([0], 'a')
  assert.equal(first?.next, undefined, 'nothing stored yet')
  assert.equal((await store.advance(0, first?.token ?? 0, 42)).status, 'written')
  const [second] = await store.claim([0], 'b')
  assert.ok((second?.token ?? 0) > (first?.token ?? 0))
  assert.equal(second?.next, 42)
})

test('an advance writes only a higher offset', async () => {
  const store = new OffsetStore(redis, keys, 'g', uniqueName('t'))
  const [claim] = await store.claim([3], 'a')
  const token = claim?.token ?? 0
  assert.equal((await store.advance(3, token, 10)).status, 'written')
  assert.deepEqual(await store.advance(3, token, 7), { status: 'not-higher', stored: 10 })
  assert.deepEqual(await store.advance(3, token, 10), { status: 'not-higher', stored: 10 })
  assert.equal((await store.read()).get(3), 10)
})

test('an advance with a superseded token is refused and changes nothing', async () => {
  const store = new OffsetStore(redis, keys, 'g', uniqueName('t'))
  const [zombie] = await store.claim([1], 'zombie')
  const [owner] = await store.claim([1], 'owner')
  assert.equal((await store.advance(1, owner?.token ?? 0, 5)).status, 'written')
  assert.deepEqual(await store.advance(1, zombie?.token ?? 0, 9), { status: 'fenced', stored: 5 })
  assert.equal((await store.read()).get(1), 5)
})

test('an advance after Redis lost the claim asks for a new claim', async () => {
  const topic = uniqueName('t')
  const store = new OffsetStore(redis, keys, 'g', topic)
  const [claim] = await store.claim([0], 'a')
  await redis.del(keys.offsets('g', topic))
  assert.deepEqual(await store.advance(0, claim?.token ?? 0, 3), {
    status: 'token-missing',
    stored: undefined,
  })
})

test('a reset may move next lower, for the current token only', async () => {
  const store = new OffsetStore(redis, keys, 'g', uniqueName('t'))
  const [claim] = await store.claim([0], 'a')
  await store.advance(0, claim?.token ?? 0, 100)
  assert.equal((await store.advance(0, (claim?.token ?? 0) + 1, 2, 'reset')).status, 'fenced')
  assert.deepEqual(await store.advance(0, claim?.token ?? 0, 2, 'reset'), { status: 'written', next: 2 })
})
