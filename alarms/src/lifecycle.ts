// One alarm's lifecycle as pure state: what the alarms processor must write (automatic overrides, alarm
// events, the effective record) after each change of its inputs, and when it must look again. No Kafka, no
// timers, no clock: the caller passes the time, produces what is decided, and arms one timer per alarm.
//
// The decisions are level-triggered: `reconcile` compares what the topics say now with what was last
// published (the effective record, whose `memory` holds the few facts the topics do not), so a processor
// that restarts, or takes over a partition, loads the four topics, reconciles each alarm once, and carries on
// where the previous one stopped: timers are absolute times on the topics, and an event decided again gets
// the same id.
//
// How a service drives it:
// - Load: `applyChange` for every record of the registered, activations, overrides and effective topics
//   (and the parents' effective states), up to the end of each; it decides nothing. Then `reconcile` each
//   alarm once.
// - Follow: `step` for each new record, ack, parent change, and when `deadline` is reached (a timer).
//   After the load, the automatic overrides read back are the processor's own writes, already in its state
//   (stepping on them again is harmless: at worst an expired one is removed twice); the operators' ones
//   (shelved, disabled) and latched tombstones (acks) are news. The alarm's own effective records are not
//   read back after the load (an older one would roll the memory back); parents' come in as `parent`.
// - Produce what a decision holds in this order: `writes` (overrides topic), `events` (alarm events), then
//   `effective` when `publish` (the effective topic; a null is a tombstone). The effective record is the
//   memory: written last, it is never ahead of what it records. A crash before it repeats the step after the
//   restart, and a repeated event has the same `eventId` (the distributor folds it). Producing the three in
//   one Kafka transaction closes the one gap left: a crash between the events and the effective record,
//   with the inputs changing again before the restart, may decide differently the second time.
import { type AlarmEvent, type alarmEventKinds, hashedUuid } from '@herald/shared/alarm-events'
import {
  type Activation,
  type AlarmMemory,
  type AlarmSeverity,
  automaticOverrideKinds,
  type Effective,
  type EffectiveStateName,
  type Override,
  type OverrideKind,
  type OverrideOf,
  type Overrides,
  overrideKey,
  type Registration,
  severityRank,
} from '@herald/shared/alarms/schemas'
import { type EffectiveStateResult, effectiveState } from './effective.ts'

type AlarmEventKind = (typeof alarmEventKinds)[number]

/** Everything the processor knows about one alarm. Treated as immutable: every function returns a new one. */
export interface AlarmState {
  readonly name: string
  readonly registration?: Registration | undefined
  /** The registration before it was removed: the `ok` of an unregistered alarm carries its labels. */
  readonly formerRegistration?: Registration | undefined
  readonly activation?: Activation | undefined
  /** When the activation was cleared (its tombstone's timestamp): where an off-delay starts. */
  readonly clearedAt?: number | undefined
  readonly overrides: Overrides
  /** Whether the `maskedBy` parent is effectively active; undefined while not known. */
  readonly parentEffectivelyActive?: boolean | undefined
  /** The effective record last published (or read back): transitions are changes from it. */
  readonly published?: Effective | undefined
  readonly memory: AlarmMemory
}

/** An input of one alarm. `at` of a record is its Kafka timestamp. */
export type AlarmChange =
  | { type: 'registration'; registration: Registration | null }
  | { type: 'activation'; activation: Activation | null; at: number }
  | { type: 'override'; kind: OverrideKind; override: Override | null }
  | { type: 'parent'; effectivelyActive: boolean | undefined }
  /** The alarm's record on the effective topic, read back when loading: the memory of the previous owner. */
  | { type: 'effective'; effective: Effective | null }
  /** An acknowledgement handled by the processor itself (the API writes a latched tombstone instead). */
  | { type: 'ack' }
  /** `deadline` was reached. */
  | { type: 'timer' }

/** An override to produce: `override` null is a tombstone. */
export interface OverrideWrite {
  key: string
  kind: OverrideKind
  override: Override | null
}

