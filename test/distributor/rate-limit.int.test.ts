// Per-recipient rate limits (RATE_LIMIT_<CHANNEL>, issue 14 item 7) with a real distributor process, the
// real broker and Redis, and the SMTP stand-in: what exceeds a recipient's limit waits (status `throttled`
// with the time it may go), is never dropped, and does not hold up another recipient on the same partition.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { testContext } from '../support/context.ts'
import { emailRecord, produceRecords } from '../support/fixtures.ts'
import { eventually } from '../support/service-process.ts'

const ctx = testContext({ smtp: true })

test('a recipient over its rate limit waits, spaced by the limit, while another recipient flows', async (t) => {
  const ns = await ctx.setup('rate')
  // Two per five seconds, in bursts of two: a waiting record waits 2.5 s for its token.
  const burst = 2
  const periodMs = 5000
  const d = ctx.distributor(ns, 'rate', {
    CHANNEL: 'email',
    RATE_LIMIT_EMAIL: `${burst}/${periodMs / 1000}s`,
  })
  await ctx.claimed(d)
  const limited = 'limited@example.com'
  const mine = (to: string, n: number) =>
    Array.from({ length: n }, (_, i) => emailRecord(`${ns.prefix}-${to.split('@')[0]}-${i}`, to))
  const slow = mine(limited, 5)
  const topic = ns.topics.main('email')
  await produceRecords(ctx.producer, topic, slow, 0)
  // The third one waits for its token, with the time it may go in its status.
  const third = await eventually(
    'the third record to the limited recipient is throttled',
    async () => {
      const view = await ctx.statuses(ns).get(slow[2]?.id ?? '')
      return view?.status === 'throttled' ? view : undefined
    },
    30_000,
    20,
  )
  const mayGo = Date.parse(third.notBefore ?? '')
  assert.ok(
    mayGo > Date.now() && mayGo < Date.now() + periodMs,
    `notBefore ${third.notBefore} within the period`,
  )

  // Fifteen other recipients, two records each (within their burst), behind it on the same partition: a
  // pause of the partition until the limited recipient's turn would hold them that long.
  const others = Array.from({ length: 15 }, (_, i) => `other-${i}@example.com`)
  const fast = others.flatMap((to) => mine(to, 2))
  await produceRecords(ctx.producer, topic, fast, 0)
  const received = (to: string) => ctx.smtp.messages().filter((m) => m.to === to)
  const othersReceived = () => ctx.smtp.messages().filter((m) => others.includes(m.to)).length
  await eventually(
    'the other recipients got all of their records',
    () => (othersReceived() >= fast.length ? true : undefined),
    30_000,
    20,
  )
  const limitedWhenOthersDone = received(limited).length
  t.diagnostic(`the limited recipient had ${limitedWhenOthersDone} of ${slow.length} when the others had all`)
  assert.equal(limitedWhenOthersDone, burst, 'the others went before the limited recipient had its next turn')

  for (const r of [...slow, ...fast])
    assert.equal((await ctx.finalStatus(ns, r.id, 60_000)).status, 'delivered')
  const times = received(limited).map((m) => Date.parse(m.at))
  assert.equal(times.length, slow.length, 'each limited record arrived once: none dropped, none repeated')
  // Any k deliveries to the limited recipient span at least (k - burst) token intervals; 300 ms of slack
  // for the time between the bucket and the stand-in.
  const intervalMs = periodMs / burst
  for (let i = 0; i < times.length; i++) {
    for (let j = i + burst; j < times.length; j++) {
      const spanMs = (times[j] ?? 0) - (times[i] ?? 0)
      assert.ok(
        spanMs >= (j - i + 1 - burst) * intervalMs - 300,
        `deliveries ${i}..${j} came ${spanMs} ms apart: faster than the limit`,
      )
    }
  }
  const metrics = await (await fetch(`http://127.0.0.1:${await metricsPort(d)}/metrics`)).text()
  assert.match(metrics, /^herald_deliveries_throttled_total\{[^}]*\} [1-9]/m)
  d.kill('SIGTERM')
  await d.exited
})

async function metricsPort(d: ReturnType<typeof ctx.distributor>): Promise<number> {
  const line = await d.waitForLog((l) => typeof l.metricsPort === 'number')
  return line.metricsPort as number
}
