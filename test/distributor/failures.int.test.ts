// Failure handling against the real SDKs and stand-ins: retries, dead letters, poison, crash loops, the
// breaker, long Retry-After waits, and replay. Expected provider codes are the providers' documented ones.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { DeadLetterStore } from '@herald/shared/dead-letters'
import { redisKeys } from '@herald/shared/redis/keys'
import { testContext } from '../support/context.ts'
import { produceRecords, smsRecord, type TestNamespace } from '../support/fixtures.ts'
import { eventually, type ServiceProcess } from '../support/service-process.ts'

const ctx = testContext({ sandbox: true })
const { setup, statuses, finalStatus } = ctx

function smsDistributor(ns: TestNamespace, name: string, extra: Record<string, string> = {}): ServiceProcess {
  return ctx.distributor(ns, name, { CHANNEL: 'sms', RETRY_BASE_MS: '50', ...extra })
}

let sequence = 0
function sms(ns: TestNamespace, to: string, message = `sms ${++sequence}`) {
  return smsRecord(`${ns.prefix}-${++sequence}`, to, { message })
}

const smsTexts = () => ctx.sandbox.twilio.messages().map((m) => m.text)

const started = ctx.claimed

/** How often the breaker opened: the first failure, then once per probe the provider failed again. */
const breakerOpenings = (p: ServiceProcess) =>
  p.lines.filter((l) => String(l.msg ?? '').startsWith('BREAKER OPEN')).length

async function metricsOf(p: ServiceProcess): Promise<string> {
  const line = await p.waitForLog((l) => typeof l.metricsPort === 'number')
  return (await fetch(`http://127.0.0.1:${line.metricsPort}/metrics`)).text()
}

