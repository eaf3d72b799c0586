// Redis outages under load (issues 12 item 5 and 19): what a distributor finished while Redis was
// unreachable is held and recorded once Redis is back, so an outage costs at most the deliveries in flight
// at a crash, not everything delivered meanwhile; and a dead letter is written once. Each test runs its own
// redis-server (SIGKILLed and restarted from its AOF) beside the shared broker.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { createRedis, defineScripts, type Redis, sharedScripts } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { StatusStore } from '@herald/shared/status'
import { isPortOpen, pidsListeningOn, repoRoot } from '../../dev/lib/process.ts'
import { type RedisInstance, redisPid, startRedis, stopRedis } from '../../dev/lib/redis.ts'
import { freePort } from '../helpers.ts'
import { testContext } from '../support/context.ts'
import { countBy, emailRecord, produceRecords, type TestNamespace, watermarks } from '../support/fixtures.ts'
import { channelGroup, storedOffsets } from '../support/offsets.ts'
import { eventually } from '../support/service-process.ts'

const ctx = testContext({ sandbox: true })
const { setup, distributor, claimed } = ctx
const servers: RedisInstance[] = []
ctx.teardown(async () => {
  for (const server of servers) {
    await stopRedis(server, 2000)
    rmSync(server.dataDir, { recursive: true, force: true })
  }
})

/** A redis-server of the test's own (AOF everysec, like production), and a client that rides out its crashes. */
async function privateRedis(): Promise<{ server: RedisInstance; url: string; client: Redis }> {
  const server = {
    port: await freePort(),
    dataDir: join(repoRoot, '.data', 'test', `redis-${randomUUID().slice(0, 8)}`),
  }
  servers.push(server)
  const { url } = await startRedis(server)
  const client = createRedis(url, { maxRetriesPerRequest: null })
  client.on('error', () => {})
  defineScripts(client, sharedScripts)
  await client.connect()
  return { server, url, client }
}

