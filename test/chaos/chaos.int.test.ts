// The short, fixed-seed chaos run of npm test: at least one SIGKILL mid-delivery, one rebalance, one provider
// outage, rejected credentials, transient and permanent provider errors, and the api killed while clients
// post. Then the negative control: the same run against a distributor that advances offsets before
// delivering must report lost ids, or the checker proves nothing.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { appendReliability, type ChaosOptions, runChaos } from './harness.ts'

const short: ChaosOptions = {
  notifications: Number(process.env.CHAOS_NOTIFICATIONS ?? 600),
  ratePerSecond: 60,
  seed: 7,
  faults: new Set(['kill', 'term', 'outage', 'transient', 'permanent', 'api']),
  drainTimeoutMs: 120_000,
  providerLatencyMs: 100,
}

test('a short chaos run loses nothing and every scheduled fault really happened', async (t) => {
  const report = await runChaos(short)
  appendReliability(short, report)
  t.diagnostic(
    `accepted ${report.accepted}, delivered ${report.delivered}, dead-lettered ${report.deadLettered}, ` +
      `duplicates ${report.duplicates}, drain ${report.drainSeconds.toFixed(1)} s; faults: ${report.faultsRun.join('; ')}`,
  )
  assert.deepEqual(report.faultsMissing, [])
  assert.equal(report.faultsRun.length, 4, 'kill, term, outage and api faults ran')
  assert.equal(report.accepted, short.notifications, 'every notification was eventually accepted')
  assert.deepEqual(report.lost, [])
})

test('negative control: the same run with offsets advanced before delivery reports lost ids', async (t) => {
  // One slow replica per channel and few recipients: each recipient's queue is long, so the kill finds
  // accepted records that were not sent yet — exactly what advancing before delivery loses.
  const broken = {
    ...short,
    brokenVariant: 'advance-before-delivery',
    // Long enough for a correct distributor to drain this backlog (two recipients, 300 ms each).
    drainTimeoutMs: 60_000,
    faults: new Set(['kill'] as const),
    emailRecipients: 2,
    killAt: 0.7, // later: the batch in progress is longer, with more accepted records not started yet
    providerLatencyMs: 300,
    replicasPerChannel: 1,
  }
  const report = await runChaos(broken)
  appendReliability(broken, report)
  t.diagnostic(
    `the broken variant lost ${report.lost.length} of ${report.accepted}; faults: ${report.faultsRun.join('; ')}; missing: ${report.faultsMissing.join('; ')}`,
  )
  assert.ok(report.lost.length > 0, 'the checker must see losses from a broken distributor')
})
