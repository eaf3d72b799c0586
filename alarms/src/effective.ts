// An alarm's effective state from its registration, activation and overrides: JAWS' precedence, as a pure
// function of the time. The lifecycle (lifecycle.ts) decides which overrides exist; this only reads them.
import {
  type Activation,
  type EffectiveStateName,
  isEffectivelyActive,
  type OverrideKind,
  type Overrides,
  overrideKinds,
  type Registration,
} from '@herald/shared/alarms/schemas'

export interface EffectiveStateInput {
  registration: Registration
  activation?: Activation | undefined
  overrides: Overrides
  /**
   * Whether the `maskedBy` parent is effectively active: true/false when known, undefined when not (yet):
   * then the `masked` override on the topic decides.
   */
  parentEffectivelyActive?: boolean | undefined
  now: number
}

export interface EffectiveStateResult {
  state: EffectiveStateName
  /** An activation is present. */
  active: boolean
  /** off-delayed, latched, normal-latched or active: people are told about it. */
  effectivelyActive: boolean
  /** The overrides in force, highest precedence first (those the state hides included). */
  overrides: OverrideKind[]
  /** Latching alarms only: false while a latch waits for an acknowledgement, true otherwise. */
  acknowledged?: boolean
}

/**
 * Which overrides count at `now`. An override on the topic does not count when:
 * - it has expired: a shelve whose `until` is reached (one-shot ones too), an on- or off-delay whose `until`
 *   is reached. The processor removes it at that time; until it has, the state is already right.
 * - it does not apply to the alarm as it is now: an on-delay without an activation (it cleared during the
 *   delay, so it never counted), an off-delay with an activation (it is active again), a latch of an alarm
 *   that is no longer latching, a mask by another parent than `maskedBy` or of an alarm without one.
 * A `masked` override also gives way to what is known of the parent: a parent known to be effectively
 * active masks even before the override is written, one known not to be does not mask any more.
 */
export function overridesInForce(input: EffectiveStateInput): OverrideKind[] {
  const { registration, activation, overrides: o, parentEffectivelyActive, now } = input
  const active = activation !== undefined
  const inForce: Record<OverrideKind, boolean> = {
    disabled: o.disabled !== undefined,
    masked:
      registration.maskedBy !== undefined &&
      (parentEffectivelyActive ?? o.masked?.by === registration.maskedBy),
    ondelayed: active && o.ondelayed !== undefined && o.ondelayed.until > now,
    shelved: o.shelved !== undefined && (o.shelved.until === undefined || o.shelved.until > now),
    offdelayed: !active && o.offdelayed !== undefined && o.offdelayed.until > now,
    latched: registration.latching && o.latched !== undefined,
  }
  return overrideKinds.filter((kind) => inForce[kind])
}

/**
 * JAWS precedence, highest first: disabled > masked > on-delayed > one-shot/continuous shelved >
 * off-delayed > latched > active > normal. The state is the first override in force, with its `normal-`
 * variant when no activation is present; with none, `active` or `normal`.
 */
export function effectiveState(input: EffectiveStateInput): EffectiveStateResult {
  const overrides = overridesInForce(input)
  const active = input.activation !== undefined
  const state = stateOf(overrides[0], active, input.overrides.shelved?.oneshot === true)
  const result: EffectiveStateResult = {
    state,
    active,
    effectivelyActive: isEffectivelyActive(state),
    overrides,
  }
  // "Acknowledged" means "no trip waits for an ack", so only a latching alarm has it; a non-latching alarm
  // cannot be acknowledged (an operator silences it by shelving it).
  if (input.registration.latching) result.acknowledged = !overrides.includes('latched')
  return result
}

function stateOf(top: OverrideKind | undefined, active: boolean, oneshot: boolean): EffectiveStateName {
  switch (top) {
    case 'disabled':
      return active ? 'disabled' : 'normal-disabled'
    case 'masked':
      return active ? 'masked' : 'normal-masked'
    case 'ondelayed':
      // Only in force while active (see overridesInForce).
      return 'on-delayed'
    case 'shelved':
      if (oneshot) return active ? 'oneshot-shelved' : 'normal-oneshot-shelved'
      return active ? 'continuous-shelved' : 'normal-continuous-shelved'
    case 'offdelayed':
      // Only in force while not active.
      return 'off-delayed'
    case 'latched':
      return active ? 'latched' : 'normal-latched'
    case undefined:
      return active ? 'active' : 'normal'
  }
}
