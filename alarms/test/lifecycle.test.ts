import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  applyChange,
  newAlarmState,
  nextDeadline,
  nextReminderAt,
  reconcile,
  reminderDue,
  step,
} from '@herald/alarms/lifecycle'
import { parseAlarmEvent } from '@herald/shared/alarm-events'
import { effectiveSchema, overrideKey } from '@herald/shared/alarms/schemas'
import { activation, kinds, load, Processor, registration, second, t0 } from './fixtures.ts'

const minute = 60 * second

/** A registered alarm with these fields, nothing active. */
function alarm(fields: Parameters<Processor['register']>[0] = {}): Processor {
  const p = new Processor()
  p.register(fields)
  return p
}

const writes = (p: Processor) =>
  p.decisions.at(-1)?.writes.map((w) => `${w.kind}:${w.override === null ? 'removed' : 'set'}`)

describe('effective record', () => {
  test('a registered alarm is published as normal, with the registration severity, and nothing is sent', () => {
    const p = alarm({ severity: 'HIGH' })
    assert.equal(p.effective.state, 'normal')
    assert.equal(p.effective.severity, 'HIGH')
    assert.equal(p.effective.effectivelyActive, false)
    assert.equal(p.effective.since, t0)
    assert.deepEqual(p.newEvents(), [])
    assert.equal(p.deadline, undefined)
    assert.ok(effectiveSchema.safeParse(p.effective).success)
  })

  test('since stays while the state does, and moves with it', () => {
    const p = alarm()
    p.advance(minute)
    p.activate({ severity: 'LOW' })
    assert.equal(p.effective.since, t0 + minute)
    p.advance(minute)
    p.activate({ severity: 'LOW', message: 'still low', at: t0 + minute })
    assert.equal(p.effective.since, t0 + minute)
    assert.equal(p.decisions.at(-1)?.publish, false, 'an update of the message changes nothing published')
  })

  test('an activation without a severity has the registration one', () => {
    const p = alarm({ severity: 'CRITICAL' })
    p.activate()
    assert.equal(p.effective.severity, 'CRITICAL')
    assert.equal(p.newEvents()[0]?.severity, 'CRITICAL')
  })

  test('every record it publishes is valid for the effective topic', () => {
    const p = alarm({ latching: true, repeatSeconds: 30, offDelaySeconds: 5 })
    p.activate({ severity: 'HIGH' })
    p.advance(minute)
    p.clear()
    p.advance(minute)
    for (const d of p.decisions) {
      if (d.effective !== null)
        assert.deepEqual(effectiveSchema.parse(JSON.parse(JSON.stringify(d.effective))), d.effective)
    }
  })
})

