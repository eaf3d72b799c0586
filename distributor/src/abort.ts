// Reacting to an AbortSignal many times over: the distributor passes its one stop signal to every delivery
// and every provider request. An EventTarget listener added and removed per message was a measurable cost
// (issue 17); here each signal gets one listener, and each waiter is an entry in a set.
const waiters = new WeakMap<AbortSignal, Set<() => void>>()

/** Calls `onAbort` once when `signal` aborts (not if it already has); returns the function that forgets it. */
export function whenAborted(signal: AbortSignal, onAbort: () => void): () => void {
  let set = waiters.get(signal)
  if (!set) {
    const made = new Set<() => void>()
    signal.addEventListener(
      'abort',
      () => {
        for (const call of [...made]) call()
        made.clear()
      },
      { once: true },
    )
    waiters.set(signal, made)
    set = made
  }
  set.add(onAbort)
  const registered = set
  return () => {
    registered.delete(onAbort)
  }
}

/** Settles like `work`, or rejects with the signal's reason as soon as it aborts (even if `work` never ends). */
export function untilAborted<T>(signal: AbortSignal, work: Promise<T>): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const forget = whenAborted(signal, () => reject(signal.reason))
    work.then(resolve, reject).finally(forget)
  })
}
