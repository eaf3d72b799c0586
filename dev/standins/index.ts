// The three stand-ins together, for npm start and npm run sandbox.
import { faultsFromEnv, type StandIn } from './common.ts'
import { startSlackStandIn } from './slack.ts'
import { type SmtpStandIn, startSmtpStandIn } from './smtp.ts'
import { startTwilioStandIn } from './twilio.ts'

export type { Faults, ReceivedMessage, StandIn } from './common.ts'

export interface Sandbox {
  smtp: SmtpStandIn
  twilio: StandIn
  slack: StandIn
  /** The environment that points Herald's services at the stand-ins. */
  env: Record<string, string>
  describe(): string[]
  close(): Promise<void>
}

const port = (name: string, fallback: number) => Number(process.env[name] ?? fallback)

export async function startSandbox(options: { quiet?: boolean } = {}): Promise<Sandbox> {
  const recordDir = process.env.STANDIN_RECORD_DIR
  const host = process.env.STANDIN_HOST ?? '127.0.0.1'
  const common = { ...(recordDir ? { recordDir } : {}), quiet: options.quiet ?? false, host }
  const smtp = await startSmtpStandIn({
    port: port('SMTP_STANDIN_PORT', 1025),
    httpPort: port('SMTP_STANDIN_HTTP_PORT', 1080),
    faults: faultsFromEnv('SMTP_STANDIN_FAULTS'),
    ...common,
  })
  const twilio = await startTwilioStandIn({
    port: port('TWILIO_STANDIN_PORT', 4010),
    faults: faultsFromEnv('TWILIO_STANDIN_FAULTS'),
    ...common,
  })
  const slack = await startSlackStandIn({
    port: port('SLACK_STANDIN_PORT', 4020),
    faults: faultsFromEnv('SLACK_STANDIN_FAULTS'),
    ...common,
  })
  return {
    smtp,
    twilio,
    slack,
    env: {
      SMTP_URL: smtp.url,
      TWILIO_API_URL: twilio.url,
      TWILIO_ACCOUNT_SID: 'AC00000000000000000000000000000000',
      TWILIO_AUTH_TOKEN: 'local-stand-in',
      TWILIO_FROM: '+15550000000',
      SLACK_WEBHOOK_URL: `${slack.url}/services/T000/B000/default`,
      SLACK_WEBHOOKS: JSON.stringify({ ops: `${slack.url}/services/T000/B000/ops` }),
    },
    describe: () => [
      `SMTP      ${smtp.url}  (received: curl localhost:${smtp.httpPort}/messages)`,
      `Twilio    ${twilio.url}  (received: curl ${twilio.url}/messages)`,
      `Slack     ${slack.url}/services/...  (received: curl ${slack.url}/messages)`,
      `faults:   curl -XPUT ${twilio.url}/faults -d '{"failNext":3,"status":503}'  (same on each stand-in)`,
    ],
    close: async () => {
      await Promise.all([smtp.close(), twilio.close(), slack.close()])
    },
  }
}
