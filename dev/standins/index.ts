// The four stand-ins together, for npm start, npm run sandbox and tests; the alerts engine's on request.
import {
  type AlertsEngineStandIn,
  type EngineFaults,
  parseEngineFaults,
  startAlertsEngineStandIn,
} from './alerts-engine.ts'
import { type Faults, faultsFromEnv, type StandIn } from './common.ts'
import { startSlackStandIn } from './slack.ts'
import { type SmtpStandIn, startSmtpStandIn } from './smtp.ts'
import { startTwilioStandIn } from './twilio.ts'
import { startWebhookStandIn } from './webhook.ts'

export {
  type AlertsEngineStandIn,
  type AlertsEngineStandInOptions,
  type EngineFaults,
  startAlertsEngineStandIn,
} from './alerts-engine.ts'
export type { Faults, PermanentRecipient, ReceivedMessage, StandIn, StandInOptions } from './common.ts'
export { parseFaults } from './common.ts'
export { type SlackStandInOptions, startSlackStandIn } from './slack.ts'
export { type SmtpStandIn, type SmtpStandInOptions, startSmtpStandIn } from './smtp.ts'
export { startTwilioStandIn, type TwilioStandInOptions } from './twilio.ts'
export { startWebhookStandIn, type WebhookStandInOptions } from './webhook.ts'

export interface SandboxPorts {
  smtp: number
  smtpHttp: number
  twilio: number
  slack: number
  webhook: number
  alertsEngine: number
}

export const defaultPorts: SandboxPorts = {
  smtp: 1025,
  smtpHttp: 1080,
  twilio: 4010,
  slack: 4020,
  webhook: 4030,
  alertsEngine: 4040,
}

const portEnv: Record<keyof SandboxPorts, string> = {
  smtp: 'SMTP_STANDIN_PORT',
  smtpHttp: 'SMTP_STANDIN_HTTP_PORT',
  twilio: 'TWILIO_STANDIN_PORT',
  slack: 'SLACK_STANDIN_PORT',
  webhook: 'WEBHOOK_STANDIN_PORT',
  alertsEngine: 'ALERTS_ENGINE_STANDIN_PORT',
}

export interface SandboxOptions {
  /** Ports (0 = any free one); else SMTP_STANDIN_PORT, SMTP_STANDIN_HTTP_PORT, TWILIO_STANDIN_PORT, SLACK_STANDIN_PORT, WEBHOOK_STANDIN_PORT; else 1025, 1080, 4010, 4020, 4030. */
  ports?: Partial<SandboxPorts>
  /** Interface to listen on; else STANDIN_HOST; else 127.0.0.1. */
  host?: string
  /** Faults at start; else SMTP_STANDIN_FAULTS, TWILIO_STANDIN_FAULTS, SLACK_STANDIN_FAULTS, WEBHOOK_STANDIN_FAULTS or STANDIN_FAULTS (JSON). */
  faults?: { smtp?: Faults; twilio?: Faults; slack?: Faults; webhook?: Faults; alertsEngine?: EngineFaults }
  /**
   * Also start the alerts engine stand-in (seed 003; off by default): port `ports.alertsEngine`, else
   * ALERTS_ENGINE_STANDIN_PORT, else 4040; faults else ALERTS_ENGINE_STANDIN_FAULTS (JSON), else the
   * engine's 1.5% of 500s; its alerts from the file ALERTS_ENGINE_STANDIN_ALERTS when set.
   */
  alertsEngine?: boolean
  /** JSONL record of every received message per stand-in; else STANDIN_RECORD_DIR. */
  recordDir?: string
  /** Keep only the newest N messages in memory; else STANDIN_MAX_MESSAGES; else all. */
  maxMessages?: number
  quiet?: boolean
}

export interface Sandbox {
  smtp: SmtpStandIn
  twilio: StandIn
  slack: StandIn
  webhook: StandIn
  /** Only when asked for with `alertsEngine: true`. */
  alertsEngine?: AlertsEngineStandIn
  /** The environment that points Herald's services at the stand-ins. */
  env: Record<string, string>
  describe(): string[]
  close(): Promise<void>
}

/** A port from options, else from the environment, else the default; a bad value is a readable error. */
function portFor(name: keyof SandboxPorts, ports: Partial<SandboxPorts>): number {
  const raw = ports[name] ?? process.env[portEnv[name]] ?? defaultPorts[name]
  const port = Number(raw)
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new Error(`${portEnv[name]} must be a port number (0 for any free port), not "${raw}"`)
  }
  return port
}

