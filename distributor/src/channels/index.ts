// Builds the channel a distributor runs, from the configuration.
import type { Config } from '@herald/shared/config'
import type { Channel } from './channel.ts'
import { createEmailChannel } from './email.ts'

export function createChannel(config: Config): Channel {
  switch (config.channel) {
    case 'email':
      return createEmailChannel({ smtpUrl: config.email.smtpUrl, from: config.email.from })
    default:
      throw new Error(`channel ${config.channel} is not implemented yet`)
  }
}
