// The in-memory side of the offset protocol for one claimed partition (rules 2 and 4): which offsets were
// accepted for delivery, which finished, and the contiguous finished prefix that may be recorded.

export type Acceptance = 'accept' | 'skip' | 'gap'

export class PartitionTracker {
  /** First offset not yet finished: everything below it is done. What Redis may store. */
  #next: number
  /** Next offset to accept in order: everything in [next, expected) was accepted before. */
  #expected: number
  /** Finished offsets at or above next. */
  readonly #finished = new Set<number>()
  /** Accepted offsets handed back undelivered (deferred by a long backoff or an open breaker). */
  readonly #released = new Set<number>()
  /** Offsets an earlier claim finished out of order (from Redis): skipped when they come up. */
  readonly #finishedBefore: Set<number>

  constructor(next: number, finishedBefore: Iterable<number> = []) {
    this.#next = next
    this.#expected = next
    this.#finishedBefore = new Set([...finishedBefore].filter((o) => o >= next))
  }

  get next(): number {
    return this.#next
  }

  get expected(): number {
    return this.#expected
  }

  /** Accepted offsets neither finished nor released. */
  get inFlight(): number {
    return this.#expected - this.#next - this.#finished.size - this.#released.size
  }

  /**
   * Decides what to do with a fetched offset. Below `next`, finished, or accepted and still in flight:
   * skip. Equal to `expected`, or released earlier: accept. Above `expected`: a gap, which these topics
   * never have — the caller drops the batch and seeks back to `expected`.
   */
  offer(offset: number): Acceptance {
    if (offset < this.#next || this.#finished.has(offset)) return 'skip'
    if (offset === this.#expected && this.#finishedBefore.delete(offset)) {
      // Finished by an earlier claim: counts as accepted and finished at once.
      this.#expected = offset + 1
      this.finish(offset)
      return 'skip'
    }
    if (this.#released.delete(offset)) return 'accept'
    if (offset < this.#expected) return 'skip'
    if (offset > this.#expected) return 'gap'
    this.#expected = offset + 1
    return 'accept'
  }

  /** Marks an accepted offset finished (delivered or dead-lettered) and moves `next` over the prefix. */
  finish(offset: number): void {
    if (offset < this.#next || offset >= this.#expected) return
    this.#released.delete(offset)
    this.#finished.add(offset)
    while (this.#finished.delete(this.#next)) this.#next += 1
  }

  /**
   * Moves past the offsets below `logStart`, which the log no longer holds (removed by retention or by a
   * deletion of records): they can never be fetched, so waiting for them would stall the partition.
   * Returns how many of them were unfinished, i.e. lost. Nothing happens when `next` is at or above it.
   */
  expireBelow(logStart: number): number {
    if (logStart <= this.#next) return 0
    let finishedBelow = 0
    for (const offset of this.#finished) {
      if (offset < logStart) {
        this.#finished.delete(offset)
        finishedBelow += 1
      }
    }
    for (const offset of this.#finishedBefore) {
      if (offset < logStart) {
        this.#finishedBefore.delete(offset)
        finishedBelow += 1
      }
    }
    for (const offset of this.#released) if (offset < logStart) this.#released.delete(offset)
    const unfinished = logStart - this.#next - finishedBelow
    this.#next = logStart
    this.#expected = Math.max(this.#expected, logStart)
    while (this.#finished.delete(this.#next)) this.#next += 1
    return unfinished
  }

  /** Hands an accepted, unfinished offset back: it is accepted again when fetched again. */
  release(offset: number): void {
    if (offset >= this.#next && offset < this.#expected && !this.#finished.has(offset))
      this.#released.add(offset)
  }
}