describe('events', () => {
  test('an activation is one alarm event and its clear one ok event, in the alarm-event shape', () => {
    const p = alarm({
      class: 'pumps',
      location: 'hall-2',
      category: 'cooling',
      labels: { team: 'plant' },
      docUrl: 'https://wiki.example.com/pump-7',
    })
    p.activate({ severity: 'HIGH', message: 'pressure 9.1 bar', value: 9.1 })
    p.advance(minute)
    p.clear()
    const [raised, cleared, ...rest] = p.newEvents()
    assert.deepEqual(rest, [])
    assert.ok(raised && cleared)
    assert.deepEqual(raised, {
      alarmName: 'pump-7',
      alarmDefinitionId: 'pumps',
      oldState: 'OK',
      newState: 'ALARM',
      stateChangeReason: 'pressure 9.1 bar',
      severity: 'HIGH',
      link: 'https://wiki.example.com/pump-7',
      timestamp: t0,
      kind: 'alarm',
      labels: { class: 'pumps', location: 'hall-2', category: 'cooling', team: 'plant' },
      value: 9.1,
      eventId: raised.eventId,
    })
    assert.equal(cleared.kind, 'ok')
    assert.equal(cleared.oldState, 'ALARM')
    assert.equal(cleared.newState, 'OK')
    assert.equal(cleared.severity, 'HIGH', 'the ok names the severity it alarmed with')
    assert.equal(cleared.stateChangeReason, 'cleared')
    assert.equal(cleared.timestamp, t0 + minute)
    assert.equal(cleared.value, undefined)
    for (const event of [raised, cleared]) {
      const parsed = parseAlarmEvent(JSON.parse(JSON.stringify(event)))
      assert.ok(parsed.ok, JSON.stringify(parsed))
      assert.equal(parsed.event.eventId, event.eventId)
    }
  })

  test('a rising severity is escalated, a falling one sends nothing, rising again escalates again', () => {
    const p = alarm()
    p.activate({ severity: 'MEDIUM' })
    p.advance(second)
    p.activate({ severity: 'CRITICAL', at: t0 })
    p.advance(second)
    p.activate({ severity: 'LOW', at: t0 })
    p.advance(second)
    p.activate({ severity: 'HIGH', at: t0 })
    const events = p.newEvents()
    assert.deepEqual(
      events.map((e) => `${e.kind}:${e.severity}`),
      ['alarm:MEDIUM', 'escalated:CRITICAL', 'escalated:HIGH'],
    )
    assert.equal(p.effective.severity, 'HIGH')
    assert.equal(new Set(events.map((e) => e.eventId)).size, 3)
  })

  test('the same inputs give the same events with the same ids', () => {
    const run = () => {
      const p = alarm({ latching: true, offDelaySeconds: 10, repeatSeconds: 60 })
      p.activate({ severity: 'LOW' })
      p.advance(30 * second)
      p.activate({ severity: 'HIGH', at: t0 })
      p.advance(2 * minute)
      p.ack()
      p.clear()
      p.advance(minute)
      p.activate()
      p.advance(second)
      p.clear()
      return p.newEvents()
    }
    const first = run()
    assert.deepEqual(kinds(first), [
      'alarm:ALARM',
      'escalated:ALARM',
      'reminder:ALARM',
      'reminder:ALARM',
      'ok:OK',
      'alarm:ALARM',
    ])
    assert.deepEqual(run(), first)
    assert.equal(new Set(first.map((e) => e.eventId)).size, first.length, 'no two events share an id')
  })

  test('a new activation gives new ids, an update of the same one does not start a new alarm', () => {
    const p = alarm()
    p.activate()
    p.advance(second)
    p.clear()
    p.advance(second)
    p.activate()
    p.advance(second)
    p.activate({ message: 'an update', at: t0 + 2 * second })
    const events = p.newEvents()
    assert.deepEqual(kinds(events), ['alarm:ALARM', 'ok:OK', 'alarm:ALARM'])
    assert.equal(new Set(events.map((e) => e.eventId)).size, 3)
  })
})