describe('retries and dead letters', () => {
  test('transient failures are retried and then delivered', async () => {
    const ns = await setup('retry')
    const d = smsDistributor(ns, 'retry')
    await started(d)
    ctx.sandbox.twilio.setFaults({ failNext: 2, status: 503 })
    const record = sms(ns, '+14155550101')
    await produceRecords(ctx.producer, ns.topics.main('sms'), [record])
    const view = await finalStatus(ns, record.id)
    assert.deepEqual([view.status, view.attempts], ['delivered', 3])
    assert.ok(smsTexts().includes(record.message))
    d.kill('SIGTERM')
    await d.exited
  })

  test('exhausted attempts dead-letter with the last error; a permanent error after exactly one attempt', async () => {
    const ns = await setup('dlq')
    const d = smsDistributor(ns, 'dlq', { MAX_ATTEMPTS: '3' })
    await started(d)
    ctx.sandbox.twilio.setFaults({ failNext: 3, status: 500 })
    const exhausted = sms(ns, '+14155550102')
    await produceRecords(ctx.producer, ns.topics.main('sms'), [exhausted])
    const v1 = await finalStatus(ns, exhausted.id)
    assert.deepEqual([v1.status, v1.attempts], ['dead_lettered', 3])
    assert.match(v1.lastError ?? '', /500/)

    ctx.sandbox.twilio.setFaults({ permanentRecipients: ['+14155550199'], permanentCode: 21610 })
    const unsubscribed = sms(ns, '+14155550199')
    await produceRecords(ctx.producer, ns.topics.main('sms'), [unsubscribed])
    const v2 = await finalStatus(ns, unsubscribed.id)
    assert.deepEqual([v2.status, v2.attempts], ['dead_lettered', 1])
    assert.match(v2.lastError ?? '', /21610/)

    const letters = await new DeadLetterStore(ctx.kafka, ns.topics).list('sms')
    const byId = new Map(letters.map((l) => [l.id, l]))
    assert.equal(byId.get(exhausted.id)?.errorClass, 'retryable')
    assert.equal(byId.get(exhausted.id)?.attempts, 3)
    assert.equal(byId.get(unsubscribed.id)?.errorClass, 'permanent')
    assert.equal(byId.get(unsubscribed.id)?.attempts, 1)
    assert.equal(byId.get(unsubscribed.id)?.original.topic, ns.topics.main('sms'))

    // Replay after the fault is fixed: same id, delivered.
    ctx.sandbox.twilio.setFaults({})
    const replayed = await new DeadLetterStore(ctx.kafka, ns.topics, statuses(ns)).replay('sms', {
      errorClass: 'permanent',
    })
    assert.deepEqual(
      replayed.map((l) => l.id),
      [unsubscribed.id],
    )
    await eventually('replayed delivered', async () =>
      (await statuses(ns).get(unsubscribed.id))?.status === 'delivered' ? true : undefined,
    )
    d.kill('SIGTERM')
    await d.exited
  })

  test('a poison record is dead-lettered and the records after it are delivered', async () => {
    const ns = await setup('poison')
    const d = smsDistributor(ns, 'poison')
    await started(d)
    const topic = ns.topics.main('sms')
    await ctx.producer.send({
      topic,
      acks: -1,
      messages: [
        { key: 'same', value: 'not json at all', partition: 0 },
        { key: 'same', value: JSON.stringify({ v: 1, id: 'x' }), partition: 0 },
      ],
    })
    const after = sms(ns, '+14155550103')
    await ctx.producer.send({
      topic,
      acks: -1,
      messages: [{ key: 'same', value: JSON.stringify(after), partition: 0 }],
    })
    assert.equal((await finalStatus(ns, after.id)).status, 'delivered')
    // A delivery's status may be written before the dead letters of the same flush are in Kafka (it does not
    // wait on Kafka for them): the letters come, they are not there yet when the later record is delivered.
    const store = new DeadLetterStore(ctx.kafka, ns.topics)
    const letters = await eventually('both poison records dead-lettered', async () => {
      const found = await store.list('sms', { errorClass: 'poison' })
      return found.length >= 2 ? found : undefined
    })
    assert.equal(letters.length, 2)
    assert.match(letters.map((l) => l.error).join(' '), /not JSON/)
    d.kill('SIGTERM')
    await d.exited
  })

  test('a record from a newer Herald version stops its partition with an alert; it is not dead-lettered', async () => {
    const ns = await setup('future')
    const d = smsDistributor(ns, 'future')
    await started(d)
    const topic = ns.topics.main('sms')
    const before = sms(ns, '+14155550105')
    const future = { ...sms(ns, '+14155550106'), v: 2, somethingNew: true }
    const behind = sms(ns, '+14155550107') // another recipient: not held back by its key, only by the halt
    const elsewhere = sms(ns, '+14155550108')
    await ctx.producer.send({
      topic,
      acks: -1,
      messages: [before, future, behind].map((r) => ({ key: r.to, value: JSON.stringify(r), partition: 0 })),
    })
    await ctx.producer.send({
      topic,
      acks: -1,
      messages: [{ key: elsewhere.to, value: JSON.stringify(elsewhere), partition: 1 }],
    })
    const alert = await d.waitForLog((l) => String(l.msg).startsWith('ALERT: record from a newer Herald'))
    assert.equal(alert.version, 2)
    assert.equal((await finalStatus(ns, before.id)).status, 'delivered')
    assert.equal((await finalStatus(ns, elsewhere.id)).status, 'delivered', 'other partitions keep flowing')
    // The batch is over once the partition pauses for its next look: whatever it started has finished.
    await d.waitForLog((l) => l.msg === 'partition paused until its next retry is due' && l.partition === 0)
    assert.ok(!smsTexts().includes(behind.message), 'nothing after the newer record was delivered')
    assert.equal((await statuses(ns).get(behind.id))?.status ?? 'none', 'none')
    const stored = await ctx.redis.hget(redisKeys(ns.prefix).offsets(ns.groupId('sms'), topic), '0')
    assert.equal(stored, '1', 'the stored offset stops at the newer record')
    assert.deepEqual(await new DeadLetterStore(ctx.kafka, ns.topics).list('sms'), [])
    assert.match(await metricsOf(d), /^herald_future_version_waits_total{[^}]*} [1-9]/m)
    d.kill('SIGTERM')
    await d.exited
  })

  test('records finished behind one still retrying are not delivered again by the next owner', async () => {
    const ns = await setup('beyond')
    const slow = '+14155550109'
    ctx.sandbox.twilio.setFaults({ failRecipients: [slow], status: 429, retryAfter: 1 })
    try {
      const env = { MAX_ATTEMPTS: '30', BREAKER_THRESHOLD: '1000' }
      const first = smsDistributor(ns, 'beyond-1', env)
      await started(first)
      const topic = ns.topics.main('sms')
      const waiting = sms(ns, slow)
      const others = Array.from({ length: 40 }, (_, i) =>
        sms(ns, `+1415555${String(2000 + i).padStart(4, '0')}`),
      )
      await ctx.producer.send({
        topic,
        acks: -1,
        messages: [waiting, ...others].map((r) => ({ key: r.to, value: JSON.stringify(r), partition: 0 })),
      })
      await eventually('the other recipients delivered while the first one retries', () =>
        others.every((r) => smsTexts().includes(r.message)) ? true : undefined,
      )
      // Their offsets are noted in Redis as finished beyond the stored offset, which the first one holds.
      // The flush notes them, then records the offset (a first advance writes it even when it stays at 0):
      // both are awaited, the second may come a moment after the first.
      const noted = redisKeys(ns.prefix).finished(ns.groupId('sms'), topic, 0)
      const storedOffset = () => ctx.redis.hget(redisKeys(ns.prefix).offsets(ns.groupId('sms'), topic), '0')
      await eventually('finished offsets noted and the offset recorded', async () =>
        (await ctx.redis.zcard(noted)) >= others.length && (await storedOffset()) !== null ? true : undefined,
      )
      assert.equal(await storedOffset(), '0')
      first.kill('SIGKILL')
      await first.exited
      ctx.sandbox.twilio.setFaults({})
      const second = smsDistributor(ns, 'beyond-2', env)
      assert.equal((await finalStatus(ns, waiting.id)).status, 'delivered')
      await eventually('the stored offset past all of them', async () =>
        (await storedOffset()) === '41' ? true : undefined,
      )
      const repeated = others.filter((r) => smsTexts().filter((t) => t === r.message).length > 1)
      assert.deepEqual(
        repeated.map((r) => r.id),
        [],
        'none of the finished records was delivered again',
      )
      second.kill('SIGTERM')
      await second.exited
    } finally {
      ctx.sandbox.twilio.setFaults({})
    }
  })

  test('a record that keeps crashing the distributor ends as a crash-loop dead letter', async () => {
    const ns = await setup('crash')
    const killer = sms(ns, '+14155550104', 'CRASH-ME please')
    const next = sms(ns, '+14155550104', 'after the crash')
    await produceRecords(ctx.producer, ns.topics.main('sms'), [killer, next])
    let runs = 0
    for (; runs < 8; runs++) {
      const d = smsDistributor(ns, `crash-${runs}`, { HERALD_TEST_CRASH_ON: 'CRASH-ME' })
      // The poll of a run that crashed goes on after the race: it must end without an unhandled rejection.
      const delivered = finalStatus(ns, next.id, 60_000).then(
        () => 'done',
        () => 'neither crashed nor delivered within 60 s',
      )
      const exit = await Promise.race([d.exited, delivered])
      if (exit === 'done') {
        d.kill('SIGTERM')
        await d.exited
        break
      }
      assert.equal(exit, 'SIGKILL')
    }
    assert.equal(runs, 3, 'three crashed deliveries, then the fourth start dead-letters it')
    const view = await statuses(ns).get(killer.id)
    assert.equal(view?.status, 'dead_lettered')
    assert.match(view?.lastError ?? '', /crash-loop/)
    assert.equal((await statuses(ns).get(next.id))?.status, 'delivered')
  })
})

