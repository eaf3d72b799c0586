// The short, fixed-seed chaos run of npm test: a SIGKILL while a delivery is in flight (during a burst to
// one mailbox), a rebalance, a provider outage, transient and permanent provider errors, and the api killed
// while clients post. Then the negative control: the same settings, one change — a distributor that
// advances offsets before delivering — must report lost ids, or the checker proves nothing. Both runs are
// written side by side to .data/chaos/npm-test.md (git-ignored); docs/RELIABILITY.md is written only by
// `npm run chaos -- --record`. The two runs have private stacks of their own and run at the same time: most
// of a run is waiting (the load's pace, group joins, the api's idempotency window after its kill).
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { repoRoot } from '../../dev/lib/process.ts'
import { appendSection, type ChaosOptions, type ChaosRun, formatSection, runChaos } from './harness.ts'

const short: ChaosOptions = {
  notifications: Number(process.env.CHAOS_NOTIFICATIONS ?? 600),
  ratePerSecond: 60,
  seed: 7,
  faults: new Set(['kill', 'term', 'outage', 'transient', 'permanent', 'api']),
  settleTimeoutMs: 180_000,
  providerLatencyMs: 100,
}
const runs: ChaosRun[] = []
const summary = (run: ChaosRun) => {
  const r = run.report
  return (
    `${run.options.brokenVariant ?? 'correct'}: accepted ${r.accepted}, delivered ${r.delivered}, ` +
    `dead-lettered ${r.deadLettered}, lost ${r.lost.length}, stalled ${r.stalled.length}, duplicates ${r.duplicates}, ` +
    `drain ${r.drainSeconds.toFixed(1)} s; faults: ${r.faultsRun.join('; ')}; missing: ${r.faultsMissing.join('; ') || 'none'}`
  )
}

describe('chaos', { concurrency: 2 }, () => {
  after(() => {
    // The run first, its negative control beside it.
    const ordered = [...runs].sort(
      (a, b) => Number(a.options.brokenVariant !== undefined) - Number(b.options.brokenVariant !== undefined),
    )
    if (ordered.length > 0)
      appendSection(join(repoRoot, '.data', 'chaos', 'npm-test.md'), formatSection(ordered))
  })

  test('a short chaos run loses nothing and every scheduled fault really happened', async (t) => {
    const report = await runChaos(short)
    runs.push({ options: short, report })
    t.diagnostic(summary({ options: short, report }))
    assert.deepEqual(report.faultsMissing, [])
    assert.equal(report.faultsRun.length, short.faults.size, 'every scheduled fault was shown to happen')
    assert.deepEqual(report.stalled, [], 'every partition reached its log end')
    assert.equal(report.accepted, short.notifications + 20, 'every notification (and the burst) was accepted')
    assert.deepEqual(report.lost, [])
  })

  test('negative control: the same run against a distributor that advances offsets before delivery loses ids', async (t) => {
    const control: ChaosOptions = { ...short, brokenVariant: 'advance-before-delivery' }
    const report = await runChaos(control)
    runs.push({ options: control, report })
    t.diagnostic(summary({ options: control, report }))
    assert.deepEqual(report.faultsMissing, [], 'the kill caught a delivery in flight, as in the run above')
    assert.deepEqual(report.stalled, [], 'lost means lost: every partition reached its log end')
    assert.ok(report.lost.length > 0, 'the checker must see losses from a broken distributor')
  })
})
