// The alarms processor on the real stack (issue 15): records written to the alarm topics as the api writes
// them (keyed by name or <name>/<kind>, on the partition of the name), a real processor process, and what it
// produces read back: effective states, automatic overrides and alarm events for the router.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'
import { AlarmPartitioner } from '@herald/shared/alarms/partitioner'
import type { Effective } from '@herald/shared/alarms/schemas'
import { createLogger } from '@herald/shared/logger'
import {
  alarmEventTopicName,
  alarmEventTopicSpec,
  alarmTopicNames,
  alarmTopicSpecs,
  ensureTopics,
} from '@herald/shared/topics'
import type { Consumer, Producer } from 'kafkajs'
import { testContext } from '../support/context.ts'
import { serviceEnv, type TestNamespace } from '../support/fixtures.ts'
import { eventually, type ServiceProcess } from '../support/service-process.ts'

const ctx = testContext()
let ns: TestNamespace
let topics: ReturnType<typeof alarmTopicNames>
let eventsTopic: string
let producer: Producer
let follower: Consumer
let processor: ServiceProcess
const effective = new Map<string, Effective | null>()
const events: Array<Record<string, unknown>> = []
/** Keys of the overrides topic whose latest record is a tombstone. */
const overrideTombstones = new Set<string>()
const partitions = 4

function startProcessor(name: string): ServiceProcess {
  return ctx.service(
    name,
    'alarms',
    serviceEnv(
      ns,
      {},
      { KAFKA_BROKERS: ctx.brokers, REDIS_URL: ctx.redisUrl, TOPIC_PARTITIONS: String(partitions) },
    ),
  )
}

const loaded = (p: ServiceProcess) =>
  p.waitForLog((l) => l.msg === 'alarm partition loaded; following it', 60_000)

before(async () => {
  await ctx.ready
  ns = ctx.namespace('alarms')
  topics = alarmTopicNames(ns.prefix)
  eventsTopic = alarmEventTopicName(ns.prefix)
  await ensureTopics(ctx.admin, {
    specs: [...alarmTopicSpecs(topics, 1), alarmEventTopicSpec(eventsTopic, 1)],
    partitions,
    replication: 1,
    brokers: ctx.brokers.split(','),
    logger: createLogger({ service: 'test', level: 'silent' }),
  })
  producer = ctx.kafka.producer({ createPartitioner: AlarmPartitioner, allowAutoTopicCreation: false })
  await producer.connect()
  follower = ctx.kafka.consumer({ groupId: `alarms-test-${randomUUID().slice(0, 8)}`, maxWaitTimeInMs: 100 })
  await follower.connect()
  await follower.subscribe({ topics: [topics.effective, eventsTopic, topics.overrides], fromBeginning: true })
  await follower.run({
    eachMessage: async ({ topic, message }) => {
      const value = message.value ? JSON.parse(message.value.toString('utf8')) : null
      const key = message.key?.toString('utf8') ?? ''
      if (topic === eventsTopic) events.push(value)
      else if (topic === topics.overrides) {
        if (value === null) overrideTombstones.add(key)
        else overrideTombstones.delete(key)
      } else effective.set(key, value)
    },
  })
  processor = startProcessor('alarms-1')
  await loaded(processor)
})

after(async () => {
  await follower?.disconnect()
  await producer?.disconnect()
})

const audit = { 'herald-user': 'test', 'herald-source': 'test', 'herald-host': 'test' }

async function write(topic: string, key: string, value: unknown): Promise<void> {
  await producer.send({
    topic,
    acks: -1,
    messages: [{ key, value: value === null ? null : JSON.stringify(value), headers: audit }],
  })
}

const register = (name: string, fields: Record<string, unknown> = {}) =>
  write(topics.registered, name, { name, ...fields })
const activate = (name: string, at = Date.now()) =>
  write(topics.activations, name, { severity: 'HIGH', message: `${name} tripped`, source: 'test', at })
const clear = (name: string) => write(topics.activations, name, null)

function stateOf(name: string, wanted: string, timeoutMs = 30_000): Promise<Effective> {
  return eventually(
    `${name} is ${wanted}`,
    () => {
      const e = effective.get(name)
      return e?.state === wanted ? e : undefined
    },
    timeoutMs,
    50,
  )
}