describe('latching', () => {
  test('a latching alarm latches, stays effectively active after it clears, and an ack ends it', () => {
    const p = alarm({ latching: true })
    p.activate()
    assert.deepEqual(writes(p), ['latched:set'])
    assert.deepEqual(p.topics.overrides.get('latched'), { kind: 'latched', at: t0 })
    assert.equal(p.effective.state, 'latched')
    assert.equal(p.effective.acknowledged, false)
    p.advance(minute)
    p.clear()
    assert.equal(p.effective.state, 'normal-latched')
    assert.equal(p.effective.effectivelyActive, true)
    p.advance(minute)
    p.ack()
    assert.equal(p.effective.state, 'normal')
    assert.equal(p.effective.acknowledged, true)
    const events = p.newEvents()
    assert.deepEqual(kinds(events), ['alarm:ALARM', 'ok:OK'])
    assert.equal(events[1]?.stateChangeReason, 'acknowledged')
    assert.equal(events[1]?.timestamp, t0 + 2 * minute)
  })

  test('an ack while still active keeps it active, acknowledged, and the clear is the ok', () => {
    const p = alarm({ latching: true })
    p.activate()
    p.ack()
    assert.equal(p.effective.state, 'active')
    assert.equal(p.effective.acknowledged, true)
    p.clear()
    assert.equal(p.effective.state, 'normal')
    assert.deepEqual(kinds(p.newEvents()), ['alarm:ALARM', 'ok:OK'])
    assert.equal(p.topics.overrides.has('latched'), false)
  })

  test('an acknowledged trip is not latched again, a new trip is', () => {
    const p = alarm({ latching: true })
    p.activate()
    p.ack()
    p.shelve({ until: t0 + minute })
    p.advance(minute)
    assert.equal(p.effective.state, 'active', 'unshelved, still acknowledged')
    assert.equal(p.topics.overrides.has('latched'), false)
    p.clear()
    p.activate()
    assert.equal(p.effective.state, 'latched')
  })

  test("the processor's own ack writes the latched tombstone", () => {
    const p = alarm({ latching: true })
    p.activate()
    const decision = p.step({ type: 'ack' })
    assert.deepEqual(decision.writes, [
      { key: overrideKey('pump-7', 'latched'), kind: 'latched', override: null },
    ])
    assert.equal(p.effective.state, 'active')
    assert.deepEqual(p.step({ type: 'ack' }).writes, [], 'a second ack writes nothing')
  })

  test('a latch waiting for its ack covers a new trip: one ack ends both', () => {
    const p = alarm({ latching: true })
    p.activate()
    p.clear()
    p.advance(second)
    p.activate()
    assert.equal(p.effective.state, 'latched')
    assert.deepEqual(writes(p), [], 'the old latch stays as it is')
    p.ack()
    assert.equal(p.effective.state, 'active')
    p.clear()
    assert.deepEqual(kinds(p.newEvents()), ['alarm:ALARM', 'ok:OK'])
  })

  test('no longer latching: the latch is removed', () => {
    const p = alarm({ latching: true })
    p.activate()
    p.clear()
    p.register({ latching: false })
    assert.deepEqual(writes(p), ['latched:removed'])
    assert.equal(p.effective.state, 'normal')
    assert.equal(p.effective.acknowledged, undefined)
  })

  test('an acknowledged latch stays acknowledged after a restart', () => {
    const p = alarm({ latching: true })
    p.activate()
    p.ack()
    p.newEvents()
    for (const order of ['effective-first', 'effective-last'] as const) {
      const q = p.restart(minute, order)
      assert.equal(q.effective.state, 'active')
      assert.deepEqual(q.decisions[0]?.writes, [])
      assert.deepEqual(q.newEvents(), [])
    }
  })
})

