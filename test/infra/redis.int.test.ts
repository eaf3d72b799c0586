import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Redis } from 'ioredis'
import { redisUrl, requireServers, uniqueName } from '../helpers.ts'

let redis: Redis

before(async () => {
  await requireServers()
  redis = new Redis(redisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1 })
  await redis.connect()
})

after(async () => {
  redis?.disconnect()
})

test('a value and a Lua script round-trip through the real Redis', async () => {
  const key = uniqueName('test:{roundtrip}')
  try {
    await redis.set(key, 'hello', 'EX', 60)
    assert.equal(await redis.get(key), 'hello')
    const result = await redis.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", 1, `${key}:n`, '41')
    assert.equal(result, 41)
  } finally {
    await redis.del(key, `${key}:n`)
  }
})

test('the local Redis keeps an append-only file synced every second and never evicts', async () => {
  const [, appendonly] = (await redis.config('GET', 'appendonly')) as string[]
  const [, fsync] = (await redis.config('GET', 'appendfsync')) as string[]
  const [, policy] = (await redis.config('GET', 'maxmemory-policy')) as string[]
  assert.deepEqual([appendonly, fsync, policy], ['yes', 'everysec', 'noeviction'])
})
