// On the clustered stack (npm run test:cluster): the Redis primary holding the distributors' offsets is
// SIGKILLed under load; Redis Cluster promotes its replica. Replication is asynchronous, so the promoted
// replica may miss the last writes: records are then delivered again (reported), never lost, and every
// partition's stored offset reaches the log end.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { redisKeys } from '@herald/shared/redis/keys'
import type { Cluster } from 'ioredis'
import { clusterFromEnv, redisSlotOwner, waitForRedisCluster } from '../../dev/lib/cluster.ts'
import { pidsListeningOn } from '../../dev/lib/process.ts'
import { redisPid, startRedis } from '../../dev/lib/redis.ts'
import { testContext } from '../support/context.ts'
import { waitForStoredOffsetsAtEnd } from '../support/offsets.ts'
import { eventually } from '../support/service-process.ts'
import { describeAnswers, startLoad, startPipeline, tallyDeliveries } from './load.ts'

const ctx = testContext({ smtp: true })

test("killing the Redis primary of the distributors' offsets under load loses nothing and stalls no partition", async (t) => {
  const { ns, api } = await startPipeline(ctx, 'redis-kill')
  const stack = clusterFromEnv()
  const cluster = ctx.redis as unknown as Cluster
  const offsetsKey = redisKeys(ns.prefix).offsets(ns.groupId('email'), ns.topics.main('email'))
  const load = startLoad(api, 'redis-kill')
  try {
    await load.acceptedMore(150, 120_000)

    const slot = Number(await cluster.cluster('KEYSLOT', offsetsKey))
    const primary = redisSlotOwner(stack.redis[0]?.port ?? 0, slot)
    const port = Number(primary?.split(':')[1])
    const node = stack.redis.find((n) => n.port === port)
    const pid = node && redisPid(node)
    assert.ok(node && pid, `the primary of slot ${slot} (${primary}) is one of the cluster's nodes`)
    ctx.teardown(async () => {
      await startRedis(node)
      await waitForRedisCluster(stack, 120_000)
    })

    const acceptedBefore = load.accepted.length
    const killedAt = Date.now()
    // A forked AOF-rewrite child keeps the port: it goes too.
    for (const p of new Set([pid, ...pidsListeningOn(port)])) process.kill(p, 'SIGKILL')
    t.diagnostic(`SIGKILLed Redis primary ${primary} (pid ${pid}), owner of slot ${slot}`)

    const promoted = await eventually(
      'a replica promoted for the slot',
      () => {
        const owners = stack.redis.filter((n) => n.port !== port).map((n) => redisSlotOwner(n.port, slot))
        return owners.find((owner) => owner !== undefined && owner !== primary)
      },
      120_000,
      250,
    )
    const promotedMs = Date.now() - killedAt
    await load.acceptedMore(150, 180_000)
    const firstAfter = load.accepted[acceptedBefore]
    await load.stop()

    const ids = load.accepted.map((a) => a.id)
    const tally = await tallyDeliveries(ctx, ids, 240_000)
    await waitForStoredOffsetsAtEnd(ctx.admin, ctx.redis, ns, 'email', 180_000)
    const recoveredMs = Date.now() - killedAt
    t.diagnostic(
      `accepted ${tally.accepted} (${acceptedBefore} before the kill), lost ${tally.lost.length}, ` +
        `duplicates ${tally.duplicates}; answers ${describeAnswers(load.answers)}`,
    )
    t.diagnostic(
      `replica ${promoted} promoted ${promotedMs} ms after the kill; first 202 after it ` +
        `${firstAfter ? firstAfter.at - killedAt : '?'} ms; all delivered, every partition at its log end ` +
        `${recoveredMs} ms after the kill`,
    )
    assert.deepEqual(tally.lost, [], 'every 202 was delivered')
    const unexpected = [...load.answers.keys()].filter((status) => status !== '202' && status !== '503')
    assert.deepEqual(unexpected, [], 'the api answers 202 or 503 only')
  } finally {
    await load.stop()
  }
})
