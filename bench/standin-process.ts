// A provider stand-in as a child process of a benchmark, so the provider's CPU is not the load generator's:
//   node bench/standin-process.ts <recordDir> <latencyMs> [smtp|slack]
// Quiet, nothing kept in memory (the JSONL record in <recordDir>/<provider>.jsonl keeps every receipt with its
// time); prints one JSON line {"url","httpUrl"} once it listens, and closes on SIGTERM. The Slack stand-in
// answers every /services/<name> path, so one process serves any number of webhook destinations.
import { startSlackStandIn } from '../dev/standins/slack.ts'
import { startSmtpStandIn } from '../dev/standins/smtp.ts'

const [recordDir, latencyText, provider = 'smtp'] = process.argv.slice(2)
if (!recordDir || !['smtp', 'slack'].includes(provider)) {
  console.error('usage: node bench/standin-process.ts <recordDir> [latencyMs] [smtp|slack]')
  process.exit(2)
}
const options = {
  port: 0,
  quiet: true,
  recordDir,
  maxMessages: 1,
  faults: { latencyMs: Number(latencyText ?? 0) },
}
const standIn =
  provider === 'slack'
    ? await startSlackStandIn(options)
    : await startSmtpStandIn({ ...options, httpPort: 0 })
const httpUrl = 'httpUrl' in standIn ? standIn.httpUrl : standIn.url
console.log(JSON.stringify({ url: standIn.url, httpUrl }))
process.once('SIGTERM', () => {
  setTimeout(() => process.exit(0), 2000).unref()
  void standIn.close().then(() => process.exit(0))
})
