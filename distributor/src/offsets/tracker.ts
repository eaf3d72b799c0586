// The in-memory side of the offset protocol for one claimed partition (rules 2 and 4): which offsets were
// accepted for delivery, which finished, and the contiguous finished prefix that may be recorded.

export type Acceptance = 'accept' | 'skip' | 'gap'

export class PartitionTracker {
  /** First offset not yet finished: everything below it is done. What Redis may store. */
  #next: number
  /** Next offset to accept: everything in [next, expected) is in flight or finished. */
  #expected: number
  readonly #finished = new Set<number>()

  constructor(next: number) {
    this.#next = next
    this.#expected = next
  }

  get next(): number {
    return this.#next
  }

  get expected(): number {
    return this.#expected
  }

  get inFlight(): number {
    return this.#expected - this.#next - this.#finished.size
  }

  /**
   * Decides what to do with a fetched offset. Below `expected` it was accepted before (finished, or in
   * flight): skip. Equal: accept it. Above: a gap, which these topics never have — the caller drops the
   * batch and seeks back to `expected`.
   */
  offer(offset: number): Acceptance {
    if (offset < this.#expected) return 'skip'
    if (offset > this.#expected) return 'gap'
    this.#expected = offset + 1
    return 'accept'
  }

  /** Marks an accepted offset finished (delivered or dead-lettered) and moves `next` over the prefix. */
  finish(offset: number): void {
    if (offset < this.#next || offset >= this.#expected) return
    this.#finished.add(offset)
    while (this.#finished.delete(this.#next)) this.#next += 1
  }
}
