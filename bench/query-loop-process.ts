// The rules benchmark's baseline as a process of its own (so its CPU is read from /proc like the evaluator's):
// a bare loop issuing the evaluator's GET /query calls (rules/src/queries.ts, the same client and timeout) for
// `<rules>` rules named `<namePrefix><i>`, each at its own grid points (rules/src/schedule.ts: the evaluator's
// spread), with at most `<concurrency>` calls in flight. Nothing else: no Kafka, no Redis, no state, no metrics.
//   node bench/query-loop-process.ts <engineUrl> <namePrefix> <rules> <intervalMs> <concurrency> <warmupMs> <seconds>
// Prints {"startedAt": <epoch ms>} at once; the window is [startedAt + warmupMs, + seconds]. After it, prints
// {"calls", "failed", "lateness": {"p50","p99","max"}} (ms from each call's grid point to its start, for the
// calls due in the window) and exits.
import { setTimeout as sleep } from 'node:timers/promises'
import { queryAlertsEngine } from '../rules/src/queries.ts'
import { phaseOf } from '../rules/src/schedule.ts'
import { percentile } from './report.ts'

const [url, namePrefix, rulesText, intervalText, concurrencyText, warmupText, secondsText] =
  process.argv.slice(2)
if (!url || namePrefix === undefined || !secondsText) {
  console.error(
    'usage: node bench/query-loop-process.ts <engineUrl> <namePrefix> <rules> <intervalMs> <concurrency> <warmupMs> <seconds>',
  )
  process.exit(2)
}
const intervalMs = Number(intervalText)
const concurrency = Number(concurrencyText)
/** The evaluator's timeout per call for this interval. */
const timeoutMs = Math.max(200, Math.min(10_000, Math.floor(intervalMs / 2)))
const order = Array.from({ length: Number(rulesText) }, (_, i) => `${namePrefix}${i}`)
  .map((name) => ({ name, phase: phaseOf(name, intervalMs) }))
  .sort((a, b) => a.phase - b.phase)

const startedAt = Date.now()
console.log(JSON.stringify({ startedAt }))
const windowStart = startedAt + Number(warmupText)
const windowEnd = windowStart + Number(secondsText) * 1000

let inFlight = 0
let released: (() => void) | undefined
const lateness: number[] = []
let failed = 0

// Grid points are phase + k × interval: walk them in time order from the first one at or after the start.
let cycle = Math.floor(startedAt / intervalMs)
let i = order.findIndex((r) => cycle * intervalMs + r.phase >= startedAt)
if (i < 0) {
  i = 0
  cycle++
}
for (;;) {
  const rule = order[i] as { name: string; phase: number }
  const due = cycle * intervalMs + rule.phase
  if (due >= windowEnd) break
  const wait = due - Date.now()
  if (wait > 0) await sleep(wait)
  while (inFlight >= concurrency) await new Promise<void>((resolve) => (released = resolve))
  const started = Date.now()
  const counted = due >= windowStart
  if (counted) lateness.push(started - due)
  inFlight++
  void queryAlertsEngine(url, { query: rule.name }, timeoutMs)
    .then((result) => {
      if (counted && !result.ok) failed++
    })
    .finally(() => {
      inFlight--
      const release = released
      released = undefined
      release?.()
    })
  i++
  if (i === order.length) {
    i = 0
    cycle++
  }
}
while (inFlight > 0) await new Promise<void>((resolve) => (released = resolve))
const sorted = lateness.sort((a, b) => a - b)
console.log(
  JSON.stringify({
    calls: sorted.length,
    failed,
    lateness: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? 0 },
  }),
)
process.exit(0)
