// Partitioner benchmark (issue 17): CPU per record of Herald's key partitioner (shared/src/partitioner.ts)
// against kafkajs' DefaultPartitioner, which it replaced, in the same run. Both partition the same keys (the
// api's record keys: recipient addresses) over 12 partitions; rounds alternate (kafkajs first and last). The
// run is INVALID when the two give any key different partitions.
// Run: npm run bench:partitioner [-- --record]  (BENCH_RECORDS per round, default 2,000,000)
import { type PartitionerArgs, Partitioners } from 'kafkajs'
import { HeraldPartitioner } from '../shared/src/partitioner.ts'
import { appendReport, formatTable, machineFacts } from './report.ts'

const records = Number(process.env.BENCH_RECORDS ?? 2_000_000)
const partitionMetadata: PartitionerArgs['partitionMetadata'] = Array.from(
  { length: 12 },
  (_, partitionId) => ({
    partitionId,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }),
)
const keys = Array.from({ length: 1000 }, (_, n) => `user${n}@example.com`)
const args = keys.map((key) => ({
  topic: 'herald.notifications.email',
  partitionMetadata,
  message: { key, value: '' },
}))

type Who = 'kafkajs' | 'herald'
const partitioners = { kafkajs: Partitioners.DefaultPartitioner(), herald: HeraldPartitioner() }

const same = args.every((a) => partitioners.kafkajs(a) === partitioners.herald(a))

interface Round {
  who: Who
  nanosPerRecord: number
}

function round(who: Who): Round {
  const partition = partitioners[who]
  for (let i = 0; i < 100_000; i++) partition(args[i % args.length] as PartitionerArgs) // JIT warm-up
  let sum = 0
  const cpu = process.cpuUsage()
  for (let i = 0; i < records; i++) sum += partition(args[i % args.length] as PartitionerArgs)
  const used = process.cpuUsage(cpu)
  if (sum < 0) throw new Error('unreachable: keeps the loop from being optimised away')
  return { who, nanosPerRecord: ((used.user + used.system) * 1000) / records }
}

const rounds = (['kafkajs', 'herald', 'kafkajs', 'herald', 'kafkajs'] as const).map(round)
const mean = (who: Who) => {
  const of = rounds.filter((r) => r.who === who)
  return of.reduce((s, r) => s + r.nanosPerRecord, 0) / of.length
}
const table = formatTable(
  ['round', 'partitioner', 'CPU ns per record'],
  rounds.map((r, i) => [String(i + 1), r.who, r.nanosPerRecord.toFixed(0)]),
)
const summary =
  `Herald's partitioner: ${mean('herald').toFixed(0)} ns of CPU per record, ` +
  `${(mean('herald') / mean('kafkajs')).toFixed(2)}× kafkajs' DefaultPartitioner's ${mean('kafkajs').toFixed(0)} ns ` +
  `(means of the rounds); saves ${((mean('kafkajs') - mean('herald')) / 1000).toFixed(2)} µs per record` +
  (same ? '' : ' — INVALID: the partitioners disagree on a key')
console.log(`\n${table}\n\n${summary}`)
appendReport('Partitioner', [
  await machineFacts(),
  '',
  `${records} records per round, ${keys.length} recipient keys, 12 partitions; CPU of the bench process.`,
  '',
  table,
  '',
  summary,
])
if (!same) process.exitCode = 1
