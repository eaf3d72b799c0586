// What one alarm event becomes: one notification per (route, recipient, channel), each with an id that a
// replay of the same event gives again, so the distributors fold the repeats.
import { type AlarmEvent, hashedUuid } from '@herald/shared/alarm-events'
import {
  type Recipient,
  type RecipientChannel,
  type Route,
  recipientChannels,
} from '@herald/shared/config-topics/schemas'

export interface PlannedNotification {
  id: string
  route: Route
  recipient: Recipient
  channel: RecipientChannel
  /** The recipient's address on `channel`: an email address, an E.164 number, a Slack destination name. */
  to: string
}

/** A recipient a route names who gets nothing from it: for a counter and a log line, never an error. */
export interface Unplanned {
  route: string
  recipient: string
  reason: 'unknown-recipient' | 'no-channel'
}

export interface Plan {
  notifications: PlannedNotification[]
  unplanned: Unplanned[]
}

const addressField = { email: 'email', sms: 'phone', slack: 'slack' } as const

/** The recipient's address on `channel`, if it has one. */
export function addressOf(recipient: Recipient, channel: RecipientChannel): string | undefined {
  return recipient[addressField[channel]]
}

/**
 * The id of the notification of `eventId` for (route, recipient, channel): a UUID from SHA-256, like the
 * event ids derived in shared (`hashedUuid`).
 */
export function notificationId(
  eventId: string,
  route: string,
  recipient: string,
  channel: RecipientChannel,
): string {
  return hashedUuid(['notification', eventId, route, recipient, channel])
}

/**
 * The notifications of `event` for the routes it matched. A recipient gets each channel that it enabled,
 * that the route allows (all when the route names none) and that it has an address for, in the order
 * email, sms, slack. A recipient missing from the directory, or left with no channel, is reported in
 * `unplanned`. A recipient a route names twice is planned once; two routes naming the same person give
 * two notifications (their ids differ by route).
 */
export function planNotifications(
  event: AlarmEvent,
  routes: readonly Route[],
  recipientOf: (id: string) => Recipient | undefined,
): Plan {
  const plan: Plan = { notifications: [], unplanned: [] }
  for (const route of routes) {
    for (const id of new Set(route.recipients)) {
      const recipient = recipientOf(id)
      if (recipient === undefined) {
        plan.unplanned.push({ route: route.name, recipient: id, reason: 'unknown-recipient' })
        continue
      }
      let planned = 0
      for (const channel of recipientChannels) {
        if (!recipient.channels.includes(channel)) continue
        if (route.channels !== undefined && !route.channels.includes(channel)) continue
        const to = addressOf(recipient, channel)
        if (to === undefined) continue
        const notification = notificationId(event.eventId, route.name, recipient.id, channel)
        plan.notifications.push({ id: notification, route, recipient, channel, to })
        planned++
      }
      if (planned === 0) plan.unplanned.push({ route: route.name, recipient: id, reason: 'no-channel' })
    }
  }
  return plan
}
