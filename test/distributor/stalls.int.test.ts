// Stalls: a partition or a process that stops making progress (issue 12, items 1, 2 and 8), with real
// distributor processes, the real broker and Redis, and the Twilio and SMTP stand-ins.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { redisKeys } from '@herald/shared/redis/keys'
import { OffsetStore } from '../../shared/src/offsets/offsets.ts'
import { testContext } from '../support/context.ts'
import { emailRecord, produceRecords, smsRecord, type TestNamespace } from '../support/fixtures.ts'
import { eventually, type ServiceProcess } from '../support/service-process.ts'

const ctx = testContext({ sandbox: true })
const { setup, distributor, claimed } = ctx

let sequence = 0
const sms = (ns: TestNamespace, to: string) => smsRecord(`${ns.prefix}-${++sequence}`, to)

test('a superseded claim that ends its batch with a long backoff does not pause the partition its successor owns', async () => {
  const ns = await setup('stale-pause')
  const slow = '+15550000001'
  const limited = '+15550000002'
  // Every answer takes 2.5 s; the limited recipient is told to come back in a minute.
  ctx.sandbox.twilio.setFaults({ latencyMs: 2500, failRecipients: [limited], status: 429, retryAfter: 60 })
  try {
    const d = distributor(ns, 'stale-pause', { CHANNEL: 'sms' })
    await claimed(d)
    const topic = ns.topics.main('sms')
    // One batch on partition 0: z and b to the same recipient (b waits for z), a told to wait a minute.
    const [z, a, b] = [sms(ns, slow), sms(ns, limited), sms(ns, slow)]
    await produceRecords(ctx.producer, topic, [z, a, b], 0)
    // Another consumer claims the partition and records all three as finished: the batch's next advance
    // is refused (fence); once its membership is confirmed, the distributor claims the partition again,
    // seeks it to 3 and resumes it, while z and a of the old batch are still in flight.
    const offsets = new OffsetStore(ctx.redis, redisKeys(ns.prefix), ns.groupId('sms'), topic)
    const [zombie] = await offsets.claim([0], 'zombie')
    await offsets.advance(0, zombie?.token ?? 0, 3)
    await d.waitForLog((l) => String(l.msg ?? '').includes('membership confirmed after the refusal'), 30_000)
    // The old batch ends when z and a are answered, with a deferred for a minute.
    await d.waitForLog((l) => l.id === a.id && String(l.msg ?? '').includes('attempt 1 of'), 30_000)
    await new Promise((r) => setTimeout(r, 1000))
    const c = sms(ns, '+15550000003')
    await produceRecords(ctx.producer, topic, [c], 0)
    await eventually(
      'a record produced after the old batch ended is delivered (the partition is not paused)',
      () => (ctx.deliveredIds(ns).includes(c.id) ? true : undefined),
      40_000,
      200,
    )
    assert.ok(!ctx.deliveredIds(ns).includes(b.id), 'b was left to the other consumer')
  } finally {
    ctx.sandbox.twilio.setFaults({})
  }
})

/** CPU seconds (user + system) a process used so far, from /proc. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}

test('a shutdown past its bound abandons the send in flight, leaves the group and exits non-zero at low CPU', async () => {
  const ns = await setup('stuck-stop')
  // The provider answers after a minute: the send is still in flight when the shutdown bound is reached.
  ctx.sandbox.smtp.setFaults({ latencyMs: 60_000 })
  try {
    const d = distributor(ns, 'stuck-stop', { CHANNEL: 'email', SHUTDOWN_TIMEOUT_MS: '1000' })
    await claimed(d)
    const record = emailRecord(`${ns.prefix}-stuck`, 'stuck@example.com')
    await produceRecords(ctx.producer, ns.topics.main('email'), [record])
    const startKey = redisKeys(ns.prefix).attempts(ns.groupId('email'), ns.topics.main('email'))
    await eventually('the delivery started', async () =>
      (await ctx.redis.hlen(startKey)) > 0 ? true : undefined,
    )
    const pid = d.child.pid ?? 0
    d.kill('SIGTERM')
    await d.waitForLog((l) => String(l.msg ?? '').includes('shutting down'), 10_000)
    // Past the bound, a spinning process burns a whole core; a waiting one almost nothing.
    await new Promise((r) => setTimeout(r, 1500))
    const before = cpuSeconds(pid)
    await new Promise((r) => setTimeout(r, 2000))
    const after = cpuSeconds(pid)
    if (before !== undefined && after !== undefined)
      assert.ok(
        after - before < 1.2,
        `the stopping process used ${(after - before).toFixed(2)} s of CPU in 2 s`,
      )
    const code = await Promise.race([
      d.exited,
      new Promise<string>((r) => setTimeout(() => r('still running after 30 s'), 30_000)),
    ])
    assert.equal(code, 1, 'exits non-zero: a delivery was abandoned')
    assert.ok(d.lines.some((l) => String(l.msg ?? '').includes('abandoned')))
  } finally {
    ctx.sandbox.smtp.setFaults({})
  }
})

test('a record told to retry after 8 s is not attempted earlier when a rebalance resumes its partition', async () => {
  const ns = await setup('not-before')
  const limited = '+15550000009'
  ctx.sandbox.twilio.setFaults({ failRecipients: [limited], status: 429, retryAfter: 8 })
  try {
    const first = distributor(ns, 'not-before-1', { CHANNEL: 'sms' })
    await claimed(first)
    const record = sms(ns, limited)
    await produceRecords(ctx.producer, ns.topics.main('sms'), [record])
    const attempt = (p: ServiceProcess, n: number) =>
      p.lines.find((l) => l.id === record.id && String(l.msg ?? '').includes(`attempt ${n} of`))
    await first.waitForLog((l) => attempt(first, 1) === l, 30_000)
    // A second replica joins: every partition is claimed again, sought and resumed, the waiting one too.
    const second = distributor(ns, 'not-before-2', { CHANNEL: 'sms' })
    await claimed(second)
    const retried = await eventually(
      'the second attempt, on either replica',
      () => attempt(first, 2) ?? attempt(second, 2),
      40_000,
      100,
    )
    ctx.sandbox.twilio.setFaults({})
    const gap = Date.parse(String(retried.time)) - Date.parse(String(attempt(first, 1)?.time))
    assert.ok(gap >= 7950, `the second attempt came ${gap} ms after the first, not after the 8 s asked for`)
    await eventually(
      'delivered',
      () => (ctx.deliveredIds(ns).includes(record.id) ? true : undefined),
      40_000,
      200,
    )
  } finally {
    ctx.sandbox.twilio.setFaults({})
  }
})
