// A notification for a person of the recipients directory: which channels it goes to, what each child
// notification says, its deterministic id, and the parent → children link in Redis.
import type { Recipient, RecipientChannel } from '@herald/shared/config-topics/schemas'
import { recipientChannels } from '@herald/shared/config-topics/schemas'
import {
  type FieldIssue,
  messageLimits,
  type NotificationInput,
  type RecipientInput,
} from '@herald/shared/notification'
import type { Redis } from '@herald/shared/redis/client'
import type { RedisKeys } from '@herald/shared/redis/keys'

export interface FanOutChild {
  id: string
  channel: RecipientChannel
}

/** What Redis keeps of a parent: the recipient and its children. */
export interface FanOutLink {
  recipient: string
  createdAt: string
  children: FanOutChild[]
}

/**
 * A child's id: the parent's and the channel, so every write made for one parent (an Idempotency-Key retry
 * after an unconfirmed write) carries the same child ids, and the distributors fold the repeats.
 */
export function childIdOf(parentId: string, channel: RecipientChannel): string {
  return `${parentId}.${channel}`
}

const addressField: Record<RecipientChannel, 'email' | 'phone' | 'slack'> = {
  email: 'email',
  sms: 'phone',
  slack: 'slack',
}

/**
 * The children of a request for `recipient`, one per channel (in the order email, sms, slack): every
 * channel the person enabled, or only the requested one. Email gets `subject` and `message`; SMS and
 * Slack have no subject, so the subject (when given) is the first line of their text. Returns every
 * reason the request cannot be sent to this person at once.
 */
export function planChildren(
  request: RecipientInput,
  recipient: Recipient,
  slackDestinations: readonly string[],
): { ok: true; children: NotificationInput[] } | { ok: false; issues: FieldIssue[] } {
  const who = `recipient "${recipient.id}"`
  const enabled = recipientChannels.filter((c) => recipient.channels.includes(c))
  if (request.channel !== undefined && !enabled.includes(request.channel)) {
    const list = enabled.length > 0 ? enabled.join(', ') : 'none'
    return {
      ok: false,
      issues: [{ field: 'channel', reason: `${who} has not enabled ${request.channel} (enabled: ${list})` }],
    }
  }
  if (enabled.length === 0) {
    return { ok: false, issues: [{ field: 'recipient', reason: `${who} has no enabled channel` }] }
  }
  const issues: FieldIssue[] = []
  const children: NotificationInput[] = []
  for (const channel of request.channel !== undefined ? [request.channel] : enabled) {
    const to = recipient[addressField[channel]]
    if (to === undefined) {
      issues.push({
        field: 'recipient',
        reason: `${who} has ${channel} enabled but no ${addressField[channel]} to send it to`,
      })
      continue
    }
    if (channel === 'slack' && !slackDestinations.includes(to)) {
      const known = slackDestinations.length > 0 ? slackDestinations.join(', ') : 'none'
      issues.push({
        field: 'recipient',
        reason: `${who} is reached on Slack destination "${to}", which this api does not know (configured: ${known})`,
      })
      continue
    }
    const text =
      channel === 'email' || request.subject === undefined
        ? request.message
        : `${request.subject}\n${request.message}`
    if (text.length > messageLimits[channel]) {
      issues.push({
        field: 'message',
        reason:
          `is ${text.length} characters${channel === 'email' || request.subject === undefined ? '' : ' with the subject line'}; ` +
          `${channel} allows ${messageLimits[channel]} and ${who} is reached by ${channel}: shorten it or name another channel`,
      })
      continue
    }
    children.push({
      channel,
      to,
      message: text,
      ...(channel === 'email' && request.subject !== undefined ? { subject: request.subject } : {}),
    })
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, children }
}

/** The parent → children links, kept as long as the statuses (STATUS_TTL_SECONDS). */
export class FanOutLinks {
  readonly #redis: Redis
  readonly #keys: RedisKeys
  readonly #ttlSeconds: number

  constructor(redis: Redis, keys: RedisKeys, ttlSeconds: number) {
    this.#redis = redis
    this.#keys = keys
    this.#ttlSeconds = ttlSeconds
  }

  async save(parentId: string, link: FanOutLink): Promise<void> {
    await this.#redis.set(this.#keys.fanOut(parentId), JSON.stringify(link), 'EX', this.#ttlSeconds)
  }

  async get(parentId: string): Promise<FanOutLink | undefined> {
    const text = await this.#redis.get(this.#keys.fanOut(parentId))
    return text === null ? undefined : (JSON.parse(text) as FanOutLink)
  }
}