describe('shelving', () => {
  test('a shelve silences an alarm until it expires: ok when shelved, alarm again at the expiry', () => {
    const p = alarm()
    p.activate()
    p.advance(second)
    p.shelve({ until: t0 + 10 * minute })
    assert.equal(p.effective.state, 'continuous-shelved')
    assert.equal(p.deadline, t0 + 10 * minute)
    p.advance(5 * minute)
    p.activate({ severity: 'CRITICAL', at: t0 })
    p.advance(5 * minute)
    assert.deepEqual(writes(p), ['shelved:removed'])
    assert.equal(p.topics.overrides.has('shelved'), false)
    assert.equal(p.effective.state, 'active')
    const events = p.newEvents()
    assert.deepEqual(kinds(events), ['alarm:ALARM', 'ok:OK', 'alarm:ALARM'])
    assert.equal(events[1]?.stateChangeReason, 'shelved by ann: maintenance')
    assert.equal(
      events[2]?.timestamp,
      t0 + 10 * minute,
      'at the expiry, not when the clock was next looked at',
    )
    assert.equal(events[2]?.severity, 'CRITICAL')
  })

  test('a shelved alarm that activates, escalates and clears sends nothing', () => {
    const p = alarm()
    p.shelve({ until: t0 + 10 * minute })
    p.activate()
    p.activate({ severity: 'CRITICAL', at: t0 })
    p.clear()
    p.advance(10 * minute)
    assert.deepEqual(p.newEvents(), [])
    assert.equal(p.effective.state, 'normal')
  })

  test('a newer shelve replaces the older one and its expiry', () => {
    const p = alarm()
    p.activate()
    p.shelve({ until: t0 + 10 * minute })
    p.shelve({ until: t0 + minute })
    assert.equal(p.deadline, t0 + minute)
    p.advance(minute)
    assert.equal(p.effective.state, 'active')
    p.shelve({ until: t0 + 2 * minute })
    p.shelve({ until: t0 + 30 * minute })
    p.advance(2 * minute)
    assert.equal(p.effective.state, 'continuous-shelved', 'the earlier expiry no longer applies')
    assert.equal(p.deadline, t0 + 30 * minute)
  })

  test('a shelve expires on time after a restart, also when it expired while nobody was running', () => {
    const p = alarm()
    p.activate()
    p.shelve({ until: t0 + 10 * minute })
    p.newEvents()
    const early = p.restart(minute)
    assert.equal(early.deadline, t0 + 10 * minute, 'the timer is re-armed from the topic')
    assert.equal(nextDeadline(early.state), t0 + 10 * minute)
    early.advance(9 * minute)
    assert.equal(early.effective.state, 'active')
    assert.equal(early.effective.since, t0 + 10 * minute)

    const q = alarm()
    q.activate()
    q.shelve({ until: t0 + 10 * minute })
    q.newEvents()
    const late = q.restart(20 * minute)
    assert.equal(late.effective.state, 'active')
    assert.deepEqual(
      late.decisions[0]?.writes.map((w) => w.kind),
      ['shelved'],
    )
    assert.deepEqual(kinds(late.newEvents()), ['alarm:ALARM'])
  })

  test('a one-shot shelve ends when the alarm clears', () => {
    const p = alarm()
    p.activate()
    p.shelve({ oneshot: true })
    assert.equal(p.effective.state, 'oneshot-shelved')
    assert.equal(p.deadline, undefined)
    p.advance(minute)
    p.clear()
    assert.deepEqual(writes(p), ['shelved:removed'])
    assert.equal(p.effective.state, 'normal')
    p.advance(minute)
    p.activate()
    assert.equal(p.effective.state, 'active', 'the next trip is not shelved')
    assert.deepEqual(kinds(p.newEvents()), ['alarm:ALARM', 'ok:OK', 'alarm:ALARM'])
  })

  test('a one-shot shelve of a normal alarm shelves its next trip, until that clears', () => {
    const p = alarm()
    p.shelve({ oneshot: true })
    assert.equal(p.effective.state, 'normal-oneshot-shelved')
    p.activate()
    assert.equal(p.effective.state, 'oneshot-shelved')
    p.clear()
    assert.equal(p.effective.state, 'normal')
    assert.equal(p.topics.overrides.has('shelved'), false)
    assert.deepEqual(p.newEvents(), [])
  })

  test('a one-shot shelve with an until ends at that time if the alarm has not cleared', () => {
    const p = alarm()
    p.activate()
    p.shelve({ oneshot: true, until: t0 + minute })
    assert.equal(p.deadline, t0 + minute)
    p.advance(minute)
    assert.equal(p.effective.state, 'active')
  })

  test('a latching alarm still latches while shelved, and waits for its ack once the shelve is over', () => {
    const p = alarm({ latching: true })
    p.shelve({ until: t0 + minute })
    p.activate()
    p.clear()
    assert.equal(p.effective.state, 'normal-continuous-shelved')
    p.advance(minute)
    assert.equal(p.effective.state, 'normal-latched')
    assert.deepEqual(kinds(p.newEvents()), ['alarm:ALARM'])
    assert.equal(p.newEvents().length, 0)
  })
})