/** SIGKILL: what the AOF had not written is gone; no graceful flush. */
async function crash(server: RedisInstance): Promise<void> {
  const pid = redisPid(server)
  assert.ok(pid, 'redis-server is running')
  process.kill(pid, 'SIGKILL')
  await eventually('redis-server gone', () => {
    try {
      process.kill(pid, 0)
      return undefined
    } catch {
      return true
    }
  })
  // A child forked for an AOF rewrite outlives the server and keeps its port: it dies with the crash too.
  for (const child of pidsListeningOn(server.port)) process.kill(child, 'SIGKILL')
  await eventually('the port free', async () => ((await isPortOpen(server.port)) ? undefined : true))
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Records in a topic (all partitions), from its watermarks. */
async function recordCount(topic: string): Promise<number> {
  let total = 0
  for (const { low, high } of (await watermarks(ctx.admin, topic)).values()) total += high - low
  return total
}

async function offsetsAtLogEnd(redis: Redis, ns: TestNamespace, channel: 'email' | 'sms' | 'slack') {
  const stored = await storedOffsets(redis, channelGroup(ns, channel))
  for (const [partition, { high }] of await watermarks(ctx.admin, ns.topics.main(channel))) {
    if (high > 0 && (stored.get(partition) ?? -1) < high) return undefined
  }
  return true
}

test('a dead letter is written once, even when Redis is down while its outcome is recorded', async () => {
  const { server, url, client } = await privateRedis()
  const ns = await setup('dlq-once')
  // A permanent refusal that takes 2 s to come: Redis is killed while the send is in flight.
  ctx.sandbox.smtp.setFaults({ latencyMs: 2000, permanentRecipients: ['refused@example.com'] })
  try {
    const d = distributor(ns, 'dlq-once', { CHANNEL: 'email', REDIS_URL: url })
    await claimed(d)
    const record = emailRecord(`${ns.prefix}-dead`, 'refused@example.com')
    await produceRecords(ctx.producer, ns.topics.main('email'), [record])
    const attempts = redisKeys(ns.prefix).attempts(ns.groupId('email'), ns.topics.main('email'))
    await eventually('the delivery started', async () =>
      (await client.hlen(attempts)) > 0 ? true : undefined,
    )
    await crash(server)
    // The dead letter is acknowledged by Kafka; its status cannot be written. Several flushes fail meanwhile.
    await eventually('a dead letter on its topic', async () =>
      (await recordCount(ns.topics.deadLetter('email'))) > 0 ? true : undefined,
    )
    await sleep(3000)
    await startRedis(server)
    const statuses = new StatusStore(client, redisKeys(ns.prefix), 3600)
    await eventually('dead_lettered status', async () =>
      (await statuses.get(record.id))?.status === 'dead_lettered' ? true : undefined,
    )
    await eventually('offsets at the log end', () => offsetsAtLogEnd(client, ns, 'email'))
    assert.equal(await recordCount(ns.topics.deadLetter('email')), 1, 'one dead letter for one failed record')
  } finally {
    ctx.sandbox.smtp.setFaults({})
    client.disconnect()
  }
})

test('Redis outages of 5 s and 30 s under steady load, with a replica stopped meanwhile: nothing lost, few duplicates', async (t) => {
  const { server, url, client } = await privateRedis()
  const ns = await setup('redis-outage')
  const concurrency = 8
  ctx.sandbox.smtp.setFaults({ latencyMs: 20 })
  ctx.sandbox.twilio.setFaults({ latencyMs: 20 })
  ctx.sandbox.slack.setFaults({ latencyMs: 20 })
  const env = (channel: string) => ({
    CHANNEL: channel,
    REDIS_URL: url,
    DELIVERY_CONCURRENCY: String(concurrency),
    SHUTDOWN_TIMEOUT_MS: '5000',
  })
  const replicas = [
    distributor(ns, 'outage-email-1', env('email')),
    distributor(ns, 'outage-email-2', env('email')),
    distributor(ns, 'outage-sms', env('sms')),
    distributor(ns, 'outage-slack', env('slack')),
  ]
  try {
    await Promise.all(replicas.map((p) => claimed(p)))
    const ids: string[] = []
    let loading = true
    const load = (async () => {
      for (let i = 0; loading; i++) {
        const base = `${ns.prefix}-${i}`
        const createdAt = new Date().toISOString()
        const email = emailRecord(`${base}-e`, `user${i % 10}@example.com`, { message: `m ${base}-e` })
        const sms = {
          v: 1,
          id: `${base}-s`,
          channel: 'sms' as const,
          to: `+1555010${String(i % 10).padStart(4, '0')}`,
          message: `m ${base}-s`,
          createdAt,
        }
        const slack = {
          v: 1,
          id: `${base}-k`,
          channel: 'slack' as const,
          to: i % 2 ? 'ops' : 'default',
          message: `m ${base}-k`,
          createdAt,
        }
        await Promise.all([
          produceRecords(ctx.producer, ns.topics.main('email'), [email]),
          produceRecords(ctx.producer, ns.topics.main('sms'), [sms]),
          produceRecords(ctx.producer, ns.topics.main('slack'), [slack]),
        ])
        ids.push(email.id, sms.id, slack.id)
        await sleep(40)
      }
    })()
    await sleep(4000)
    await crash(server)
    await sleep(5000)
    await startRedis(server)
    await sleep(5000)
    await crash(server)
    await sleep(10_000)
    replicas[1]?.kill('SIGTERM') // a rebalance in the middle of the outage
    await sleep(20_000)
    await startRedis(server)
    await sleep(5000)
    loading = false
    await load
    for (const channel of ['email', 'sms', 'slack'] as const)
      await eventually(
        `${channel} offsets at the log end`,
        () => offsetsAtLogEnd(client, ns, channel),
        120_000,
        500,
      )
    const received = ctx.deliveredIds(ns)
    const counts = countBy(received)
    const lost = ids.filter((id) => !counts.has(id))
    const duplicates = [...counts.values()].reduce((sum, n) => sum + n - 1, 0)
    t.diagnostic(`${ids.length} produced, ${lost.length} lost, ${duplicates} duplicate deliveries`)
    assert.deepEqual(lost, [])
    // At most what was in flight per replica, per outage (two outages, four replicas).
    assert.ok(duplicates <= concurrency * replicas.length * 2, `${duplicates} duplicates`)
  } finally {
    ctx.sandbox.smtp.setFaults({})
    ctx.sandbox.twilio.setFaults({})
    ctx.sandbox.slack.setFaults({})
    client.disconnect()
  }
})

test('a replica that claims after Redis lost its last writes (a crash before fsync) does not deliver them again', async () => {
  const ns = await setup('redis-rollback')
  const topic = ns.topics.main('email')
  const groupId = ns.groupId('email')
  const records = Array.from({ length: 120 }, (_, i) =>
    emailRecord(`${ns.prefix}-${i}`, `user${i % 12}@example.com`),
  )
  await produceRecords(ctx.producer, topic, records)
  const first = distributor(ns, 'rollback-1', { CHANNEL: 'email' })
  // Delivered, recorded in Redis and mirrored to Kafka.
  await eventually('offsets recorded and mirrored at the log end', async () => {
    const [stored, bounds, [mirror]] = await Promise.all([
      storedOffsets(ctx.redis, channelGroup(ns, 'email')),
      watermarks(ctx.admin, topic),
      ctx.admin.fetchOffsets({ groupId, topics: [topic] }),
    ])
    const committed = new Map((mirror?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]))
    for (const [partition, { high }] of bounds)
      if (high > 0 && ((stored.get(partition) ?? -1) < high || (committed.get(partition) ?? -1) < high))
        return undefined
    return true
  })
  first.kill('SIGTERM')
  assert.equal(await first.exited, 0)
  // What a SIGKILLed Redis with `appendfsync everysec` loses: its last second of writes, here the offsets
  // past the first records of each partition and the statuses that made those records final.
  const keys = redisKeys(ns.prefix)
  const offsetsKey = keys.offsets(groupId, topic)
  for (const partition of (await watermarks(ctx.admin, topic)).keys())
    await ctx.redis.hset(offsetsKey, String(partition), '5')
  await ctx.redis.del(...records.map((r) => keys.status(r.id)))
  const second = distributor(ns, 'rollback-2', { CHANNEL: 'email' })
  await claimed(second)
  await eventually('offsets at the log end', () => offsetsAtLogEnd(ctx.redis, ns, 'email'))
  const counts = countBy(ctx.deliveredIds(ns))
  assert.deepEqual(
    records.filter((r) => counts.get(r.id) !== 1).map((r) => `${r.id} x${counts.get(r.id) ?? 0}`),
    [],
    'every record delivered exactly once',
  )
})