describe('provider failures', () => {
  test('a provider outage opens the breaker: nothing is dead-lettered, everything is delivered after it', async () => {
    const ns = await setup('outage')
    const d = smsDistributor(ns, 'outage', {
      MAX_ATTEMPTS: '2',
      BREAKER_PROBE_MS: '500',
      BREAKER_PROBE_MAX_MS: '2000',
    })
    await started(d)
    ctx.sandbox.twilio.setFaults({ failRate: 1, status: 503 })
    const records = Array.from({ length: 12 }, (_, i) => sms(ns, `+1415555020${i % 10}`, `outage ${i}`))
    await produceRecords(ctx.producer, ns.topics.main('sms'), records)
    await d.waitForLog((l) => String(l.msg ?? '').startsWith('BREAKER OPEN'))
    assert.match(await metricsOf(d), /herald_breaker_open\{[^}]*\} 1/)
    // Two failed probes: the outage outlasted more attempts than MAX_ATTEMPTS allows a record.
    await eventually('two failed probes', () => (breakerOpenings(d) >= 3 ? true : undefined), 30_000)
    ctx.sandbox.twilio.setFaults({})
    const views = await Promise.all(records.map((r) => finalStatus(ns, r.id, 60_000)))
    assert.deepEqual(
      views.map((v) => v.status),
      records.map(() => 'delivered'),
    )
    assert.match(await metricsOf(d), /herald_breaker_open\{[^}]*\} 0/)
    assert.ok(d.lines.some((l) => l.msg === 'breaker closed: the provider accepts deliveries again'))
    d.kill('SIGTERM')
    await d.exited
  })

  test('rejected credentials pause consumption without dead letters until they are fixed', async () => {
    const ns = await setup('auth')
    const d = smsDistributor(ns, 'auth', {
      MAX_ATTEMPTS: '2',
      BREAKER_PROBE_MS: '500',
      BREAKER_PROBE_MAX_MS: '1000',
    })
    await started(d)
    ctx.sandbox.twilio.setFaults({ authFail: true })
    const record = sms(ns, '+14155550301')
    await produceRecords(ctx.producer, ns.topics.main('sms'), [record])
    const open = await d.waitForLog((l) => String(l.msg ?? '').startsWith('BREAKER OPEN'))
    assert.match(String(open.reason), /TWILIO_20003/)
    // Each opening after the first is a probe that sent the record and was refused again. Three sends with
    // MAX_ATTEMPTS=2 would have dead-lettered it, had the refusals counted as attempts; then the openings
    // stop and the status is final instead.
    const statusAfterProbes = await eventually(
      'two failed probes, or a final status',
      async () => {
        const status = (await statuses(ns).get(record.id))?.status ?? 'queued'
        return breakerOpenings(d) >= 3 || ['delivered', 'dead_lettered'].includes(status) ? status : undefined
      },
      30_000,
    )
    assert.equal(statusAfterProbes, 'queued', 'not dead-lettered while the breaker is open')
    ctx.sandbox.twilio.setFaults({})
    assert.equal((await finalStatus(ns, record.id)).status, 'delivered')
    d.kill('SIGTERM')
    await d.exited
  })

  test('a Retry-After longer than the session timeout neither evicts the member nor stops other partitions', async () => {
    const ns = await setup('retry-after')
    const d = smsDistributor(ns, 'retry-after', { SESSION_TIMEOUT_MS: '6000' })
    await started(d)
    // 2.5 session timeouts: long enough to evict a member that stops heartbeating while it waits, and a
    // margin of 15 s for the other partitions' deliveries, which take well under a second.
    const retryAfterSeconds = 15
    ctx.sandbox.twilio.setFaults({ failNext: 1, status: 429, retryAfter: retryAfterSeconds })
    const slow = sms(ns, '+14155550401', 'rate limited')
    await produceRecords(ctx.producer, ns.topics.main('sms'), [slow], 0)
    const paused = await d.waitForLog((l) => l.msg === 'partition paused until its next retry is due')
    assert.equal(paused.partition, 0)
    assert.ok(Number(paused.waitMs) >= retryAfterSeconds * 1000, 'the wait honours Retry-After')
    const others = [1, 2, 3].map((p) => ({ p, record: sms(ns, `+1415555050${p}`, `other partition ${p}`) }))
    for (const { p, record } of others) await produceRecords(ctx.producer, ns.topics.main('sms'), [record], p)
    for (const { record } of others) assert.equal((await finalStatus(ns, record.id)).status, 'delivered')
    assert.equal((await finalStatus(ns, slow.id, 60_000)).status, 'delivered')
    // Order at the provider, not a deadline: had the wait held the other partitions, they would come after.
    const seqOf = (text: string) => ctx.sandbox.twilio.messages().find((m) => m.text === text)?.seq ?? -1
    for (const { record } of others)
      assert.ok(seqOf(record.message) < seqOf(slow.message), `${record.message} delivered during the wait`)
    // An evicted member only learns it on its next heartbeat or commit, and then rejoins with a new member
    // id (a rebalance for any other reason keeps the id). A commit of the slow record's offset succeeds
    // only for a member the coordinator still knows: wait for it, or for a second member id.
    const memberIds = () =>
      new Set(d.lines.filter((l) => l.msg === 'joined the group; claiming partitions').map((l) => l.memberId))
    await eventually("the slow record's offset committed to Kafka, or a rejoin", async () => {
      if (memberIds().size > 1) return true
      const [committed] = await ctx.admin.fetchOffsets({
        groupId: ns.groupId('sms'),
        topics: [ns.topics.main('sms')],
      })
      return committed?.partitions.find((p) => p.partition === 0)?.offset === '1' ? true : undefined
    })
    assert.equal(memberIds().size, 1, 'the member was never evicted')
    assert.equal(ctx.sandbox.twilio.messages().filter((m) => m.text === slow.message).length, 1)
    d.kill('SIGTERM')
    await d.exited
  })
})
