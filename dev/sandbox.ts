// npm run sandbox: the SMTP, Twilio and Slack stand-ins in the foreground until Ctrl-C.
import { startSandbox } from './standins/index.ts'

const sandbox = await startSandbox()
for (const line of sandbox.describe()) console.log(line)
const stop = async () => {
  await sandbox.close()
  process.exit(0)
}
process.once('SIGINT', () => void stop())
process.once('SIGTERM', () => void stop())
