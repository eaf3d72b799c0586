// The SMTP stand-in as a child process of a benchmark, so the provider's CPU is not the load generator's:
//   node bench/standin-process.ts <recordDir> <latencyMs>
// Quiet, nothing kept in memory (the JSONL record in <recordDir>/smtp.jsonl keeps every receipt with its
// time); prints one JSON line {"url","httpUrl"} once it listens, and closes on SIGTERM.
import { startSmtpStandIn } from '../dev/standins/smtp.ts'

const [recordDir, latencyText] = process.argv.slice(2)
if (!recordDir) {
  console.error('usage: node bench/standin-process.ts <recordDir> [latencyMs]')
  process.exit(2)
}
const smtp = await startSmtpStandIn({
  port: 0,
  httpPort: 0,
  quiet: true,
  recordDir,
  maxMessages: 1,
  faults: { latencyMs: Number(latencyText ?? 0) },
})
console.log(JSON.stringify({ url: smtp.url, httpUrl: smtp.httpUrl }))
process.once('SIGTERM', () => {
  setTimeout(() => process.exit(0), 2000).unref()
  void smtp.close().then(() => process.exit(0))
})
