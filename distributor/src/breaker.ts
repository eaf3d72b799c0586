// A breaker per channel: when the provider is down or rejects Herald's credentials, every message would
// fail the same way. Consumption pauses, attempts stop counting, and a probe after a growing delay decides
// whether to resume. Nothing is dead-lettered for a provider failure.
import type { DeliveryError } from './channels/channel.ts'

export type BreakerState = 'closed' | 'open' | 'half-open'

export interface BreakerOptions {
  /** Consecutive retryable failures (no success between) that mean "the provider is down". */
  failureThreshold: number
  /** First probe delay; doubles per consecutive opening up to maxProbeDelayMs. */
  probeDelayMs: number
  maxProbeDelayMs: number
  now?: () => number
  /** Called after every change of state (opened, half-open, closed); must not throw. */
  onChange?: () => void
}

export class Breaker {
  readonly #options: BreakerOptions
  #state: BreakerState = 'closed'
  #consecutiveFailures = 0
  #openings = 0
  #openUntil = 0
  #reason = ''

  constructor(options: BreakerOptions) {
    this.#options = options
  }

  get state(): BreakerState {
    return this.#state
  }

  get reason(): string {
    return this.#reason
  }

  /** When the breaker is open: the time a probe may start. */
  get openUntil(): number {
    return this.#openUntil
  }

  /** True when deliveries must not be attempted now. */
  get blocking(): boolean {
    return this.#state === 'open'
  }

  recordSuccess(): 'closed' | 'unchanged' {
    this.#consecutiveFailures = 0
    if (this.#state === 'closed') return 'unchanged'
    this.#state = 'closed'
    this.#openings = 0
    this.#reason = ''
    this.#options.onChange?.()
    return 'closed'
  }

  /**
   * Records a failed attempt. Returns 'opened' when this failure opens the breaker (the attempt then does
   * not count against the message), 'open' when it was open already, 'counted' otherwise.
   */
  recordFailure(error: DeliveryError): 'opened' | 'open' | 'counted' {
    if (error.failureClass === 'permanent') return 'counted'
    if (this.#state === 'open') return 'open'
    this.#consecutiveFailures += 1
    const providerDown =
      error.failureClass === 'retryable' && this.#consecutiveFailures >= this.#options.failureThreshold
    if (error.failureClass === 'provider' || providerDown || this.#state === 'half-open') {
      this.#open(error)
      return 'opened'
    }
    return 'counted'
  }

  /** Moves an open breaker whose delay passed to half-open: the next deliveries are the probe. */
  tryHalfOpen(): boolean {
    const now = (this.#options.now ?? Date.now)()
    if (this.#state !== 'open' || now < this.#openUntil) return false
    this.#state = 'half-open'
    this.#options.onChange?.()
    return true
  }

  #open(error: DeliveryError): void {
    const now = (this.#options.now ?? Date.now)()
    this.#openings += 1
    const delay = Math.min(
      this.#options.maxProbeDelayMs,
      this.#options.probeDelayMs * 2 ** (this.#openings - 1),
    )
    this.#state = 'open'
    this.#openUntil = now + Math.max(delay, error.retryAfterMs ?? 0)
    this.#reason = `${error.code}: ${error.message}`
    this.#options.onChange?.()
  }
}
