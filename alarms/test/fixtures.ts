// Registrations, activations and a small in-memory processor for the lifecycle's unit tests. The processor
// keeps the four alarm topics as compacted maps (the latest value per key) and drives the pure core the way
// the service will: step on each input, produce writes, events and the effective record, step again at the
// deadline; restart = load the topics with applyChange, then reconcile.

import {
  type AlarmChange,
  type AlarmDecision,
  type AlarmState,
  applyChange,
  newAlarmState,
  reconcile,
  step,
} from '@herald/alarms/lifecycle'
import type { AlarmEvent } from '@herald/shared/alarm-events'
import {
  type Activation,
  activationSchema,
  type Effective,
  type Override,
  type OverrideKind,
  type Registration,
  type RegistrationInput,
  registrationSchema,
} from '@herald/shared/alarms/schemas'

/** 2025-11-13T02:13:20Z */
export const t0 = 1_763_000_000_000
export const second = 1000

export function registration(fields: Partial<RegistrationInput> = {}): Registration {
  return registrationSchema.parse({ name: 'pump-7', ...fields })
}

export function activation(at: number, fields: Partial<Activation> = {}): Activation {
  return activationSchema.parse({ source: 'test', at, ...fields })
}

/** What produce would have put on the topics: the latest value per key, and every event in order. */
export interface Topics {
  registration: Registration | null
  activation: { value: Activation | null; at: number }
  overrides: Map<OverrideKind, Override>
  effective: Effective | null
  events: AlarmEvent[]
}

export class Processor {
  state: AlarmState
  now: number
  deadline: number | undefined
  readonly topics: Topics
  /** Every decision, in order. */
  readonly decisions: AlarmDecision[] = []

  constructor(name = 'pump-7', now = t0, topics?: Topics) {
    this.state = newAlarmState(name)
    this.now = now
    this.topics = topics ?? {
      registration: null,
      activation: { value: null, at: now },
      overrides: new Map(),
      effective: null,
      events: [],
    }
  }

  get name(): string {
    return this.state.name
  }

  get effective(): Effective {
    if (this.topics.effective === null) throw new Error('no effective record')
    return this.topics.effective
  }

  /** The events produced since the last call. */
  readonly #seen = { events: 0 }
  newEvents(): AlarmEvent[] {
    const fresh = this.topics.events.slice(this.#seen.events)
    this.#seen.events = this.topics.events.length
    return fresh
  }

  /** Produces a decision; `publish: false` is a crash after the events, before the effective record. */
  produce(decision: AlarmDecision, { publish = true } = {}): AlarmDecision {
    this.decisions.push(decision)
    for (const write of decision.writes) {
      if (write.override === null) this.topics.overrides.delete(write.kind)
      else this.topics.overrides.set(write.kind, write.override)
    }
    this.topics.events.push(...decision.events)
    if (publish && decision.publish) this.topics.effective = decision.effective
    this.state = decision.state
    this.deadline = decision.deadline
    return decision
  }

  step(change: AlarmChange, options?: { publish?: boolean }): AlarmDecision {
    return this.produce(step(this.state, change, this.now), options)
  }

  register(fields: Partial<RegistrationInput> = {}): AlarmDecision {
    const value = registration({ name: this.name, ...fields })
    this.topics.registration = value
    return this.step({ type: 'registration', registration: value })
  }

  unregister(): AlarmDecision {
    this.topics.registration = null
    return this.step({ type: 'registration', registration: null })
  }

  /** Activates now (or keeps the `at` given: an update of the same trip). */
  activate(fields: Partial<Activation> = {}, options?: { publish?: boolean }): AlarmDecision {
    const value = activation(this.now, fields)
    this.topics.activation = { value, at: this.now }
    return this.step({ type: 'activation', activation: value, at: this.now }, options)
  }

  clear(): AlarmDecision {
    this.topics.activation = { value: null, at: this.now }
    return this.step({ type: 'activation', activation: null, at: this.now })
  }

  /** An operator's override, as the API writes it. */
  override(override: Override): AlarmDecision {
    this.topics.overrides.set(override.kind, override)
    return this.step({ type: 'override', kind: override.kind, override })
  }

  /** An operator removes an override (unshelve, enable; an ack is the latched tombstone). */
  remove(kind: OverrideKind): AlarmDecision {
    this.topics.overrides.delete(kind)
    return this.step({ type: 'override', kind, override: null })
  }

  shelve(fields: { until?: number; oneshot?: boolean } = {}): AlarmDecision {
    return this.override({ kind: 'shelved', reason: 'maintenance', user: 'ann', ...fields })
  }

  disable(): AlarmDecision {
    return this.override({ kind: 'disabled', reason: 'sensor broken', user: 'bob' })
  }

  /** The API's ack: a tombstone of the latch. */
  ack(): AlarmDecision {
    return this.remove('latched')
  }

  parent(effectivelyActive: boolean | undefined): AlarmDecision {
    return this.step({ type: 'parent', effectivelyActive })
  }

  /** Moves the clock, stepping with a timer at each deadline on the way (as the service's timer would). */
  advance(ms: number): void {
    const target = this.now + ms
    while (this.deadline !== undefined && this.deadline <= target) {
      this.now = Math.max(this.now, this.deadline)
      this.step({ type: 'timer' })
    }
    this.now = target
  }

  /**
   * A new processor that loads the topics (the effective record first or last, as `order` says) and
   * reconciles once, `ms` later; it shares the topics and the events produced so far.
   */
  restart(ms = 0, order: 'effective-first' | 'effective-last' = 'effective-last'): Processor {
    const next = new Processor(this.name, this.now + ms, this.topics)
    next.#seen.events = this.#seen.events
    next.state = load(this.name, this.topics, order)
    next.produce(reconcile(next.state, next.now))
    return next
  }
}

/** The state a processor builds from the topics, before it decides anything. */
export function load(
  name: string,
  topics: Topics,
  order: 'effective-first' | 'effective-last' = 'effective-last',
): AlarmState {
  const changes: AlarmChange[] = [
    { type: 'registration', registration: topics.registration },
    ...[...topics.overrides].map(([kind, override]): AlarmChange => ({ type: 'override', kind, override })),
    { type: 'activation', activation: topics.activation.value, at: topics.activation.at },
  ]
  const effective: AlarmChange = { type: 'effective', effective: topics.effective }
  const ordered = order === 'effective-first' ? [effective, ...changes] : [...changes, effective]
  return ordered.reduce(applyChange, newAlarmState(name))
}

/** `kind:newState` of each event, to compare sequences at a glance. */
export function kinds(events: readonly AlarmEvent[]): string[] {
  return events.map((e) => `${e.kind}:${e.newState}`)
}