describe('on-delay', () => {
  test('an activation counts once it has lasted onDelaySeconds', () => {
    const p = alarm({ onDelaySeconds: 30, latching: true })
    p.activate()
    assert.deepEqual(p.topics.overrides.get('ondelayed'), { kind: 'ondelayed', until: t0 + 30 * second })
    assert.equal(p.topics.overrides.has('latched'), false, 'not latched before it counts')
    assert.equal(p.effective.state, 'on-delayed')
    assert.equal(p.deadline, t0 + 30 * second)
    p.advance(29 * second)
    assert.deepEqual(p.newEvents(), [])
    p.advance(second)
    assert.deepEqual(writes(p), ['ondelayed:removed', 'latched:set'])
    assert.equal(p.effective.state, 'latched')
    const [raised] = p.newEvents()
    assert.equal(raised?.kind, 'alarm')
    assert.equal(raised?.timestamp, t0 + 30 * second)
  })

  test('an alarm that clears during its on-delay never alarms, and is not off-delayed', () => {
    const p = alarm({ onDelaySeconds: 30, offDelaySeconds: 30 })
    p.activate()
    p.advance(10 * second)
    p.clear()
    assert.deepEqual(writes(p), ['ondelayed:removed'])
    assert.equal(p.effective.state, 'normal')
    p.advance(minute)
    assert.deepEqual(p.newEvents(), [])
    assert.equal(p.deadline, undefined)
  })

  test('the on-delay runs from the activation time: seen late, it waits only what is left', () => {
    const p = alarm({ onDelaySeconds: 30 })
    p.now = t0 + 20 * second
    p.step({ type: 'activation', activation: activation(t0), at: t0 })
    assert.equal(p.deadline, t0 + 30 * second)
    const q = alarm({ onDelaySeconds: 30 })
    q.now = t0 + 40 * second
    q.step({ type: 'activation', activation: activation(t0), at: t0 })
    assert.equal(q.topics.overrides.has('ondelayed'), false)
    assert.equal(q.effective.state, 'active')
    assert.deepEqual(kinds(q.newEvents()), ['alarm:ALARM'])
  })

  test('an alarm still off-delayed that activates again is not on-delayed: no ok and alarm for one condition', () => {
    const p = alarm({ onDelaySeconds: 30, offDelaySeconds: 30 })
    p.activate()
    p.advance(30 * second)
    p.clear()
    p.advance(10 * second)
    p.activate()
    assert.equal(p.effective.state, 'active')
    assert.deepEqual(writes(p), ['offdelayed:removed'])
    assert.deepEqual(kinds(p.newEvents()), ['alarm:ALARM'])
  })
})

describe('off-delay', () => {
  test('a cleared alarm stays effectively active for offDelaySeconds from its clear, then is ok', () => {
    const p = alarm({ offDelaySeconds: 20 })
    p.activate()
    p.advance(minute)
    p.clear()
    assert.deepEqual(p.topics.overrides.get('offdelayed'), {
      kind: 'offdelayed',
      until: t0 + minute + 20 * second,
    })
    assert.equal(p.effective.state, 'off-delayed')
    assert.equal(p.effective.effectivelyActive, true)
    p.advance(19 * second)
    assert.deepEqual(kinds(p.newEvents()), ['alarm:ALARM'])
    p.advance(second)
    assert.deepEqual(writes(p), ['offdelayed:removed'])
    assert.equal(p.effective.state, 'normal')
    const [cleared] = p.newEvents()
    assert.equal(cleared?.kind, 'ok')
    assert.equal(cleared?.timestamp, t0 + minute + 20 * second)
  })

  test('a flapping source alarms once', () => {
    const p = alarm({ offDelaySeconds: 20 })
    for (let i = 0; i < 5; i++) {
      p.activate()
      p.advance(5 * second)
      p.clear()
      p.advance(5 * second)
    }
    p.advance(minute)
    assert.deepEqual(kinds(p.newEvents()), ['alarm:ALARM', 'ok:OK'])
  })

  test('the off-delay runs from the time of the clear: a processor that restarts later waits only what is left', () => {
    const p = alarm({ offDelaySeconds: 20 })
    p.activate()
    p.advance(minute)
    // The clear is on the topic, the processor is down.
    p.topics.activation = { value: null, at: p.now }
    const q = p.restart(5 * second)
    assert.equal(q.effective.state, 'off-delayed')
    assert.equal(q.deadline, t0 + minute + 20 * second)
    const r = p.restart(30 * second)
    assert.equal(r.effective.state, 'normal')
  })

  test('no off-delay for an alarm that was shelved when it cleared', () => {
    const p = alarm({ offDelaySeconds: 20 })
    p.activate()
    p.shelve({ oneshot: true })
    p.clear()
    assert.equal(p.topics.overrides.has('offdelayed'), false)
    assert.equal(p.effective.state, 'normal')
    assert.deepEqual(kinds(p.newEvents()), ['alarm:ALARM', 'ok:OK'])
  })
})

