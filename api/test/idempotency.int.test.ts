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
const pendingWindowMs = 400
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
  store = new IdempotencyStore(redis, keys, { pendingWindowMs, ttlSeconds: 86_400 })
})

after(async () => {
  const left = await redis.keys(`${prefix}:*`)
  if (left.length > 0) await redis.del(...left)
  redis.disconnect()
})

describe('one Idempotency-Key', () => {
  test('the first request takes it with a new id; a duplicate in flight is busy; once acked the answer is replayed', async () => {
    const first = await store.begin('ops', 'k1', 'print-a', 0, 'id-1')
    assert.equal(first.kind, 'new')
    assert.ok(first.kind === 'new' && first.id === 'id-1')
    assert.equal((await store.begin('ops', 'k1', 'print-a', 0, 'id-other')).kind, 'busy')
    const pending = await redis.ttl(keys.idempotency('ops', 'k1'))
    assert.ok(pending > 86_000, `a pending key keeps its id for a day (ttl ${pending})`)
    assert.equal(await store.ack('ops', 'k1', answer('id-1')), true)
    assert.deepEqual(await store.begin('ops', 'k1', 'print-a', 0, 'id-other'), {
      kind: 'acked',
      answer: answer('id-1'),
    })
    const ttl = await redis.ttl(keys.idempotency('ops', 'k1'))
    assert.ok(ttl > 86_000 && ttl <= 86_400, `an acked key lives for a day (ttl ${ttl})`)
  })

  test('another body with the same key is a mismatch, pending or acked', async () => {
    const first = await store.begin('ops', 'k2', 'print-a', 0, 'id-2')
    assert.equal((await store.begin('ops', 'k2', 'print-b', 0, 'id-x')).kind, 'mismatch')
    assert.ok(first.kind === 'new')
    await store.ack('ops', 'k2', answer('id-2'))
    assert.equal((await store.begin('ops', 'k2', 'print-b', 0, 'id-x')).kind, 'mismatch')
  })

  test('keys are per API key name', async () => {
    assert.equal((await store.begin('ops', 'k3', 'print-a', 0, 'id-3a')).kind, 'new')
    assert.equal((await store.begin('ci', 'k3', 'print-b', 0, 'id-3b')).kind, 'new')
  })

  test('a released key is taken over by the next request with the same id; only its holder can release it', async () => {
    const first = await store.begin('ops', 'k4', 'print-a', 0, 'id-4')
    assert.ok(first.kind === 'new')
    assert.equal(await store.release('ops', 'k4', 'someone-else'), false)
    assert.equal((await store.begin('ops', 'k4', 'print-a', 0, 'id-other')).kind, 'busy')
    assert.equal(await store.release('ops', 'k4', first.owner), true)
    const next = await store.begin('ops', 'k4', 'print-a', 0, 'id-other')
    assert.ok(next.kind === 'new', 'the next request holds the key')
    assert.equal(next.id, 'id-4', 'and writes the id the failed write carried, never a second one')
    assert.equal(await store.release('ops', 'k4', first.owner), false, 'the old holder no longer holds it')
  })

  test('a pending key of a crashed holder is taken over after the pending window with the same id; a late ack of that id counts', async () => {
    const crashed = await store.begin('ops', 'k5', 'print-a', 0, 'id-5')
    assert.ok(crashed.kind === 'new')
    await sleep(pendingWindowMs + 50)
    const next = await store.begin('ops', 'k5', 'print-a', 0, 'id-other')
    assert.ok(next.kind === 'new', 'taken over after the pending window')
    assert.equal(next.id, 'id-5')
    assert.equal(await store.release('ops', 'k5', crashed.owner), false)
    // The old write did reach Kafka after all: a record with the key's id exists, so the key is acked.
    assert.equal(await store.ack('ops', 'k5', answer('id-5')), true)
    assert.equal(await store.ack('ops', 'k5', answer('id-other')), true, 'acked already: nothing changes')
    assert.deepEqual(await store.begin('ops', 'k5', 'print-a', 0, 'id-x'), {
      kind: 'acked',
      answer: answer('id-5'),
    })
  })

  test('an ack of an id the key does not have changes nothing', async () => {
    const first = await store.begin('ops', 'k9', 'print-a', 0, 'id-9')
    assert.ok(first.kind === 'new')
    assert.equal(await store.ack('ops', 'k9', answer('id-not-mine')), false)
    assert.equal(await store.ack('ops', 'k-unknown', answer('id-9')), false)
    assert.equal((await store.begin('ops', 'k9', 'print-a', 0, 'id-x')).kind, 'busy')
  })

  test('a waiting duplicate gets the answer as soon as the holder acks, or the key when it releases', async () => {
    // Budgets far beyond the test: a waiter that missed the change would run into them and fail.
    const budget = 60_000
    const holder = await store.begin('ops', 'k6', 'print-a', 0, 'id-6')
    assert.ok(holder.kind === 'new')
    const started = performance.now()
    const waiting = store.begin('ops', 'k6', 'print-a', budget, 'id-other')
    await sleep(150)
    await store.ack('ops', 'k6', answer('id-6'))
    assert.deepEqual(await waiting, { kind: 'acked', answer: answer('id-6') })
    assert.ok(performance.now() - started < budget / 2, 'did not wait out its whole budget')

    const failing = await store.begin('ops', 'k7', 'print-a', 0, 'id-7')
    assert.ok(failing.kind === 'new')
    const taker = store.begin('ops', 'k7', 'print-a', budget, 'id-other')
    await sleep(150)
    await store.release('ops', 'k7', failing.owner)
    const taken = await taker
    assert.ok(taken.kind === 'new', 'the waiting request holds the key now, nothing was replayed')
    assert.equal(taken.id, 'id-7')
  })

  test('a duplicate waits its budget and no longer, while the holder keeps the key', async () => {
    // A holder whose window outlasts the test: the key stays pending, so only the budget ends the wait.
    const patient = new IdempotencyStore(redis, keys, { pendingWindowMs: 120_000, ttlSeconds: 60 })
    assert.equal((await patient.begin('ops', 'k8', 'print-a', 0, 'id-8')).kind, 'new')
    const budget = 200
    const started = performance.now()
    assert.equal((await patient.begin('ops', 'k8', 'print-a', budget, 'id-other')).kind, 'busy')
    const waited = performance.now() - started
    // At least the budget (the deadline is Date.now()-based: allow its 1 ms granularity); and far less
    // than the holder's window, with room for a loaded machine.
    assert.ok(waited >= budget - 5, `waited ${Math.round(waited)} ms, less than its budget`)
    assert.ok(waited < budget + 10_000, `waited ${Math.round(waited)} ms, well past its budget`)
  })
})
