// npm run sandbox: the SMTP, Twilio, Slack, webhook and alerts-engine stand-ins in the foreground until Ctrl-C
// (or SIGTERM), as npm start runs them (and the compose service `sandbox`). Ports: SMTP_STANDIN_PORT (1025),
// SMTP_STANDIN_HTTP_PORT (1080), TWILIO_STANDIN_PORT (4010), SLACK_STANDIN_PORT (4020), WEBHOOK_STANDIN_PORT
// (4030), ALERTS_ENGINE_STANDIN_PORT (4040); 0 picks a free one. Faults at start: SMTP_STANDIN_FAULTS,
// TWILIO_STANDIN_FAULTS, SLACK_STANDIN_FAULTS, WEBHOOK_STANDIN_FAULTS or STANDIN_FAULTS (JSON), and
// ALERTS_ENGINE_STANDIN_FAULTS (else the engine's 1.5% of 500s); the engine's rules from the file
// ALERTS_ENGINE_STANDIN_ALERTS when set. STANDIN_RECORD_DIR keeps a JSONL record per stand-in.
// STANDIN_MAX_MESSAGES bounds what each keeps in memory (10000 here).
import { type Sandbox, startSandbox } from './standins/index.ts'

let sandbox: Sandbox
try {
  sandbox = await startSandbox({
    maxMessages: Number(process.env.STANDIN_MAX_MESSAGES) || 10_000,
    alertsEngine: true,
  })
} catch (error) {
  console.error(`sandbox: ${(error as Error).message}`)
  process.exit(1)
}

for (const line of sandbox.describe()) console.log(line)
console.log('env for Herald:')
for (const [name, value] of Object.entries(sandbox.env)) console.log(`  ${name}=${value}`)
console.log('Ctrl-C stops.')

let stopping = false
const stop = async (signal: string) => {
  if (stopping) process.exit(0)
  stopping = true
  console.log(`${signal}: closing the stand-ins`)
  setTimeout(() => process.exit(0), 3000).unref()
  await sandbox.close()
  process.exit(0)
}
process.on('SIGINT', () => void stop('SIGINT'))
process.on('SIGTERM', () => void stop('SIGTERM'))
