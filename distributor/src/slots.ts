// A counting semaphore: DELIVERY_CONCURRENCY delivery slots shared by every partition a replica holds, so the
// setting bounds what one replica has in flight (and its SMTP pool) however many partitions it was given.

export class Slots {
  #free: number
  readonly #waiting: Array<() => void> = []

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`slots: size must be ≥ 1, got ${size}`)
    this.#free = size
  }

  /** Slots not taken right now. */
  get free(): number {
    return this.#free
  }

  /** Resolves once a slot is taken, in the order asked. */
  acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free -= 1
      return Promise.resolve()
    }
    return new Promise((resolve) => this.#waiting.push(resolve))
  }

  /** Gives a slot back: to the longest waiter, if any. */
  release(): void {
    const next = this.#waiting.shift()
    if (next) next()
    else this.#free += 1
  }
}