const eventsOf = (name: string, kind?: string) =>
  events.filter((e) => e.alarmName === name && (kind === undefined || e.kind === kind))

test('a latching alarm stays latched after it clears until it is acknowledged; one alarm and one ok event', async () => {
  const name = `latch-${randomUUID().slice(0, 6)}`
  await register(name, { latching: true })
  await stateOf(name, 'normal')
  await activate(name)
  const latched = await stateOf(name, 'latched')
  assert.equal(latched.effectivelyActive, true)
  assert.equal(latched.acknowledged, false)
  await clear(name)
  const waiting = await stateOf(name, 'normal-latched')
  assert.equal(waiting.effectivelyActive, true, 'still told until someone acknowledges it')
  assert.equal(eventsOf(name, 'ok').length, 0, 'no ok while it waits for the ack')
  await write(topics.overrides, `${name}/latched`, null) // the api's ack
  await stateOf(name, 'normal')
  await eventually('the ok event', () => (eventsOf(name, 'ok').length > 0 ? true : undefined))
  assert.equal(eventsOf(name, 'alarm').length, 1)
  assert.equal(eventsOf(name, 'ok').length, 1)
  assert.equal(eventsOf(name, 'alarm')[0]?.newState, 'ALARM')
})

test('a shelve expires on time even when the processor is SIGKILLed in between; events keep their ids', async () => {
  const name = `shelve-${randomUUID().slice(0, 6)}`
  await register(name)
  await activate(name)
  await stateOf(name, 'active')
  await eventually('the alarm event', () => (eventsOf(name, 'alarm').length > 0 ? true : undefined))
  const until = Date.now() + 6000
  await write(topics.overrides, `${name}/shelved`, {
    kind: 'shelved',
    until,
    reason: 'maintenance',
    user: 'ann',
  })
  await stateOf(name, 'continuous-shelved')
  processor.kill('SIGKILL')
  await processor.exited
  processor = startProcessor('alarms-2')
  await loaded(processor)
  const back = await stateOf(name, 'active', 30_000)
  const lateMs = back.since - until
  assert.ok(lateMs >= 0, `not before its time (${lateMs} ms)`)
  assert.ok(lateMs <= 1000, `the shelve ended within a second of its time (${lateMs} ms late)`)
  await eventually('the alarm event after the shelve', () =>
    eventsOf(name, 'alarm').length >= 2 ? true : undefined,
  )
  const ids = new Set(eventsOf(name).map((e) => e.eventId))
  const kinds = eventsOf(name).map((e) => e.kind)
  // alarm, ok (shelved), alarm (shelve over): a repeat after the SIGKILL would carry an id already seen.
  assert.equal(ids.size, 3, `three distinct events: ${kinds.join(', ')}`)
})

test('a one-shot shelve ends when the alarm clears', async () => {
  const name = `oneshot-${randomUUID().slice(0, 6)}`
  await register(name)
  await activate(name)
  await stateOf(name, 'active')
  await write(topics.overrides, `${name}/shelved`, {
    kind: 'shelved',
    oneshot: true,
    reason: 'known',
    user: 'ann',
  })
  await stateOf(name, 'oneshot-shelved')
  await clear(name)
  await stateOf(name, 'normal')
  await eventually('the one-shot shelve is removed from the overrides topic', () =>
    overrideTombstones.has(`${name}/shelved`) ? true : undefined,
  )
  // Tripping again is not shelved any more.
  await activate(name)
  await stateOf(name, 'active')
})

test('on-delay and off-delay hold the state for their time, from the records’ own times', async () => {
  const name = `delays-${randomUUID().slice(0, 6)}`
  await register(name, { onDelaySeconds: 2, offDelaySeconds: 2 })
  const trippedAt = Date.now()
  await activate(name, trippedAt)
  await stateOf(name, 'on-delayed')
  assert.equal(eventsOf(name).length, 0, 'nobody is told while on-delayed')
  const active = await stateOf(name, 'active')
  assert.ok(active.since >= trippedAt + 2000 - 50, 'active only after the on-delay')
  await eventually('the alarm event', () => (eventsOf(name, 'alarm').length === 1 ? true : undefined))
  await clear(name)
  const held = await stateOf(name, 'off-delayed')
  assert.equal(held.effectivelyActive, true, 'still active for people during the off-delay')
  await stateOf(name, 'normal')
  await eventually('the ok event', () => (eventsOf(name, 'ok').length === 1 ? true : undefined))
})