export interface AlarmDecision {
  /** The state after the decision: the writes below are already in it. */
  state: AlarmState
  writes: OverrideWrite[]
  events: AlarmEvent[]
  /** The effective record now; null when the alarm is not registered (a tombstone). */
  effective: Effective | null
  /** The effective record differs from the one published before: produce it. */
  publish: boolean
  /** When to step again with a timer: the earliest expiry or reminder; undefined for none. */
  deadline: number | undefined
}

export interface DueReminder {
  /** 1 for the first reminder after an alarm or escalated event. */
  number: number
  event: AlarmEvent
}

export function newAlarmState(name: string): AlarmState {
  return { name, overrides: {}, memory: { events: 0, reminders: 0 } }
}

/** Records a change without deciding anything (loading); `step` is `applyChange` then `reconcile`. */
export function applyChange(state: AlarmState, change: AlarmChange): AlarmState {
  switch (change.type) {
    case 'registration':
      if (change.registration !== null) {
        return { ...state, registration: change.registration, formerRegistration: undefined }
      }
      return {
        ...state,
        registration: undefined,
        formerRegistration: state.registration ?? state.formerRegistration,
      }
    case 'activation':
      if (change.activation !== null) return { ...state, activation: change.activation, clearedAt: undefined }
      // A second tombstone (a clear repeated) does not move the time the alarm cleared.
      return {
        ...state,
        activation: undefined,
        clearedAt: state.activation !== undefined ? change.at : (state.clearedAt ?? change.at),
      }
    case 'override': {
      if (change.override !== null)
        return { ...state, overrides: { ...state.overrides, [change.kind]: change.override } }
      if (change.kind === 'latched') return acknowledge(state)
      const { [change.kind]: _removed, ...overrides } = state.overrides
      return { ...state, overrides }
    }
    case 'parent':
      return { ...state, parentEffectivelyActive: change.effectivelyActive }
    case 'effective':
      return {
        ...state,
        published: change.effective ?? undefined,
        memory: change.effective?.memory ?? state.memory,
      }
    case 'ack':
      return acknowledge(state)
    case 'timer':
      return state
  }
}

/**
 * The latch goes. When it is the latch of the trip in progress, that trip is not latched again, even by a
 * processor whose memory had not recorded the latch yet. (A latch of an earlier trip that covered this one
 * was recorded when it did; one read while loading may be an old record, which says nothing of this trip.)
 */
function acknowledge(state: AlarmState): AlarmState {
  const { latched, ...overrides } = state.overrides
  const trip = state.activation?.at
  const memory =
    trip !== undefined && latched?.at === trip ? { ...state.memory, latchedFor: trip } : state.memory
  return { ...state, overrides, memory }
}

/** `applyChange`, then `reconcile`; an `ack` of a latched alarm also writes the latched tombstone. */
export function step(state: AlarmState, change: AlarmChange, now: number): AlarmDecision {
  const acked = change.type === 'ack' && state.overrides.latched !== undefined
  return decide(applyChange(state, change), now, acked ? ['latched'] : [])
}

/** What the alarm's inputs call for at `now`: overrides to write or remove, events, the effective record. */
export function reconcile(state: AlarmState, now: number): AlarmDecision {
  return decide(state, now, [])
}

/** Overrides being changed by one decision; `writes` in the order they were decided. */
class OverrideEdits {
  readonly overrides: Overrides
  readonly #writes = new Map<OverrideKind, Override | null>()

  constructor(overrides: Overrides, removed: readonly OverrideKind[]) {
    this.overrides = { ...overrides }
    for (const kind of removed) this.#writes.set(kind, null)
  }

  set<K extends OverrideKind>(override: OverrideOf<K>): void {
    const kind: OverrideKind = override.kind
    if (canonical(this.overrides[kind]) === canonical(override)) return
    ;(this.overrides as Record<OverrideKind, Override | undefined>)[kind] = override
    this.#writes.set(kind, override)
  }