describe('masking', () => {
  test('an alarm is masked while its parent is effectively active', () => {
    const p = alarm({ maskedBy: 'mains' })
    p.activate()
    p.parent(true)
    assert.deepEqual(p.topics.overrides.get('masked'), { kind: 'masked', by: 'mains' })
    assert.equal(p.effective.state, 'masked')
    p.activate({ severity: 'CRITICAL', at: t0 })
    p.parent(false)
    assert.deepEqual(writes(p), ['masked:removed'])
    assert.equal(p.effective.state, 'active')
    const events = p.newEvents()
    assert.deepEqual(kinds(events), ['alarm:ALARM', 'ok:OK', 'alarm:ALARM'])
    assert.equal(events[1]?.stateChangeReason, 'masked by mains')
    assert.equal(events[2]?.severity, 'CRITICAL')
  })

  test('a masked alarm that activates and clears sends nothing, and a latching one does not latch', () => {
    const p = alarm({ maskedBy: 'mains', latching: true })
    p.parent(true)
    assert.equal(p.effective.state, 'normal-masked')
    p.activate()
    p.clear()
    p.parent(false)
    assert.equal(p.effective.state, 'normal')
    assert.deepEqual(p.newEvents(), [])
    assert.equal(p.topics.overrides.has('latched'), false)
  })

  test("while the parent's state is unknown the mask on the topic stays; a mask by another parent goes", () => {
    const p = alarm({ maskedBy: 'mains' })
    p.parent(true)
    const q = p.restart(minute)
    assert.equal(q.state.parentEffectivelyActive, undefined)
    assert.equal(q.effective.state, 'normal-masked')
    q.register({ maskedBy: 'generator' })
    assert.deepEqual(writes(q), ['masked:removed'])
    q.register({})
    assert.equal(q.effective.state, 'normal')
  })
})

describe('disabling', () => {
  test('disabled suppresses everything: no events, no latch, until enabled', () => {
    const p = alarm({ latching: true, repeatSeconds: 10, offDelaySeconds: 10 })
    p.activate()
    p.disable()
    assert.equal(p.effective.state, 'disabled')
    p.ack()
    p.clear()
    p.advance(second)
    p.activate()
    p.activate({ severity: 'CRITICAL', at: p.now })
    assert.equal(p.topics.overrides.has('latched'), false, 'a trip while disabled does not latch')
    p.advance(10 * minute)
    p.clear()
    p.advance(minute)
    p.activate()
    assert.equal(p.effective.state, 'disabled')
    assert.equal(p.deadline, undefined)
    const whileDisabled = p.newEvents()
    assert.deepEqual(kinds(whileDisabled), ['alarm:ALARM', 'ok:OK'])
    assert.equal(whileDisabled[1]?.stateChangeReason, 'disabled by bob: sensor broken')
    p.remove('disabled')
    assert.equal(p.effective.state, 'latched', 'enabled while active: it counts now, and latches')
    assert.deepEqual(kinds(p.newEvents()), ['alarm:ALARM'])
  })
})

