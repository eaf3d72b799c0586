// Every Redis key Herald uses is built here. Keys that one Lua script touches together share a hash tag
// ({...}) so Herald runs unchanged on Redis Cluster.

export interface RedisKeys {
  /** Hash: status, channel, attempts, lastError, timestamps of one notification. */
  status: (id: string) => string
  /** Hash: one idempotency key's state (pending/acked), request fingerprint, answer. */
  idempotency: (apiKeyName: string, key: string) => string
  /**
   * Hash per (group, topic): field <partition> → next offset; <partition>:token → fencing token;
   * <partition>:topic → Kafka topic id the offset and the finished notes belong to.
   */
  offsets: (group: string, topic: string) => string
  /**
   * Hash per (group, topic), for records started and not yet finished: field <partition>:<offset>:attempts
   * → failed delivery attempts; <partition>:<offset>:starters → the processes that started it (crash guard).
   */
  attempts: (group: string, topic: string) => string
  /** String per distributor process: `alive` (short TTL, refreshed) or `stopped` (a clean stop). */
  liveness: (group: string, topic: string, instance: string) => string
  /** String (JSON): the children of a notification sent to a recipient (id and channel of each), its recipient. */
  fanOut: (parentId: string) => string
  /** Sorted set per partition: offsets finished beyond the stored next (score = offset), skipped by a new claim. */
  finished: (group: string, topic: string, partition: number) => string
  /** Hash: the token bucket of one recipient on one channel (RATE_LIMIT_<CHANNEL>); `recipient` is hashed. */
  rateLimit: (channel: string, recipient: string) => string
  /** Hash per partition of the rules topic: rule name → its evaluation state (JSON, rules/src/evaluate.ts). */
  ruleStates: (topic: string, partition: number) => string
  /** Hash per partition of an alarm-events topic: (alarm, route) → the router's reminder entry (JSON). */
  reminders: (group: string, topic: string, partition: number) => string
  /**
   * Hash per channel: `<replica> <destination>` → that distributor replica's breaker for the destination
   * (JSON: destination, state, openUntil, reason, replica, expiresAt; distributor/src/breaker-board.ts). The
   * replicas refresh their fields and the key's TTL; readers skip fields past expiresAt (a dead replica's).
   */
  breakers: (channel: string) => string
}

export function redisKeys(prefix = 'herald'): RedisKeys {
  return {
    status: (id) => `${prefix}:status:${id}`,
    idempotency: (apiKeyName, key) => `${prefix}:idem:${apiKeyName}:${key}`,
    offsets: (group, topic) => `${prefix}:{${group}:${topic}}:offsets`,
    attempts: (group, topic) => `${prefix}:{${group}:${topic}}:attempts`,
    liveness: (group, topic, instance) => `${prefix}:{${group}:${topic}}:alive:${instance}`,
    fanOut: (parentId) => `${prefix}:fanout:${parentId}`,
    finished: (group, topic, partition) => `${prefix}:{${group}:${topic}}:finished:${partition}`,
    rateLimit: (channel, recipient) => `${prefix}:rate:${channel}:${recipient}`,
    ruleStates: (topic, partition) => `${prefix}:{rules:${topic}}:state:${partition}`,
    reminders: (group, topic, partition) => `${prefix}:{${group}:${topic}}:reminders:${partition}`,
    breakers: (channel) => `${prefix}:breakers:${channel}`,
  }
}
