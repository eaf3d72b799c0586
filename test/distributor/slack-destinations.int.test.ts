// Slack destinations fail independently: a webhook that was revoked (410) or keeps failing (503) opens the
// breaker of its own destination, and the records of the other Slack destinations keep flowing. Real Kafka
// and Redis, a distributor process (CHANNEL=slack) and the Slack stand-in, which fails one webhook path only.
// The api's GET /api/v1/channels reports the open destination breaker the distributor published to Redis.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { NotificationRecord } from '@herald/shared/notification'
import { redisKeys } from '@herald/shared/redis/keys'
import type { Faults } from '../../dev/standins/index.ts'
import { startTestApi } from '../support/api.ts'
import { testContext } from '../support/context.ts'
import { produceRecords, type TestNamespace } from '../support/fixtures.ts'
import { eventually, type ServiceProcess } from '../support/service-process.ts'

const ctx = testContext({ sandbox: true })

const breakerLine = (l: Record<string, unknown>) => /^(DESTINATION )?BREAKER OPEN/.test(String(l.msg ?? ''))
const channelBreakerOpened = (p: ServiceProcess) =>
  p.lines.some((l) => String(l.msg ?? '').startsWith('BREAKER OPEN'))

interface PublishedBreaker {
  destination: string | null
  state: string
  openUntil: string | null
  reason: string
  replica: string
}

function slackRecord(ns: TestNamespace, to: string, n: number): NotificationRecord {
  const id = `${ns.prefix}-${to}-${n}`
  return { v: 1, id, channel: 'slack', to, message: `${id} to ${to}`, createdAt: new Date().toISOString() }
}

/**
 * Two Slack destinations on two partitions: `broken` answers with the fault, `fine` accepts. The fault opens
 * `broken`'s breaker (not the channel's), every `fine` record is delivered while it stays open, and once the
 * webhook heals the held records are delivered: nothing is lost or dead-lettered.
 */
async function oneDestinationFails(label: string, fault: (path: string) => Faults) {
  const ns = await ctx.setup(label)
  const base = `${ctx.sandbox.slack.url}/services/T000/${ns.prefix}`
  const paths = { broken: `/services/T000/${ns.prefix}/broken`, fine: `/services/T000/${ns.prefix}/fine` }
  const d = ctx.distributor(ns, label, {
    CHANNEL: 'slack',
    SLACK_WEBHOOKS: JSON.stringify({ broken: `${base}/broken`, fine: `${base}/fine` }),
    RETRY_BASE_MS: '50',
    RETRY_CAP_MS: '200',
    MAX_ATTEMPTS: '20',
    BREAKER_THRESHOLD: '3',
    BREAKER_PROBE_MS: '2000',
    BREAKER_PROBE_MAX_MS: '4000',
  })
  await ctx.claimed(d)
  const api = await startTestApi(ns, {
    brokers: ctx.brokers,
    redisUrl: ctx.redisUrl,
    env: { TOPIC_PARTITIONS: '4' },
  })
  /** The Slack breakers GET /api/v1/channels reports, by destination ('*' for the channel's own). */
  const breakers = async () => {
    const answer = await api.call('GET', '/channels?channel=slack')
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    const listed = answer.body.channels[0].breakers as PublishedBreaker[]
    return new Map(listed.map((b) => [b.destination ?? '*', b]))
  }
  ctx.sandbox.slack.setFaults(fault(paths.broken))
  try {
    const held = [1, 2].map((n) => slackRecord(ns, 'broken', n))
    await produceRecords(ctx.producer, ns.topics.main('slack'), held, 0)
    const opened = await d.waitForLog(breakerLine, 60_000)
    assert.match(
      String(opened.msg),
      /^DESTINATION BREAKER OPEN/,
      "the destination's breaker, not the channel's",
    )
    assert.equal(opened.destination, 'broken')
    const reported = await eventually('the api reports the open breaker of broken', async () => {
      const found = await breakers()
      return found.get('broken')?.state === 'open' ? found : undefined
    })
    const broken = reported.get('broken') as PublishedBreaker
    assert.ok(broken.openUntil && !Number.isNaN(Date.parse(broken.openUntil)), 'when the probe may go')
    assert.notEqual(broken.reason, '', 'what opened it')
    assert.equal(reported.get('*')?.state, 'closed', "the channel's own breaker is closed")
    assert.equal(broken.replica, reported.get('*')?.replica, 'both from the one replica')

    const flowing = [1, 2, 3, 4, 5].map((n) => slackRecord(ns, 'fine', n))
    await produceRecords(ctx.producer, ns.topics.main('slack'), flowing, 1)
    for (const record of flowing) {
      const view = await ctx.finalStatus(ns, record.id, 60_000)
      assert.equal(view.status, 'delivered', record.id)
    }
    // Everything for `fine` arrived while `broken`'s records were still held by its open breaker.
    for (const record of held) {
      const view = await ctx.statuses(ns).get(record.id)
      // Produced straight to Kafka, a record has no status until the distributor writes one.
      const status = view?.status ?? 'none yet'
      assert.ok(['none yet', 'queued', 'retrying'].includes(status), `${record.id} is ${status}`)
    }
    const received = ctx.sandbox.slack.messages().filter((m) => m.to === paths.broken)
    assert.equal(received.length, 0, 'nothing reached the broken webhook')
    assert.ok(!channelBreakerOpened(d), "the Slack channel's breaker stayed closed")

    // Healed: the next probe delivers what waited; nothing was dead-lettered.
    ctx.sandbox.slack.setFaults({})
    for (const record of held) {
      const view = await ctx.finalStatus(ns, record.id, 60_000)
      assert.equal(view.status, 'delivered', record.id)
    }
    const delivered = new Set(ctx.deliveredIds(ns))
    for (const record of [...held, ...flowing]) assert.ok(delivered.has(record.id), record.id)
    assert.ok(!channelBreakerOpened(d), "the Slack channel's breaker never opened")
    await eventually('the api reports every breaker closed', async () => {
      const found = await breakers()
      return ['*', 'broken', 'fine'].every((d) => found.get(d)?.state === 'closed') ? true : undefined
    })
    d.kill('SIGTERM')
    await d.exited
    // Not left to expire: a replica that stops removes its breakers before it quits Redis.
    assert.equal(await ctx.redis.hlen(redisKeys(ns.prefix).breakers('slack')), 0)
  } finally {
    await api.stop()
    ctx.sandbox.slack.setFaults({})
    d.kill('SIGTERM')
    await d.exited
  }
}

test('a revoked Slack webhook (410) holds only its own records while another Slack destination keeps flowing', async () => {
  await oneDestinationFails('slack-revoked', (path) => ({
    permanentRecipients: [{ recipient: path, code: 410 }],
  }))
})

test('a Slack webhook that keeps answering 503 opens only its own breaker; its records arrive once it heals', async () => {
  await oneDestinationFails('slack-503', (path) => ({ failRecipients: [path], status: 503 }))
})