function startAlertsEngine(
  options: SandboxOptions,
  common: { recordDir?: string; quiet: boolean; host: string },
): Promise<AlertsEngineStandIn> {
  const fromEnv = process.env.ALERTS_ENGINE_STANDIN_FAULTS
  let faults = options.faults?.alertsEngine
  if (faults === undefined && fromEnv) {
    try {
      faults = parseEngineFaults(JSON.parse(fromEnv))
    } catch (error) {
      throw new Error(`ALERTS_ENGINE_STANDIN_FAULTS: ${(error as Error).message}`)
    }
  }
  const alertsFile = process.env.ALERTS_ENGINE_STANDIN_ALERTS
  return startAlertsEngineStandIn({
    ...common,
    port: portFor('alertsEngine', options.ports ?? {}),
    ...(faults === undefined ? {} : { faults }),
    ...(alertsFile ? { alertsFile } : {}),
  })
}

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const ports = options.ports ?? {}
  const recordDir = options.recordDir ?? process.env.STANDIN_RECORD_DIR
  const maxMessages = options.maxMessages ?? (Number(process.env.STANDIN_MAX_MESSAGES) || undefined)
  const common = {
    ...(recordDir ? { recordDir } : {}),
    ...(maxMessages ? { maxMessages } : {}),
    quiet: options.quiet ?? false,
    host: options.host ?? process.env.STANDIN_HOST ?? '127.0.0.1',
  }
  const wanted = {
    smtp: portFor('smtp', ports),
    smtpHttp: portFor('smtpHttp', ports),
    twilio: portFor('twilio', ports),
    slack: portFor('slack', ports),
    webhook: portFor('webhook', ports),
  }
  const faults = {
    smtp: options.faults?.smtp ?? faultsFromEnv('SMTP_STANDIN_FAULTS'),
    twilio: options.faults?.twilio ?? faultsFromEnv('TWILIO_STANDIN_FAULTS'),
    slack: options.faults?.slack ?? faultsFromEnv('SLACK_STANDIN_FAULTS'),
    webhook: options.faults?.webhook ?? faultsFromEnv('WEBHOOK_STANDIN_FAULTS'),
  }
  const started: Array<{ close(): Promise<void> }> = []
  try {
    const smtp = await startSmtpStandIn({
      ...common,
      port: wanted.smtp,
      httpPort: wanted.smtpHttp,
      faults: faults.smtp,
    })
    started.push(smtp)
    const twilio = await startTwilioStandIn({ ...common, port: wanted.twilio, faults: faults.twilio })
    started.push(twilio)
    const slack = await startSlackStandIn({ ...common, port: wanted.slack, faults: faults.slack })
    started.push(slack)
    const webhook = await startWebhookStandIn({ ...common, port: wanted.webhook, faults: faults.webhook })
    started.push(webhook)
    const alertsEngine = options.alertsEngine ? await startAlertsEngine(options, common) : undefined
    if (alertsEngine) started.push(alertsEngine)
    return {
      smtp,
      twilio,
      slack,
      webhook,
      ...(alertsEngine ? { alertsEngine } : {}),
      env: {
        SMTP_URL: smtp.url,
        TWILIO_API_URL: twilio.url,
        TWILIO_ACCOUNT_SID: 'AC00000000000000000000000000000000',
        TWILIO_AUTH_TOKEN: 'local-stand-in',
        TWILIO_FROM: '+15550000000',
        SLACK_WEBHOOK_URL: `${slack.url}/services/T000/B000/default`,
        SLACK_WEBHOOKS: JSON.stringify({ ops: `${slack.url}/services/T000/B000/ops` }),
        // Local secrets only: the stand-in verifies nothing, a receiver recomputes the signature with these.
        WEBHOOK_DESTINATIONS: JSON.stringify({
          default: { url: `${webhook.url}/hooks/default`, secret: 'local-stand-in-secret-default' },
          ops: { url: `${webhook.url}/hooks/ops`, secret: 'local-stand-in-secret-ops' },
        }),
        ...(alertsEngine ? { ALERTS_ENGINE_URL: alertsEngine.url } : {}),
      },
      describe: () => [
        `SMTP      ${smtp.url}  (received: curl ${smtp.httpUrl}/messages)`,
        `Twilio    ${twilio.url}/2010-04-01/Accounts/<sid>/Messages.json  (received: curl ${twilio.url}/messages)`,
        `Slack     ${slack.url}/services/...  (received: curl ${slack.url}/messages)`,
        `Webhook   ${webhook.url}/hooks/<name>  (received, with headers: curl ${webhook.url}/messages)`,
        `faults:   curl -XPUT ${twilio.url}/faults -d '{"failNext":3,"status":503}'  (same on each; DELETE clears)`,
        ...(alertsEngine
          ? [
              `Alerts    ${alertsEngine.url}/alerts, /query, /notify, /resolve  (calls: curl ${alertsEngine.url}/_standin/calls; faults: /_standin/faults)`,
            ]
          : []),
        ...(recordDir ? [`record:   ${recordDir}/{smtp,twilio,slack,webhook}.jsonl`] : []),
      ],
      close: async () => {
        await Promise.all([
          smtp.close(),
          twilio.close(),
          slack.close(),
          webhook.close(),
          alertsEngine?.close(),
        ])
      },
    }
  } catch (error) {
    await Promise.all(started.map((s) => s.close()))
    throw error
  }
}