describe('reminders', () => {
  test('a reminder every repeatSeconds while effectively active and not acknowledged', () => {
    const p = alarm({ latching: true, repeatSeconds: 60 })
    p.activate({ message: 'pressure high' })
    assert.equal(p.deadline, t0 + minute)
    p.advance(3 * minute + 30 * second)
    const events = p.newEvents()
    assert.deepEqual(kinds(events), ['alarm:ALARM', 'reminder:ALARM', 'reminder:ALARM', 'reminder:ALARM'])
    assert.deepEqual(
      events.slice(1).map((e) => e.timestamp),
      [t0 + minute, t0 + 2 * minute, t0 + 3 * minute],
    )
    assert.equal(events[1]?.stateChangeReason, 'pressure high')
    assert.equal(new Set(events.map((e) => e.eventId)).size, 4)
    p.ack()
    assert.equal(p.deadline, undefined, 'acknowledged: no more reminders')
    p.advance(10 * minute)
    assert.deepEqual(p.newEvents(), [])
  })

  test('reminderDue says which reminder is due; after a pause only the latest, never a burst', () => {
    const p = alarm({ repeatSeconds: 60 })
    p.activate()
    assert.equal(reminderDue(p.state, t0 + 59 * second), undefined)
    assert.equal(reminderDue(p.state, t0 + minute)?.number, 1)
    assert.equal(nextReminderAt(p.state), t0 + minute)
    const late = reminderDue(p.state, t0 + 10 * minute + 5 * second)
    assert.equal(late?.number, 10)
    assert.equal(late?.event.kind, 'reminder')
    const q = p.restart(10 * minute + 5 * second)
    const events = q.newEvents()
    assert.deepEqual(kinds(events), ['alarm:ALARM', 'reminder:ALARM'])
    assert.equal(events[1]?.eventId, late?.event.eventId)
    assert.equal(q.deadline, t0 + 11 * minute)
  })

  test('reminders continue after a clear while latched and while off-delayed, and stop when ok', () => {
    const p = alarm({ latching: true, repeatSeconds: 60, offDelaySeconds: 90 })
    p.activate()
    p.advance(30 * second)
    p.clear()
    p.advance(minute)
    assert.equal(p.effective.state, 'off-delayed')
    p.advance(minute)
    assert.equal(p.effective.state, 'normal-latched')
    p.ack()
    p.advance(5 * minute)
    assert.deepEqual(kinds(p.newEvents()), ['alarm:ALARM', 'reminder:ALARM', 'reminder:ALARM', 'ok:OK'])
  })

  test('an escalation starts the count again; a shelved alarm gets none', () => {
    const p = alarm({ repeatSeconds: 60 })
    p.activate()
    p.advance(50 * second)
    p.activate({ severity: 'CRITICAL', at: t0 })
    assert.equal(p.deadline, t0 + 110 * second)
    p.shelve({ until: t0 + 10 * minute })
    p.advance(5 * minute)
    assert.deepEqual(kinds(p.newEvents()), ['alarm:ALARM', 'escalated:ALARM', 'ok:OK'])
  })

  test('the same reminder decided twice has the same id', () => {
    const p = alarm({ repeatSeconds: 60 })
    p.activate()
    const a = reminderDue(p.state, t0 + 61 * second)
    const b = reminderDue(p.state, t0 + 62 * second)
    assert.equal(a?.event.eventId, b?.event.eventId)
    assert.notEqual(a?.event.timestamp, b?.event.timestamp)
  })
})

describe('restarts', () => {
  test('a crash after the events, before the effective record: the restart sends the same events again, same ids', () => {
    const p = alarm({ latching: true })
    const lost = p.activate({}, { publish: false })
    assert.equal(p.topics.effective?.state, 'normal')
    const q = p.restart(5 * second)
    assert.deepEqual(q.decisions[0]?.writes, [], 'the latch on the topic is the same decision')
    assert.deepEqual(
      q.decisions[0]?.events.map((e) => e.eventId),
      lost.events.map((e) => e.eventId),
    )
    assert.equal(q.effective.state, 'latched')
  })

  test('restarting with nothing new decides nothing, whatever the order the topics are read in', () => {
    const p = alarm({ latching: true, offDelaySeconds: 60, repeatSeconds: 600, maskedBy: 'mains' })
    p.activate()
    p.shelve({ until: t0 + 10 * minute })
    p.advance(minute)
    p.clear()
    p.newEvents()
    for (const order of ['effective-first', 'effective-last'] as const) {
      const q = p.restart(0, order)
      assert.deepEqual(q.decisions[0]?.writes, [])
      assert.deepEqual(q.newEvents(), [])
      assert.equal(q.decisions[0]?.publish, false)
      assert.equal(q.deadline, p.deadline)
    }
  })

  test('an activation seen only after a restart still alarms, and latches, once', () => {
    const p = alarm({ latching: true })
    p.topics.activation = { value: activation(t0), at: t0 }
    const q = p.restart(second)
    assert.equal(q.effective.state, 'latched')
    assert.deepEqual(kinds(q.newEvents()), ['alarm:ALARM'])
    const r = q.restart(second)
    assert.deepEqual(r.newEvents(), [])
  })

  test('an old latch and its ack read while loading do not acknowledge the trip in progress', () => {
    // Before the crash: trip 1 latched and was acknowledged; trip 2 arrived, and the processor died before
    // writing its latch. The overrides topic, not yet compacted, still holds trip 1's latch and tombstone.
    const p = alarm({ latching: true })
    p.activate()
    p.ack()
    p.clear()
    p.advance(minute)
    const before = p.state
    const trip2 = activation(p.now)
    const loaded = [
      { type: 'activation', activation: trip2, at: p.now },
      { type: 'override', kind: 'latched', override: { kind: 'latched', at: t0 } },
      { type: 'override', kind: 'latched', override: null },
    ] as const
    const state = loaded.reduce(applyChange, before)
    const decision = reconcile(state, p.now)
    assert.deepEqual(
      decision.writes.map((w) => w.override),
      [{ kind: 'latched', at: p.now }],
    )
    assert.equal(decision.effective?.state, 'latched')
  })

  test('loading decides nothing: applyChange only records', () => {
    const p = alarm({ latching: true })
    p.activate()
    const state = load('pump-7', p.topics)
    assert.deepEqual(state.overrides, { latched: { kind: 'latched', at: t0 } })
    assert.equal(state.activation?.at, t0)
    assert.equal(state.published?.state, 'latched')
    assert.equal(state.memory.latchedFor, t0)
  })
})

