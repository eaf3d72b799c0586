// Slack destinations fail independently: a webhook that was revoked (410) or keeps failing (503) opens the
// breaker of its own destination, and the records of the other Slack destinations keep flowing. Real Kafka
// and Redis, a distributor process (CHANNEL=slack) and the Slack stand-in, which fails one webhook path only.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { NotificationRecord } from '@herald/shared/notification'
import type { Faults } from '../../dev/standins/index.ts'
import { testContext } from '../support/context.ts'
import { produceRecords, type TestNamespace } from '../support/fixtures.ts'
import type { ServiceProcess } from '../support/service-process.ts'

const ctx = testContext({ sandbox: true })

const breakerLine = (l: Record<string, unknown>) => /^(DESTINATION )?BREAKER OPEN/.test(String(l.msg ?? ''))
const channelBreakerOpened = (p: ServiceProcess) =>
  p.lines.some((l) => String(l.msg ?? '').startsWith('BREAKER OPEN'))

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
  } finally {
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