test('a child is masked while its parent is effectively active, and disabled suppresses everything', async () => {
  const parent = `parent-${randomUUID().slice(0, 6)}`
  const child = `child-${randomUUID().slice(0, 6)}`
  await register(parent)
  await register(child, { maskedBy: parent })
  await activate(parent)
  await stateOf(parent, 'active')
  await activate(child)
  await stateOf(child, 'masked')
  assert.equal(eventsOf(child).length, 0, 'a masked child tells nobody')
  await clear(parent)
  await stateOf(child, 'active')
  await eventually('the child alarm event once unmasked', () =>
    eventsOf(child, 'alarm').length === 1 ? true : undefined,
  )

  const quiet = `disabled-${randomUUID().slice(0, 6)}`
  await register(quiet)
  await write(topics.overrides, `${quiet}/disabled`, {
    kind: 'disabled',
    reason: 'broken sensor',
    user: 'ann',
  })
  await stateOf(quiet, 'normal-disabled')
  await activate(quiet)
  await stateOf(quiet, 'disabled')
  await clear(quiet)
  await stateOf(quiet, 'normal-disabled')
  assert.equal(eventsOf(quiet).length, 0, 'a disabled alarm tells nobody')
})

test('a shelve expires on time after its partition moved to another processor', async () => {
  const second = startProcessor('alarms-3')
  await loaded(second)
  const names = Array.from({ length: 8 }, (_, i) => `moved-${i}-${randomUUID().slice(0, 4)}`)
  const until = Date.now() + 8000
  for (const name of names) {
    await register(name)
    await activate(name)
    await write(topics.overrides, `${name}/shelved`, { kind: 'shelved', until, reason: 'move', user: 'ann' })
  }
  for (const name of names) await stateOf(name, 'continuous-shelved')
  // The first processor leaves: its partitions move to the second, which loads them and re-arms the timers.
  processor.kill('SIGTERM')
  await processor.exited
  processor = second
  for (const name of names) {
    const back = await stateOf(name, 'active', 30_000)
    assert.ok(back.since - until >= 0 && back.since - until <= 1000, `${name}: ${back.since - until} ms late`)
  }
})

test('one alarm event per activation and one ok per clear across a processor SIGKILL (repeats keep their id)', async (t) => {
  const names = Array.from({ length: 40 }, (_, i) => `kill-${i}-${randomUUID().slice(0, 4)}`)
  for (const name of names) await register(name)
  for (const name of names) await stateOf(name, 'normal')
  // Activations stream in while the processor is killed half-way and a new one takes over.
  const writing = (async () => {
    for (const [i, name] of names.entries()) {
      await activate(name)
      if (i % 4 === 3) await new Promise((r) => setTimeout(r, 50))
    }
  })()
  await eventually('some alarm events out', () =>
    names.filter((n) => eventsOf(n, 'alarm').length > 0).length >= 10 ? true : undefined,
  )
  processor.kill('SIGKILL')
  await processor.exited
  await writing
  processor = startProcessor('alarms-4')
  await loaded(processor)
  for (const name of names) await stateOf(name, 'active')
  for (const name of names) await clear(name)
  for (const name of names) await stateOf(name, 'normal')
  let repeats = 0
  for (const name of names) {
    await eventually(`${name}: its ok event`, () => (eventsOf(name, 'ok').length > 0 ? true : undefined))
    const alarmIds = new Set(eventsOf(name, 'alarm').map((e) => e.eventId))
    const okIds = new Set(eventsOf(name, 'ok').map((e) => e.eventId))
    assert.equal(alarmIds.size, 1, `${name}: one alarm event id`)
    assert.equal(okIds.size, 1, `${name}: one ok event id`)
    repeats += eventsOf(name).length - 2
  }
  t.diagnostic(`events written twice across the kill (same id): ${repeats}`)
})
