// npm run chaos -- [--notifications 20000] [--rate 200] [--seed 1] [--faults kill,term,...|all]
//                  [--latency 20] [--settle-timeout 600] [--control | --broken <variant>] [--record] [--cluster]
// Runs the whole system on private Kafka and Redis under a fault schedule and checks every accepted id once
// every partition's stored offset reached its log end. --cluster runs it on a private clustered stack
// (three KRaft brokers, a Redis Cluster of three primaries with a replica each); there `all` also kills the
// leader broker of the busiest partition and the Redis primary of the email offsets, and skips the
// restarts of the only broker and the only Redis (the report says so and why). --control runs the same settings again against a
// broken distributor (the negative control: it must lose ids) and shows both runs side by side; --broken
// runs only a broken one. The result is printed, and appended to docs/RELIABILITY.md only with --record.
// Exits 1 when an id was lost, the group stalled or a fault could not be shown (or the control lost nothing).
import { parseArgs } from 'node:util'
import {
  allFaultsOf,
  appendSection,
  type ChaosOptions,
  type ChaosRun,
  type Fault,
  formatSection,
  knownFaults,
  reliabilityDoc,
  runChaos,
} from './harness.ts'

const { values } = parseArgs({
  options: {
    notifications: { type: 'string', default: '20000' },
    rate: { type: 'string', default: '200' },
    seed: { type: 'string', default: '1' },
    faults: { type: 'string', default: 'all' },
    broken: { type: 'string' },
    control: { type: 'boolean', default: false },
    'control-variant': { type: 'string', default: 'advance-before-delivery' },
    'settle-timeout': { type: 'string', default: '600' },
    latency: { type: 'string', default: '20' },
    burst: { type: 'string', default: '20' },
    record: { type: 'boolean', default: false },
    cluster: { type: 'boolean', default: false },
  },
})
const faults = new Set<Fault>(
  values.faults === 'all' ? allFaultsOf(values.cluster) : (values.faults.split(',') as Fault[]),
)
const unknown = [...faults].filter((f) => !knownFaults.includes(f))
if (unknown.length > 0) {
  console.error(`unknown fault ${unknown.join(', ')}; known: ${knownFaults.join(', ')}, all`)
  process.exit(2)
}
if (values.control && !faults.has('kill')) {
  console.error('--control needs the kill fault: the broken variant loses what a kill mid-delivery catches')
  process.exit(2)
}
const options: ChaosOptions = {
  notifications: Number(values.notifications),
  ratePerSecond: Number(values.rate),
  seed: Number(values.seed),
  faults,
  cluster: values.cluster,
  settleTimeoutMs: Number(values['settle-timeout']) * 1000,
  providerLatencyMs: Number(values.latency),
  burst: Number(values.burst),
  ...(values.broken ? { brokenVariant: values.broken } : {}),
  log: (line: string) => console.log(`[chaos] ${line}`),
}
const runs: ChaosRun[] = [{ options, report: await runChaos(options) }]
if (values.control) {
  // The same settings, one change: the distributor.
  const control = { ...options, brokenVariant: values['control-variant'] }
  runs.push({ options: control, report: await runChaos(control) })
}
const section = formatSection(runs)
console.log(section)
for (const { options: o, report } of runs) {
  console.log(
    JSON.stringify(
      {
        distributor: o.brokenVariant ?? 'correct',
        ...report,
        lost: report.lost.slice(0, 50),
        lostCount: report.lost.length,
      },
      null,
      2,
    ),
  )
}
if (values.record) {
  appendSection(reliabilityDoc, section)
  console.log(`[chaos] appended to ${reliabilityDoc}`)
}
const [main, control] = runs
const broken = (o: ChaosOptions) => o.brokenVariant !== undefined
// A broken distributor "passes" when the checker sees it lose; the correct one when nothing was lost.
const passed = (r: ChaosRun) =>
  broken(r.options) ? r.report.lost.length > 0 && r.report.faultsMissing.length === 0 : r.report.ok
process.exit(main && passed(main) && (!control || passed(control)) ? 0 : 1)