test('when Redis comes back empty, the offsets of idle partitions and the latest statuses are written again without waiting for a record', async () => {
  const { server, url, client } = await privateRedis()
  const ns = await setup('redis-empty-idle')
  try {
    const records = Array.from({ length: 40 }, (_, i) =>
      emailRecord(`${ns.prefix}-${i}`, `user${i % 8}@example.com`),
    )
    await produceRecords(ctx.producer, ns.topics.main('email'), records)
    const d = distributor(ns, 'empty-idle', { CHANNEL: 'email', REDIS_URL: url })
    await eventually('offsets at the log end', () => offsetsAtLogEnd(client, ns, 'email'))
    await crash(server)
    rmSync(join(server.dataDir, 'redis-data'), { recursive: true, force: true })
    await startRedis(server)
    // No record arrives: only the distributor can put the offsets back (lag metrics and the next claim
    // read them).
    await eventually('offsets written again', () => offsetsAtLogEnd(client, ns, 'email'), 30_000)
    // And the statuses it remembers: a claim that starts at the mirror would never write them again.
    const statuses = new StatusStore(client, redisKeys(ns.prefix), 3600)
    await eventually('statuses written again', async () => {
      for (const r of records) if ((await statuses.get(r.id))?.status !== 'delivered') return undefined
      return true
    })
    assert.equal(d.child.exitCode, null, 'the distributor still runs')
  } finally {
    client.disconnect()
  }
})