describe('registration', () => {
  test('unregistering an alarm that alarms sends ok, removes automatic overrides and the effective record', () => {
    const p = alarm({ latching: true, labels: { team: 'plant' } })
    p.activate()
    p.shelve({ until: t0 + minute })
    p.remove('shelved')
    const decision = p.unregister()
    assert.equal(decision.effective, null)
    assert.equal(decision.publish, true)
    assert.deepEqual(
      decision.writes.map((w) => w.kind),
      ['latched'],
    )
    assert.equal(p.topics.effective, null)
    const events = p.newEvents()
    assert.deepEqual(kinds(events), ['alarm:ALARM', 'ok:OK', 'alarm:ALARM', 'ok:OK'])
    assert.equal(events[3]?.stateChangeReason, 'unregistered')
    assert.deepEqual(events[3]?.labels, { team: 'plant' })
    assert.equal(new Set(events.map((e) => e.eventId)).size, 4)
  })

  test("unregistering keeps the operators' overrides and an activation of an unregistered alarm is ignored", () => {
    const p = alarm()
    p.disable()
    const decision = p.unregister()
    assert.deepEqual(decision.writes, [])
    assert.ok(p.topics.overrides.has('disabled'))
    p.activate()
    assert.deepEqual(p.newEvents(), [])
    assert.equal(p.decisions.at(-1)?.publish, false)
    assert.equal(nextDeadline(p.state), undefined)
  })

  test('a registration again while the alarm is active alarms again with a new id', () => {
    const p = alarm()
    p.activate()
    p.unregister()
    p.register()
    const events = p.newEvents()
    assert.deepEqual(kinds(events), ['alarm:ALARM', 'ok:OK', 'alarm:ALARM'])
    assert.equal(new Set(events.map((e) => e.eventId)).size, 3)
  })
})

describe('state helpers', () => {
  test('nextDeadline is the earliest until among the shelve, on-delay and off-delay', () => {
    let state = applyChange(newAlarmState('pump-7'), { type: 'registration', registration: registration() })
    assert.equal(nextDeadline(state), undefined)
    const put = (override: Parameters<typeof step>[1]) => {
      state = applyChange(state, override)
    }
    put({
      type: 'override',
      kind: 'shelved',
      override: { kind: 'shelved', until: t0 + 3 * minute, reason: 'r', user: 'u' },
    })
    put({ type: 'override', kind: 'offdelayed', override: { kind: 'offdelayed', until: t0 + 2 * minute } })
    assert.equal(nextDeadline(state), t0 + 2 * minute)
    put({ type: 'override', kind: 'ondelayed', override: { kind: 'ondelayed', until: t0 + minute } })
    assert.equal(nextDeadline(state), t0 + minute)
    put({
      type: 'override',
      kind: 'shelved',
      override: { kind: 'shelved', oneshot: true, reason: 'r', user: 'u' },
    })
    put({ type: 'override', kind: 'ondelayed', override: null })
    put({ type: 'override', kind: 'offdelayed', override: null })
    assert.equal(nextDeadline(state), undefined, 'a one-shot shelve without until has no time')
  })

  test('reconcile returns new state objects and leaves the old ones as they were', () => {
    const p = alarm({ latching: true })
    const before = structuredClone(p.state)
    const frozen = p.state
    reconcile(p.state, t0)
    step(p.state, { type: 'activation', activation: activation(t0), at: t0 }, t0)
    assert.deepEqual(frozen, before)
  })
})
