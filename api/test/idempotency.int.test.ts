// The idempotency script against the real Redis: every state change of one Idempotency-Key.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createRedis, type Redis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { redisUrl, requireServers, uniqueName } from '../../test/helpers.ts'
import { IdempotencyStore, type StoredAnswer } from '../src/idempotency.ts'

const prefix = uniqueName('t-idem')
const keys = redisKeys(prefix)
const pendingTtlMs = 400
let redis: Redis
let store: IdempotencyStore

const answer = (id: string): StoredAnswer => ({
  status: 202,
  body: { id, channel: 'email', status: 'queued' },
  location: `/api/v1/notification/${id}`,
})

before(async () => {
  await requireServers()
  redis = createRedis(redisUrl())
  await redis.connect()
  store = new IdempotencyStore(redis, keys, { pendingTtlMs, ackedTtlSeconds: 86_400 })
})

after(async () => {
  const left = await redis.keys(`${prefix}:*`)
  if (left.length > 0) await redis.del(...left)
  redis.disconnect()
})

describe('one Idempotency-Key', () => {
  test('the first request takes it; a duplicate in flight is busy; once acked the answer is replayed', async () => {
    const first = await store.begin('ops', 'k1', 'print-a', 0)
    assert.equal(first.kind, 'new')
    assert.equal((await store.begin('ops', 'k1', 'print-a', 0)).kind, 'busy')
    const pttl = await redis.pttl(keys.idempotency('ops', 'k1'))
    assert.ok(pttl > 0 && pttl <= pendingTtlMs, `a pending key expires with the deadline (pttl ${pttl})`)
    assert.ok(first.kind === 'new' && (await store.ack('ops', 'k1', first.owner, 'print-a', answer('id-1'))))
    assert.deepEqual(await store.begin('ops', 'k1', 'print-a', 0), { kind: 'acked', answer: answer('id-1') })
    const ttl = await redis.ttl(keys.idempotency('ops', 'k1'))
    assert.ok(ttl > 86_000 && ttl <= 86_400, `an acked key lives for a day (ttl ${ttl})`)
  })

  test('another body with the same key is a mismatch, pending or acked', async () => {
    const first = await store.begin('ops', 'k2', 'print-a', 0)
    assert.equal((await store.begin('ops', 'k2', 'print-b', 0)).kind, 'mismatch')
    assert.ok(first.kind === 'new')
    await store.ack('ops', 'k2', first.owner, 'print-a', answer('id-2'))
    assert.equal((await store.begin('ops', 'k2', 'print-b', 0)).kind, 'mismatch')
  })

  test('keys are per API key name', async () => {
    assert.equal((await store.begin('ops', 'k3', 'print-a', 0)).kind, 'new')
    assert.equal((await store.begin('ci', 'k3', 'print-b', 0)).kind, 'new')
  })

  test('a released key is free for the next request; only its holder can release it', async () => {
    const first = await store.begin('ops', 'k4', 'print-a', 0)
    assert.ok(first.kind === 'new')
    assert.equal(await store.release('ops', 'k4', 'someone-else', 'print-a'), false)
    assert.equal((await store.begin('ops', 'k4', 'print-a', 0)).kind, 'busy')
    assert.equal(await store.release('ops', 'k4', first.owner, 'print-a'), true)
    assert.equal(await redis.exists(keys.idempotency('ops', 'k4')), 0, 'nothing left to replay')
    assert.equal((await store.begin('ops', 'k4', 'print-a', 0)).kind, 'new')
  })

  test('a pending key of a crashed holder expires and is taken over; the old holder can no longer ack', async () => {
    const crashed = await store.begin('ops', 'k5', 'print-a', 0)
    assert.ok(crashed.kind === 'new')
    await sleep(pendingTtlMs + 50)
    const next = await store.begin('ops', 'k5', 'print-a', 0)
    assert.ok(next.kind === 'new', 'taken over after the pending TTL')
    assert.equal(await store.ack('ops', 'k5', crashed.owner, 'print-a', answer('id-old')), false)
    assert.equal(await store.release('ops', 'k5', crashed.owner, 'print-a'), false)
    assert.equal(await store.ack('ops', 'k5', next.owner, 'print-a', answer('id-new')), true)
    assert.deepEqual(await store.begin('ops', 'k5', 'print-a', 0), {
      kind: 'acked',
      answer: answer('id-new'),
    })
  })

  test('a waiting duplicate gets the answer as soon as the holder acks, or the key when it releases', async () => {
    const holder = await store.begin('ops', 'k6', 'print-a', 0)
    assert.ok(holder.kind === 'new')
    const started = performance.now()
    const waiting = store.begin('ops', 'k6', 'print-a', 5000)
    await sleep(150)
    await store.ack('ops', 'k6', holder.owner, 'print-a', answer('id-6'))
    assert.deepEqual(await waiting, { kind: 'acked', answer: answer('id-6') })
    assert.ok(performance.now() - started < 1000, 'did not wait out its whole budget')

    const failing = await store.begin('ops', 'k7', 'print-a', 0)
    assert.ok(failing.kind === 'new')
    const taker = store.begin('ops', 'k7', 'print-a', 5000)
    await sleep(150)
    await store.release('ops', 'k7', failing.owner, 'print-a')
    assert.equal((await taker).kind, 'new', 'the waiting request holds the key now, nothing was replayed')
  })

  test('a duplicate waits no longer than its budget', async () => {
    assert.equal((await store.begin('ops', 'k8', 'print-a', 0)).kind, 'new')
    const started = performance.now()
    assert.equal((await store.begin('ops', 'k8', 'print-a', 200)).kind, 'busy')
    const waited = performance.now() - started
    assert.ok(waited >= 190 && waited < 400, `waited ${Math.round(waited)} ms`)
  })
})
