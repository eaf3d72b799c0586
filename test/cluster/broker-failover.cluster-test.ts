// On the clustered stack (npm run test:cluster): a Kafka broker leading a busy partition is SIGKILLed while
// the api takes a steady stream of notifications. Topics have three replicas and min.insync.replicas 2, the
// api writes with acks=all: every 202 must end up delivered. The broker killed is also the distributors'
// group coordinator, the harder case (issue 20): kafkajs keeps heartbeating and committing to the dead
// coordinator, and a batch that waited on such a commit held both distributors for minutes.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { clusterFromEnv } from '../../dev/lib/cluster.ts'
import { kafkaPid, startKafka } from '../../dev/lib/kafka.ts'
import { groupCoordinator } from '../support/cluster.ts'
import { testContext } from '../support/context.ts'
import { eventually } from '../support/service-process.ts'
import { describeAnswers, startLoad, startPipeline, tallyDeliveries } from './load.ts'

const ctx = testContext({ smtp: true })

test('killing the leader broker of a busy partition under load loses no accepted notification', async (t) => {
  const { ns, api } = await startPipeline(ctx, 'broker-kill')
  const topic = ns.topics.main('email')
  const load = startLoad(api, 'broker-kill')
  try {
    await load.acceptedMore(150, 120_000)

    // The busiest partition the group coordinator leads (the busiest of all if it leads none), and its leader.
    const ends = await ctx.admin.fetchTopicOffsets(topic)
    const [metadata] = (await ctx.admin.fetchTopicMetadata({ topics: [topic] })).topics
    const leaderOf = (partition: number) =>
      metadata?.partitions.find((p) => p.partitionId === partition)?.leader
    const coordinator = await groupCoordinator(ctx.admin, ns.groupId('email'))
    const byLoad = [...ends].filter((p) => Number(p.high) > 0).sort((a, b) => Number(b.high) - Number(a.high))
    const busiest = byLoad.find((p) => leaderOf(p.partition) === coordinator) ?? byLoad[0]
    assert.ok(busiest)
    const leader = leaderOf(busiest.partition)
    assert.ok(leader !== undefined, 'the busiest partition has a leader')
    t.diagnostic(
      leader === coordinator
        ? `broker ${leader} coordinates the distributors' group and leads partition ${busiest.partition}`
        : `the group coordinator (broker ${coordinator}) leads no busy partition: killing broker ${leader}`,
    )
    const node = clusterFromEnv().kafka[leader - 1]
    const pid = node && kafkaPid(node)
    assert.ok(node && pid, `broker ${leader} runs`)
    ctx.teardown(() => startKafka(node))

    const acceptedBefore = load.accepted.length
    const killedAt = Date.now()
    process.kill(pid, 'SIGKILL')
    t.diagnostic(`SIGKILLed broker ${leader} (pid ${pid}), leader of partition ${busiest.partition}`)

    // The partition gets a new leader among the two in-sync followers, and the api goes on accepting.
    const newLeader = await eventually(
      'a new leader of the busiest partition',
      async () => {
        const [m] = (await ctx.admin.fetchTopicMetadata({ topics: [topic] }).catch(() => ({ topics: [] })))
          .topics
        const l = m?.partitions.find((p) => p.partitionId === busiest.partition)?.leader
        return l !== undefined && l !== leader && l >= 0 ? l : undefined
      },
      120_000,
      250,
    )
    const leaderMovedMs = Date.now() - killedAt
    await load.acceptedMore(150, 180_000)
    const firstAfter = load.accepted[acceptedBefore]
    await load.stop()

    const ids = load.accepted.map((a) => a.id)
    const tally = await tallyDeliveries(ctx, ids, 240_000)
    const allDeliveredMs = Date.now() - killedAt
    t.diagnostic(
      `accepted ${tally.accepted} (${acceptedBefore} before the kill), lost ${tally.lost.length}, ` +
        `duplicates ${tally.duplicates}; answers ${describeAnswers(load.answers)}`,
    )
    t.diagnostic(
      `leader moved to broker ${newLeader} ${leaderMovedMs} ms after the kill; first 202 after it ` +
        `${firstAfter ? firstAfter.at - killedAt : '?'} ms; all delivered ${allDeliveredMs} ms after the kill`,
    )
    assert.deepEqual(tally.lost, [], 'every 202 was delivered')
    const unexpected = [...load.answers.keys()].filter((status) => status !== '202' && status !== '503')
    assert.deepEqual(unexpected, [], 'the api answers 202 or 503 only')
  } finally {
    await load.stop()
  }
})
