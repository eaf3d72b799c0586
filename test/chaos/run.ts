// npm run chaos -- [--notifications 20000] [--rate 200] [--seed 1] [--faults kill,term,freeze,...|all] [--broken <variant>]
// Runs the whole system on private Kafka and Redis under a fault schedule, checks every accepted id, prints
// the result and appends it to docs/RELIABILITY.md. Exits 1 when anything was lost or a fault did not run.
import { parseArgs } from 'node:util'
import { appendReliability, type Fault, runChaos } from './harness.ts'

const all: Fault[] = [
  'kill',
  'term',
  'freeze',
  'outage',
  'auth',
  'transient',
  'permanent',
  'api',
  'broker',
  'redis',
]
const { values } = parseArgs({
  options: {
    notifications: { type: 'string', default: '20000' },
    rate: { type: 'string', default: '200' },
    seed: { type: 'string', default: '1' },
    faults: { type: 'string', default: 'all' },
    broken: { type: 'string' },
    'drain-timeout': { type: 'string', default: '600' },
    latency: { type: 'string', default: '20' },
  },
})
const faults = new Set<Fault>(values.faults === 'all' ? all : (values.faults.split(',') as Fault[]))
const options = {
  notifications: Number(values.notifications),
  ratePerSecond: Number(values.rate),
  seed: Number(values.seed),
  faults,
  drainTimeoutMs: Number(values['drain-timeout']) * 1000,
  providerLatencyMs: Number(values.latency),
  ...(values.broken ? { brokenVariant: values.broken } : {}),
  log: (line: string) => console.log(`[chaos] ${line}`),
}
const report = await runChaos(options)
appendReliability(options, report)
console.log(
  JSON.stringify({ ...report, lost: report.lost.slice(0, 50), lostCount: report.lost.length }, null, 2),
)
process.exit(report.ok ? 0 : 1)
