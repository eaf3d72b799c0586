// The status history against real Redis: the changeStatus script appends each applied change to the
// `history` field of the status hash, refuses to change a final status (and its history), drops the oldest
// entries beyond maxHistory and keeps the hash's TTL. Changes asked for together go to Redis in one script
// call, each with its own answer, and one that fails fails alone.
import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'
import { testContext } from '../../test/support/context.ts'
import type { TestNamespace } from '../../test/support/fixtures.ts'
import { redisKeys } from '../src/redis/keys.ts'
import { maxHistory, StatusStore } from '../src/status.ts'

const ctx = testContext()
let ns: TestNamespace
let statuses: StatusStore
const ttlSeconds = 3600

before(async () => {
  await ctx.ready
  ns = ctx.namespace('status-history')
  statuses = new StatusStore(ctx.redis, redisKeys(ns.prefix), ttlSeconds)
})

let count = 0
const newId = () => `${ns.prefix}-n${++count}`

async function view(id: string) {
  const found = await statuses.get(id)
  assert.ok(found, `a status for ${id}`)
  return found
}

describe('the status history', () => {
  test('create, retrying, delivered: three entries in order; a final status and its history stay', async () => {
    const id = newId()
    await statuses.set(id, 'queued', 'create', { channel: 'sms', attempts: 0 })
    await statuses.set(id, 'retrying', 'move', { channel: 'sms', attempts: 1, lastError: 'Twilio 503' })
    await statuses.set(id, 'delivered', 'move', { channel: 'sms', attempts: 2 })
    const delivered = await view(id)
    assert.deepEqual(
      delivered.history.map(({ at: _, ...rest }) => rest),
      [
        { status: 'queued', channel: 'sms', attempts: 0 },
        { status: 'retrying', channel: 'sms', attempts: 1, lastError: 'Twilio 503' },
        { status: 'delivered', channel: 'sms', attempts: 2 },
      ],
    )
    const times = delivered.history.map((e) => Date.parse(e.at))
    assert.ok(
      times.every((t, i) => Number.isFinite(t) && (i === 0 || t >= (times[i - 1] ?? 0))),
      `the entries are dated, oldest first: ${JSON.stringify(delivered.history)}`,
    )
    assert.equal(delivered.history[0]?.at, delivered.createdAt)
    assert.equal(delivered.history[2]?.at, delivered.updatedAt)

    assert.deepEqual(await statuses.set(id, 'retrying', 'move', { attempts: 3, lastError: 'late' }), {
      applied: false,
      status: 'delivered',
    })
    assert.deepEqual(await statuses.set(id, 'queued', 'create', { attempts: 0 }), {
      applied: false,
      status: 'delivered',
    })
    assert.deepEqual(await view(id), delivered, 'a refused change leaves the status and its history alone')
  })

  test('a requeue of a dead letter is recorded, without the error it clears', async () => {
    const id = newId()
    await statuses.set(id, 'queued', 'create', { channel: 'email', attempts: 0 })
    await statuses.set(id, 'dead_lettered', 'move', { channel: 'email', attempts: 1, lastError: '550 no' })
    await statuses.set(id, 'queued', 'requeue', { channel: 'email', attempts: 0, lastError: '' })
    await statuses.set(id, 'delivered', 'move', { channel: 'email', attempts: 1 })
    assert.deepEqual(
      (await view(id)).history.map(({ status, lastError }) => [status, lastError]),
      [
        ['queued', undefined],
        ['dead_lettered', '550 no'],
        ['queued', undefined],
        ['delivered', undefined],
      ],
    )
  })

  test('a repeat of the last change adds nothing: the entry keeps when the state began', async () => {
    const id = newId()
    await statuses.set(id, 'queued', 'create', { channel: 'sms', attempts: 0 })
    await statuses.set(id, 'throttled', 'move', { channel: 'sms', notBefore: '2026-12-01T10:00:01.000Z' })
    const first = (await view(id)).history.at(-1)
    await statuses.set(id, 'throttled', 'move', { channel: 'sms', notBefore: '2026-12-01T10:00:02.000Z' })
    const after = await view(id)
    assert.equal(after.notBefore, '2026-12-01T10:00:02.000Z', 'the change itself still applies')
    assert.deepEqual(
      after.history.map((e) => e.status),
      ['queued', 'throttled'],
    )
    assert.deepEqual(after.history.at(-1), first)
  })

  test(`keeps the last ${maxHistory} entries, oldest first, and the TTL of the hash`, async () => {
    const id = newId()
    await statuses.set(id, 'queued', 'create', { channel: 'slack', attempts: 0 })
    const retries = maxHistory + 5
    for (let attempt = 1; attempt <= retries; attempt++) {
      await statuses.set(id, 'retrying', 'move', {
        channel: 'slack',
        attempts: attempt,
        lastError: 'ratelimited',
      })
    }
    await statuses.set(id, 'delivered', 'move', { channel: 'slack', attempts: retries + 1 })
    const { history } = await view(id)
    assert.equal(history.length, maxHistory)
    assert.deepEqual(
      history.map((e) => [e.status, e.attempts]),
      [
        ...Array.from({ length: maxHistory - 1 }, (_, i) => ['retrying', retries - maxHistory + 2 + i]),
        ['delivered', retries + 1],
      ],
    )
    const ttl = await ctx.redis.ttl(redisKeys(ns.prefix).status(id))
    assert.ok(ttl > 0 && ttl <= ttlSeconds, `the hash expires within the status TTL (TTL ${ttl})`)
  })

  test('an unreadable history starts again instead of failing the change; a status without one has none', async () => {
    const id = newId()
    const key = redisKeys(ns.prefix).status(id)
    await ctx.redis.hset(key, { status: 'queued', attempts: '0', history: 'not json' })
    assert.deepEqual((await view(id)).history, [], 'an unreadable history reads as none')
    assert.equal((await statuses.set(id, 'delivered', 'move', { attempts: 1 })).applied, true)
    assert.deepEqual(
      (await view(id)).history.map((e) => [e.status, e.attempts]),
      [['delivered', 1]],
    )

    const older = newId()
    await ctx.redis.hset(redisKeys(ns.prefix).status(older), { status: 'queued', attempts: '0' })
    assert.deepEqual((await view(older)).history, [])
  })

  test('changes asked for together go in one script call, each with its own outcome, in the order asked', async () => {
    const ids = Array.from({ length: 40 }, newId)
    const delivered = ids[0] as string
    await statuses.set(delivered, 'delivered', 'move', { attempts: 1 })
    const calls = async () => {
      const stats = await ctx.redis.info('commandstats')
      return ['evalsha', 'eval'].reduce(
        (sum, name) => sum + Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0),
        0,
      )
    }
    const before = await calls()
    const results = await Promise.all([
      statuses.set(delivered, 'retrying', 'move', { attempts: 2 }),
      ...ids.slice(1).map((id) => statuses.set(id, 'queued', 'create', { channel: 'email', attempts: 0 })),
      statuses.set(ids[1] as string, 'queued', 'create', { channel: 'email', attempts: 0 }),
      statuses.set(ids[2] as string, 'delivered', 'move', { channel: 'email', attempts: 1 }),
    ])
    assert.equal((await calls()) - before, 1, 'one script call for 42 changes')
    assert.deepEqual(results[0], { applied: false, status: 'delivered' }, 'a final status stays')
    for (const r of results.slice(1, ids.length)) assert.deepEqual(r, { applied: true, status: 'queued' })
    assert.deepEqual(
      results[ids.length],
      { applied: false, status: 'queued' },
      'created once, earlier in the call',
    )
    assert.deepEqual(
      results[ids.length + 1],
      { applied: true, status: 'delivered' },
      'moved after its create',
    )
    assert.deepEqual(
      (await view(ids[2] as string)).history.map((e) => e.status),
      ['queued', 'delivered'],
    )
    assert.equal((await view(ids[39] as string)).channel, 'email')
  })

  test('a change that fails in Redis fails alone: the others of its call apply', async () => {
    const [bad, good] = [newId(), newId()]
    await ctx.redis.set(redisKeys(ns.prefix).status(bad), 'not a hash')
    const [first, second] = await Promise.allSettled([
      statuses.set(bad, 'queued', 'create', { attempts: 0 }),
      statuses.set(good, 'queued', 'create', { attempts: 0 }),
    ])
    assert.equal(first?.status, 'rejected')
    assert.match(String((first as PromiseRejectedResult).reason), /WRONGTYPE/)
    assert.deepEqual(second, { status: 'fulfilled', value: { applied: true, status: 'queued' } })
  })
})