  remove(kind: OverrideKind): void {
    if (this.overrides[kind] === undefined) return
    delete this.overrides[kind]
    this.#writes.set(kind, null)
  }

  writes(name: string): OverrideWrite[] {
    return [...this.#writes].map(([kind, override]) => ({ key: overrideKey(name, kind), kind, override }))
  }
}

function decide(state: AlarmState, now: number, removed: readonly OverrideKind[]): AlarmDecision {
  const edits = new OverrideEdits(state.overrides, removed)
  const memory: AlarmMemory = { ...state.memory }
  const registration = state.registration
  // Every transition is a change from what was published: "was it effectively active" is what people
  // were told, not what the inputs said a moment ago.
  const wasEffectivelyActive = state.published?.effectivelyActive === true

  if (registration === undefined) return decideUnregistered(state, now, edits, memory)

  const { activation } = state
  // Expiries. A one-shot shelve with an `until` ends at that time too.
  const { shelved, ondelayed, offdelayed } = edits.overrides
  if (shelved?.until !== undefined && shelved.until <= now) edits.remove('shelved')
  if (ondelayed !== undefined && ondelayed.until <= now) edits.remove('ondelayed')
  if (offdelayed !== undefined && offdelayed.until <= now) edits.remove('offdelayed')

  // Automatic overrides the registration no longer asks for (it was changed).
  if (!registration.latching) edits.remove('latched')
  if (registration.onDelaySeconds === undefined) edits.remove('ondelayed')
  if (registration.offDelaySeconds === undefined) edits.remove('offdelayed')

  // The mask follows the parent. While the parent's state is not known (a restart, before its effective
  // record was read), the mask on the topic stays as it is, unless it names another parent.
  const parent = registration.maskedBy
  if (parent === undefined || state.parentEffectivelyActive === false) edits.remove('masked')
  else if (state.parentEffectivelyActive === true) edits.set({ kind: 'masked', by: parent })
  else if (edits.overrides.masked !== undefined && edits.overrides.masked.by !== parent)
    edits.remove('masked')

  if (activation !== undefined) {
    // Active again: the off-delay of the previous trip is over.
    edits.remove('offdelayed')
    if (memory.handledActivationAt === undefined) {
      // Onset from not active. The on-delay runs from the activation's own time, so a processor that sees
      // it late (a restart) waits only what is left. An alarm people are still being told about (off-delayed,
      // normal-latched) is not on-delayed again: that would send an `ok` and a new `alarm` for one condition.
      const delay = registration.onDelaySeconds
      if (delay !== undefined && !wasEffectivelyActive) {
        const until = activation.at + delay * 1000
        if (until > now) edits.set({ kind: 'ondelayed', until })
      }
    }
    // An activation whose `at` changed while it stayed present is a new trip of a condition that never
    // cleared: no on-delay, no off-delay, but it may latch again, and its events are counted afresh.
    if (memory.handledActivationAt !== activation.at) {
      memory.handledActivationAt = activation.at
      if (memory.episodeAt !== activation.at) {
        memory.episodeAt = activation.at
        memory.events = 0
      }
    }
    decideLatch(state, registration, activation, edits, memory, now)
  } else {
    // Cleared during its on-delay: the activation never counted.
    edits.remove('ondelayed')
    if (memory.handledActivationAt !== undefined) {
      // The clear of a handled activation: a one-shot shelve ends. The off-delay runs from the clear's own
      // time, and only for an alarm people were being told about: one that was shelved, disabled, masked or
      // still on-delayed when it cleared has nothing to hold on to.
      if (edits.overrides.shelved?.oneshot === true) edits.remove('shelved')
      const delay = registration.offDelaySeconds
      if (delay !== undefined && wasEffectivelyActive) {
        const until = (state.clearedAt ?? now) + delay * 1000
        if (until > now) edits.set({ kind: 'offdelayed', until })
      }
      memory.handledActivationAt = undefined
    }
  }

  const current = effectiveState({
    registration,
    activation,
    overrides: edits.overrides,
    parentEffectivelyActive: state.parentEffectivelyActive,
    now,
  })
  const severity = severityNow(registration, activation, current, state.published)
  const events: AlarmEvent[] = []
  const context = { state, registration, activation, overrides: edits.overrides, memory, now }
  if (!wasEffectivelyActive && current.effectivelyActive) {
    events.push(transition(context, 'alarm', severity, messageOf(context, current.state)))
  } else if (wasEffectivelyActive && !current.effectivelyActive) {
    const before = state.published?.severity ?? severity
    events.push(transition(context, 'ok', before, okReason(context, current.state)))
  } else if (
    wasEffectivelyActive &&
    current.effectivelyActive &&
    state.published !== undefined &&
    severityRank(severity) > severityRank(state.published.severity)
  ) {
    events.push(transition(context, 'escalated', severity, messageOf(context, current.state)))
  }

  const effective = effectiveRecord(state, current, severity, memory, now)
  let next: AlarmState = { ...state, overrides: edits.overrides, published: effective, memory }
  // A reminder is due only between events: an alarm or escalated event starts the count again.
  if (events.length === 0) {
    const reminder = reminderDue(next, now)
    if (reminder !== undefined) {
      events.push(reminder.event)
      const remembered = { ...memory, reminders: reminder.number }
      next = { ...next, memory: remembered, published: { ...effective, memory: compact(remembered) } }
    }
  }
  const published = next.published ?? null
  return {
    state: next,
    writes: edits.writes(state.name),
    events,
    effective: published,
    publish: state.published === undefined || canonical(state.published) !== canonical(published),
    deadline: earliest(nextDeadline(next), nextReminderAt(next)),
  }
}

/**
 * Unregistered (or never registered): the processor's own overrides go (the operators' stay: they may be
 * meant for a registration to come), people told about the alarm get an `ok`, and the effective record is
 * removed. The memory stays in the state, so a registration again soon after counts its events on.
 */
function decideUnregistered(
  state: AlarmState,
  now: number,
  edits: OverrideEdits,
  memory: AlarmMemory,
): AlarmDecision {
  for (const kind of automaticOverrideKinds) edits.remove(kind)
  memory.handledActivationAt = undefined
  memory.latchedFor = undefined
  const events: AlarmEvent[] = []
  const previous = state.published
  if (previous?.effectivelyActive === true) {
    // The event describes the alarm as it was registered (after a restart, only its name is known).
    const registration = state.formerRegistration ?? {
      name: state.name,
      severity: previous.severity,
      latching: false,
    }
    const context = {
      state,
      registration,
      activation: undefined,
      overrides: edits.overrides,
      memory,
      now,
    }
    events.push(transition(context, 'ok', previous.severity, 'unregistered'))
  }
  const next: AlarmState = { ...state, overrides: edits.overrides, published: undefined, memory }
  return {
    state: next,
    writes: edits.writes(state.name),
    events,
    effective: null,
    publish: previous !== undefined,
    deadline: undefined,
  }
}

/**
 * Latching alarms latch each trip once, as soon as it counts: not while on-delayed (it may never count),
 * nor while disabled (out of service) or masked (its parent accounts for it); it does latch while shelved,
 * so an operator acknowledges the trip once the shelve ends. A latch still waiting for its ack covers a new
 * trip. `latchedFor` remembers the decision, so an acknowledged trip is not latched again.
 */
function decideLatch(
  state: AlarmState,
  registration: Registration,
  activation: Activation,
  edits: OverrideEdits,
  memory: AlarmMemory,
  now: number,
): void {
  if (!registration.latching || memory.latchedFor === activation.at) return
  if (edits.overrides.latched !== undefined) {
    memory.latchedFor = activation.at
    return
  }
  const { overrides } = effectiveState({
    registration,
    activation,
    overrides: edits.overrides,
    parentEffectivelyActive: state.parentEffectivelyActive,
    now,
  })
  if (overrides.includes('disabled') || overrides.includes('masked') || overrides.includes('ondelayed'))
    return
  edits.set({ kind: 'latched', at: activation.at })
  memory.latchedFor = activation.at
}

/**
 * The activation's severity (the registration's when it names none). A cleared alarm that is still
 * effectively active (off-delayed, normal-latched) keeps the severity it alarmed with; a normal one shows the
 * registration's.
 */
function severityNow(
  registration: Registration,
  activation: Activation | undefined,
  current: EffectiveStateResult,
  published: Effective | undefined,
): AlarmSeverity {
  if (activation !== undefined) return activation.severity ?? registration.severity
  if (current.effectivelyActive && published?.effectivelyActive === true) return published.severity
  return registration.severity
}

function effectiveRecord(
  state: AlarmState,
  current: EffectiveStateResult,
  severity: AlarmSeverity,
  memory: AlarmMemory,
  now: number,
): Effective {
  const previous = state.published
  return {
    name: state.name,
    state: current.state,
    active: current.active,
    effectivelyActive: current.effectivelyActive,
    severity,
    overrides: current.overrides,
    since: previous?.state === current.state ? previous.since : now,
    ...(current.acknowledged !== undefined && { acknowledged: current.acknowledged }),
    memory: compact(memory),
  }
}

interface EventContext {
  state: AlarmState
  registration: Registration
  activation: Activation | undefined
  overrides: Overrides
  memory: AlarmMemory
  now: number
}

type TransitionKind = 'alarm' | 'escalated' | 'ok'

/**
 * An alarm, escalated or ok event, counted in the memory. Its id is derived from (alarm name, kind, the
 * activation the alarm is on, the event's number for that activation): the same decision made again after a
 * restart gets the same id, and no two transitions of one activation share one.
 */
function transition(context: EventContext, kind: TransitionKind, severity: AlarmSeverity, reason: string) {
  const { memory, now } = context
  const anchor = episodeAnchor(context)
  memory.episodeAt = anchor
  memory.events += 1
  if (kind === 'ok') {
    memory.notifiedAt = undefined
  } else {
    memory.notifiedAt = now
  }
  memory.reminders = 0
  const eventId = hashedUuid([context.state.name, kind, anchor, memory.events])
  return alarmEvent(context, kind, severity, reason, eventId)
}

/**
 * The activation events are counted from. Without a memory (the effective record was lost), the activation,
 * or the trip a latch waits for.
 */
function episodeAnchor(context: EventContext): number {
  return (
    context.memory.episodeAt ??
    context.activation?.at ??
    context.overrides.latched?.at ??
    context.state.published?.since ??
    context.now
  )
}

function alarmEvent(
  context: Pick<EventContext, 'state' | 'registration' | 'activation' | 'now'>,
  kind: AlarmEventKind,
  severity: AlarmSeverity,
  reason: string,
  eventId: string,
): AlarmEvent {
  const { registration, activation } = context
  const value = kind === 'ok' ? undefined : activation?.value
  return {
    alarmName: context.state.name,
    ...(registration.class !== undefined && { alarmDefinitionId: registration.class }),
    oldState: kind === 'alarm' ? 'OK' : 'ALARM',
    newState: kind === 'ok' ? 'OK' : 'ALARM',
    stateChangeReason: reason,
    severity,
    ...(registration.docUrl !== undefined && { link: registration.docUrl }),
    timestamp: context.now,
    kind,
    labels: eventLabels(registration),
    ...(value !== undefined && { value }),
    eventId,
  }
}

/** Routes match on labels, so the registration's class, location and category are labels too. */
function eventLabels(registration: Registration): Record<string, string> {
  return {
    ...(registration.class !== undefined && { class: registration.class }),
    ...(registration.location !== undefined && { location: registration.location }),
    ...(registration.category !== undefined && { category: registration.category }),
    ...registration.labels,
  }
}

function messageOf(context: Pick<EventContext, 'state' | 'activation'>, state: EffectiveStateName): string {
  if (context.activation?.message !== undefined) return context.activation.message
  const name = context.state.name
  switch (state) {
    case 'normal-latched':
      return `${name} cleared and waits for an acknowledgement`
    case 'off-delayed':
      return `${name} cleared (off-delay)`
    case 'latched':
      return `${name} is active (latched)`
    default:
      return `${name} is active`
  }
}

/** Why an alarm people were told about is not effectively active any more. */
function okReason(context: EventContext, state: EffectiveStateName): string {
  const { overrides } = context
  switch (state) {
    case 'disabled':
    case 'normal-disabled':
      return `disabled by ${overrides.disabled?.user}: ${overrides.disabled?.reason}`
    case 'masked':
    case 'normal-masked':
      return `masked by ${context.registration.maskedBy}`
    case 'oneshot-shelved':
    case 'normal-oneshot-shelved':
    case 'continuous-shelved':
    case 'normal-continuous-shelved':
      return `shelved by ${overrides.shelved?.user}: ${overrides.shelved?.reason}`
    case 'on-delayed':
      return 'on-delayed'
    default:
      return context.state.published?.state === 'normal-latched' ? 'acknowledged' : 'cleared'
  }
}

/**
 * The reminder due at `now`, if any: while the alarm is effectively active, not acknowledged, and its
 * registration has `repeatSeconds`, every `repeatSeconds` after the last alarm or escalated event. After a
 * pause (a restart) only the latest due one is sent, never a burst; its number says how many periods passed.
 * `step` sends it by itself (with a timer at `deadline`); this is for callers that only look.
 */
export function reminderDue(state: AlarmState, now: number): DueReminder | undefined {
  const schedule = reminderSchedule(state)
  if (schedule === undefined) return undefined
  const { registration, published, period, notifiedAt } = schedule
  const number = Math.floor((now - notifiedAt) / period)
  if (number <= state.memory.reminders) return undefined
  const anchor = state.memory.episodeAt ?? notifiedAt
  const eventId = hashedUuid([state.name, 'reminder', anchor, state.memory.events, number])
  const context = { state, registration, activation: state.activation, now }
  return {
    number,
    event: alarmEvent(context, 'reminder', published.severity, messageOf(context, published.state), eventId),
  }
}

/** When the next reminder is due; undefined when none will be. */
export function nextReminderAt(state: AlarmState): number | undefined {
  const schedule = reminderSchedule(state)
  if (schedule === undefined) return undefined
  return schedule.notifiedAt + (state.memory.reminders + 1) * schedule.period
}

/** What reminders count from, when the alarm gets reminders at all. */
function reminderSchedule(
  state: AlarmState,
): { registration: Registration; published: Effective; period: number; notifiedAt: number } | undefined {
  const { registration, published } = state
  const seconds = registration?.repeatSeconds
  const notifiedAt = state.memory.notifiedAt
  if (registration === undefined || seconds === undefined || notifiedAt === undefined) return undefined
  if (published?.effectivelyActive !== true || published.acknowledged === true) return undefined
  return { registration, published, period: seconds * 1000, notifiedAt }
}

/**
 * The earliest `until` among the alarm's shelve, on-delay and off-delay: when the effective state changes by
 * itself. A processor arms its timer at this time after loading the topics, so timers survive restarts; an
 * `until` already past is due at once. Undefined for an unregistered alarm (nothing to decide).
 */
export function nextDeadline(state: AlarmState): number | undefined {
  if (state.registration === undefined) return undefined
  const { shelved, ondelayed, offdelayed } = state.overrides
  return earliest(shelved?.until, ondelayed?.until, offdelayed?.until)
}

function earliest(...times: Array<number | undefined>): number | undefined {
  const defined = times.filter((t): t is number => t !== undefined)
  return defined.length === 0 ? undefined : Math.min(...defined)
}

/** The memory without unset fields, as it reads back from JSON. */
function compact(memory: AlarmMemory): AlarmMemory {
  return Object.fromEntries(Object.entries(memory).filter(([, v]) => v !== undefined)) as AlarmMemory
}

/** JSON with sorted keys and no undefined fields: equal values give equal strings. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  )
}
