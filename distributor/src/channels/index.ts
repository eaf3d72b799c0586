// Builds the channel a distributor runs, from the configuration.
import type { Config } from '@herald/shared/config'
import type { Channel } from './channel.ts'
import { createEmailChannel } from './email.ts'
import { createSlackChannel } from './slack.ts'
import { createSmsChannel } from './sms.ts'
import { createWebhookChannel } from './webhook.ts'

export function createChannel(config: Config): Channel {
  switch (config.channel) {
    case 'email':
      // One pooled SMTP connection per delivery slot: nodemailer's default of 5 would cap a replica at
      // 5 / latency (100/s against a 50 ms relay) whatever DELIVERY_CONCURRENCY allows.
      return createEmailChannel({
        smtpUrl: config.email.smtpUrl,
        from: config.email.from,
        maxConnections: config.delivery.concurrency,
      })
    case 'sms': {
      const { accountSid, authToken, from, apiUrl } = config.sms
      // loadConfig requires these when CHANNEL=sms.
      if (!accountSid || !authToken || !from)
        throw new Error('TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM are required')
      return createSmsChannel({ accountSid, authToken, from, ...(apiUrl ? { apiUrl } : {}) })
    }
    case 'slack':
      return createSlackChannel({ webhooks: config.slack.webhooks })
    case 'webhook':
      return createWebhookChannel({
        destinations: config.webhook.destinations,
        timeoutMs: config.webhook.timeoutMs,
      })
    default:
      throw new Error('CHANNEL is required')
  }
}
