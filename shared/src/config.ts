// Configuration from the environment, validated once with zod. Only a service's main.ts calls loadConfig
// (after dotenv); everything else receives the frozen Config object.
import { z } from 'zod'
import { ConfigError } from './errors.ts'

export const channels = ['email', 'sms', 'slack', 'webhook'] as const
export type Channel = (typeof channels)[number]

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback)
const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback)
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()))

const brokerList = z
  .string()
  .default('127.0.0.1:9092')
  .transform((v) =>
    v
      .split(',')
      .map((b) => b.trim())
      .filter(Boolean),
  )
  .pipe(z.array(z.string().regex(/^[^\s:]+:\d+$/, 'each broker is host:port')).min(1))

// Empty unless set: then Herald talks to a Redis Cluster through these seed nodes instead of REDIS_URL's server.
const redisClusterNodes = z
  .string()
  .default('')
  .transform((v) =>
    v
      .split(',')
      .map((n) => n.trim())
      .filter(Boolean),
  )
  .pipe(z.array(z.string().regex(/^[^\s:]+:\d+$/, 'each node is host:port')))

/** What an API key may do: send notifications, or also read and replay dead letters. */
export const apiKeyRoles = ['sender', 'admin'] as const
export type ApiKeyRole = (typeof apiKeyRoles)[number]
export interface ApiKey {
  key: string
  role: ApiKeyRole
}

// Issues name an entry by its position only: the entries hold the keys themselves.
const apiKeys = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const keys = new Map<string, ApiKey>()
    const entries = (v ?? '').split(',').map((p) => p.trim())
    entries.forEach((entry, index) => {
      if (entry === '') return
      const [name = '', key = '', role = 'sender', ...extra] = entry.split(':')
      const at = `entry ${index + 1}`
      if (name === '' || key === '' || extra.length > 0) {
        ctx.addIssue({ code: 'custom', message: `${at} is not name:key or name:key:admin` })
      } else if (!(apiKeyRoles as readonly string[]).includes(role)) {
        ctx.addIssue({ code: 'custom', message: `${at} has an unknown role (use admin or sender)` })
      } else if (keys.has(name)) {
        ctx.addIssue({ code: 'custom', message: `${at} repeats the name of an earlier entry` })
      } else keys.set(name, Object.freeze({ key, role: role as ApiKeyRole }))
    })
    return keys
  })

const slackWebhooks = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v.trim() === '') return {} as Record<string, string>
    try {
      const parsed: unknown = JSON.parse(v)
      const map = z.record(z.string().regex(/^[\w.-]{1,64}$/), z.url()).parse(parsed)
      return map
    } catch {
      ctx.addIssue({
        code: 'custom',
        message: 'must be a JSON object of destination name (letters, digits, . _ -) → webhook URL',
      })
      return z.NEVER
    }
  })

/** A webhook destination: where to POST and the secret that signs each body (HMAC-SHA256). */
export interface WebhookDestination {
  url: string
  secret: string
}

// Issues name a destination and the field, never the URL (it may carry credentials) or the secret.
const webhookDestinations = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const map: Record<string, WebhookDestination> = {}
    if (v === undefined || v.trim() === '') return map
    let parsed: unknown
    try {
      parsed = JSON.parse(v)
    } catch {
      ctx.addIssue({
        code: 'custom',
        message: 'must be JSON: {"<name>": {"url": "https://…", "secret": "…"}}',
      })
      return z.NEVER
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      ctx.addIssue({ code: 'custom', message: 'must be a JSON object of destination name → {url, secret}' })
      return z.NEVER
    }
    for (const [name, entry] of Object.entries(parsed)) {
      const at = /^[\w.-]{1,64}$/.test(name) ? `destination "${name}"` : 'a destination'
      if (!/^[\w.-]{1,64}$/.test(name)) {
        ctx.addIssue({ code: 'custom', message: `${at} has a name other than letters, digits, . _ - (1-64)` })
        continue
      }
      const { url, secret, ...extra } = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<
        string,
        unknown
      >
      const problems: string[] = []
      if (typeof url !== 'string' || !/^https?:$/.test(safeProtocol(url)))
        problems.push('url must be an http(s) URL')
      // fetch refuses such a URL and quotes it whole in its error, which would reach logs and statuses.
      else if (hasCredentials(url)) problems.push('url must not carry a user or password (the secret signs)')
      if (typeof secret !== 'string' || secret.length < 16)
        problems.push('secret must be a string of 16 characters or more')
      if (Object.keys(extra).length > 0) problems.push(`unknown field(s): ${Object.keys(extra).join(', ')}`)
      if (problems.length > 0) ctx.addIssue({ code: 'custom', message: `${at}: ${problems.join('; ')}` })
      else map[name] = { url: url as string, secret: secret as string }
    }
    return map
  })

function hasCredentials(url: string): boolean {
  const parsed = new URL(url)
  return parsed.username !== '' || parsed.password !== ''
}

function safeProtocol(url: string): string {
  try {
    return new URL(url).protocol
  } catch {
    return ''
  }
}

/** A recipient rate limit: `limit` notifications per `perMs`, with bursts of up to `limit`. */
export interface RateLimit {
  limit: number
  perMs: number
}

const rateUnits: Record<string, number> = {
  s: 1000,
  sec: 1000,
  second: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
}

/** `RATE_LIMIT_<CHANNEL>`: `<n>/<s|min|hour>` (e.g. `10/min`), per recipient of the channel; unset: none. */
const rateLimit = z
  .string()
  .optional()
  .transform((v, ctx): RateLimit | undefined => {
    const text = v?.trim().toLowerCase() ?? ''
    if (text === '') return undefined
    const match = /^(\d+)\s*\/\s*(\d*)\s*([a-z]+)$/.exec(text)
    const unit = match ? rateUnits[match[3] ?? ''] : undefined
    const limit = Number(match?.[1])
    const count = match?.[2] ? Number(match[2]) : 1
    if (!match || unit === undefined || !(limit >= 1 && limit <= 1_000_000) || !(count >= 1)) {
      ctx.addIssue({ code: 'custom', message: 'must be <count>/<s|min|hour>, e.g. 10/min' })
      return z.NEVER
    }
    return { limit, perMs: unit * count }
  })

const envSchema = z.object({
  KAFKA_BROKERS: brokerList,
  REDIS_URL: z
    .url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' })
    .default('redis://127.0.0.1:6379'),
  REDIS_CLUSTER_NODES: redisClusterNodes,
  PORT: port(8080),
  API_WORKERS: z
    .string()
    .default('1')
    .transform((v, ctx): number | 'auto' => {
      const text = v.trim().toLowerCase()
      if (text === 'auto') return 'auto'
      const n = /^\d+$/.test(text) ? Number(text) : Number.NaN
      if (n >= 1 && n <= 256) return n
      ctx.addIssue({ code: 'custom', message: 'must be auto or a number of workers from 1 to 256' })
      return z.NEVER
    }),
  CHANNEL: z
    .string()
    .optional()
    .transform((v) => v?.toLowerCase())
    .pipe(z.enum(channels).optional()),
  METRICS_PORT: port(9464),
  TOPIC_PARTITIONS: positiveInt(12),
  TOPIC_REPLICATION: positiveInt(1),
  TOPIC_PREFIX: z
    .string()
    .regex(/^[a-zA-Z0-9._-]+$/)
    .default('notifications'),
  KEY_PREFIX: z
    .string()
    .regex(/^[a-zA-Z0-9._-]+$/)
    .default('herald'),
  MAX_ATTEMPTS: positiveInt(5),
  RETRY_BASE_MS: positiveInt(1000),
  RETRY_CAP_MS: positiveInt(300_000),
  PRODUCE_TIMEOUT_MS: positiveInt(5000),
  SESSION_TIMEOUT_MS: positiveInt(30_000),
  SHUTDOWN_TIMEOUT_MS: positiveInt(20_000),
  DELIVERY_CONCURRENCY: positiveInt(32),
  BREAKER_THRESHOLD: positiveInt(5),
  BREAKER_PROBE_MS: positiveInt(5000),
  BREAKER_PROBE_MAX_MS: positiveInt(60_000),
  CRASH_LOOP_LIMIT: positiveInt(3),
  LAG_INTERVAL_MS: positiveInt(15_000),
  IDEMPOTENCY_TTL_SECONDS: positiveInt(86_400),
  STATUS_TTL_SECONDS: positiveInt(7 * 86_400),
  MAX_BODY_BYTES: positiveInt(64 * 1024),
  SMTP_URL: z
    .url({ protocol: /^smtps?$/, error: 'must be an smtp:// or smtps:// URL' })
    .default('smtp://127.0.0.1:1025'),
  MAIL_FROM: z.string().min(3).default('Herald <herald@localhost>'),
  DEFAULT_EMAIL_TO: optionalText,
  TWILIO_ACCOUNT_SID: optionalText,
  TWILIO_AUTH_TOKEN: optionalText,
  TWILIO_FROM: optionalText,
  TWILIO_API_URL: optionalText.pipe(z.url({ error: 'must be a URL' }).optional()),
  DEFAULT_SMS_TO: optionalText,
  SLACK_WEBHOOK_URL: optionalText.pipe(z.url({ error: 'must be a URL' }).optional()),
  SLACK_WEBHOOKS: slackWebhooks,
  WEBHOOK_DESTINATIONS: webhookDestinations,
  WEBHOOK_TIMEOUT_MS: positiveInt(10_000),
  API_KEYS: apiKeys,
  RATE_LIMIT_EMAIL: rateLimit,
  RATE_LIMIT_SMS: rateLimit,
  RATE_LIMIT_SLACK: rateLimit,
  RATE_LIMIT_WEBHOOK: rateLimit,
  ALARM_EVENTS_TOPICS: z
    .string()
    .default('')
    .transform((v) =>
      v
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== ''),
    )
    .pipe(z.array(z.string().regex(/^[a-zA-Z0-9._-]{1,249}$/, 'must be Kafka topic names, comma-separated'))),
  ALARM_EVENT_TTL_SECONDS: positiveInt(4 * 3600),
  PROMETHEUS_URL: optionalText.pipe(z.url({ error: 'must be a URL' }).optional()),
  ALERTS_ENGINE_URL: optionalText.pipe(z.url({ error: 'must be a URL' }).optional()),
  RULES_FROM_ENGINE: z
    .string()
    .default('false')
    .transform((v) => v.trim().toLowerCase())
    .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' }))
    .transform((v) => v === 'true' || v === '1' || v === 'yes'),
  RULES_REFRESH_SECONDS: positiveInt(60),
  RULES_CONCURRENCY: positiveInt(64),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
})

type Env = z.output<typeof envSchema>

/**
 * Variables whose value a configuration error may quote. Every other one may hold a secret (URLs with
 * passwords, tokens, webhook URLs, API keys) or personal data (default recipients): an error names it and
 * the reason, never its value.
 */
const quotable = new Set([
  'KAFKA_BROKERS',
  'REDIS_CLUSTER_NODES',
  'PORT',
  'API_WORKERS',
  'CHANNEL',
  'METRICS_PORT',
  'TOPIC_PARTITIONS',
  'TOPIC_REPLICATION',
  'TOPIC_PREFIX',
  'KEY_PREFIX',
  'MAX_ATTEMPTS',
  'RETRY_BASE_MS',
  'RETRY_CAP_MS',
  'PRODUCE_TIMEOUT_MS',
  'SESSION_TIMEOUT_MS',
  'SHUTDOWN_TIMEOUT_MS',
  'DELIVERY_CONCURRENCY',
  'BREAKER_THRESHOLD',
  'BREAKER_PROBE_MS',
  'BREAKER_PROBE_MAX_MS',
  'CRASH_LOOP_LIMIT',
  'LAG_INTERVAL_MS',
  'IDEMPOTENCY_TTL_SECONDS',
  'STATUS_TTL_SECONDS',
  'MAX_BODY_BYTES',
  'LOG_LEVEL',
  'WEBHOOK_TIMEOUT_MS',
  'ALARM_EVENTS_TOPICS',
  'ALARM_EVENT_TTL_SECONDS',
  'RULES_FROM_ENGINE',
  'RULES_REFRESH_SECONDS',
  'RULES_CONCURRENCY',
  'RATE_LIMIT_EMAIL',
  'RATE_LIMIT_SMS',
  'RATE_LIMIT_SLACK',
  'RATE_LIMIT_WEBHOOK',
])

export interface Config {
  kafka: { brokers: string[]; sessionTimeoutMs: number; produceTimeoutMs: number }
  redisUrl: string
  /** Seed nodes (host:port) of a Redis Cluster; empty: the one server at redisUrl. */
  redisClusterNodes: readonly string[]
  port: number
  /** api processes sharing the port (node:cluster); `auto`: the cores the process may use. 1: no cluster. */
  apiWorkers: number | 'auto'
  channel: Channel | undefined
  metricsPort: number
  topics: { prefix: string; partitions: number; replication: number }
  keyPrefix: string
  delivery: {
    maxAttempts: number
    retryBaseMs: number
    retryCapMs: number
    concurrency: number
    /** Deliveries of one record that may start without finishing (crashes) before it is dead-lettered. */
    crashLoopLimit: number
  }
  breaker: { threshold: number; probeMs: number; probeMaxMs: number }
  /** How often the group leader exports consumer lag. */
  lagIntervalMs: number
  shutdownTimeoutMs: number
  idempotencyTtlSeconds: number
  statusTtlSeconds: number
  maxBodyBytes: number
  email: { smtpUrl: string; from: string; defaultTo: string | undefined }
  sms: {
    accountSid: string | undefined
    authToken: string | undefined
    from: string | undefined
    apiUrl: string | undefined
    defaultTo: string | undefined
  }
  /** Slack destinations by name; `default` is SLACK_WEBHOOK_URL. */
  slack: { webhooks: Readonly<Record<string, string>> }
  /** Webhook destinations by name (WEBHOOK_DESTINATIONS) and the per-request timeout. */
  webhook: { destinations: Readonly<Record<string, Readonly<WebhookDestination>>>; timeoutMs: number }
  /**
   * API key name → key and role. Empty: the api accepts notifications from anyone (with a warning) and
   * the dead-letter endpoints refuse everyone.
   */
  apiKeys: ReadonlyMap<string, Readonly<ApiKey>>
  /** Per recipient of a channel: what RATE_LIMIT_<CHANNEL> allows (absent: no limit). */
  rateLimits: Readonly<Partial<Record<Channel, Readonly<RateLimit>>>>
  /**
   * The rules evaluator: where values come from (PROMETHEUS_URL, ALERTS_ENGINE_URL), the alert-exec
   * compatibility mode (rules imported from the engine, notify/resolve calls), queries in flight.
   */
  rules: {
    prometheusUrl: string | undefined
    alertsEngineUrl: string | undefined
    fromEngine: boolean
    refreshSeconds: number
    concurrency: number
  }
  /** The router: external alarm-event topics followed besides Herald's own (ALARM_EVENTS_TOPICS), and the TTL. */
  alarmEvents: { externalTopics: readonly string[]; ttlSeconds: number }
  logLevel: string
}

/** Names of every variable Herald reads (for docs and drift checks). */
export const envVariableNames = Object.keys(envSchema.shape)

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !(value instanceof Map)) {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}

/**
 * Parses and validates the environment. Lists every bad variable at once (ConfigError).
 * `service` decides which channel secrets are required: a distributor needs only its own channel's.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  service: 'api' | 'distributor' | 'router' | 'rules' | 'tool' = 'tool',
): Config {
  const result = envSchema.safeParse(env)
  const problems: string[] = []
  if (!result.success) {
    for (const issue of result.error.issues) {
      const name = String(issue.path[0] ?? '?')
      const got = quotable.has(name) ? ` (got ${JSON.stringify(env[name] ?? null)})` : ''
      problems.push(`${name}: ${issue.message}${got}`)
    }
    throw new ConfigError(problems)
  }
  const e: Env = result.data
  if (service === 'distributor') {
    if (!e.CHANNEL) problems.push('CHANNEL: required for a distributor (email, sms, slack or webhook)')
    if (e.CHANNEL === 'sms') {
      for (const name of ['TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN', 'TWILIO_FROM'] as const) {
        if (!e[name]) problems.push(`${name}: required when CHANNEL=sms`)
      }
    }
    if (e.CHANNEL === 'slack' && !e.SLACK_WEBHOOK_URL && Object.keys(e.SLACK_WEBHOOKS).length === 0) {
      problems.push('SLACK_WEBHOOK_URL: required when CHANNEL=slack (or SLACK_WEBHOOKS)')
    }
    if (e.CHANNEL === 'webhook' && Object.keys(e.WEBHOOK_DESTINATIONS).length === 0) {
      problems.push('WEBHOOK_DESTINATIONS: required when CHANNEL=webhook')
    }
  }
  if (service === 'rules' && e.RULES_FROM_ENGINE && !e.ALERTS_ENGINE_URL)
    problems.push('ALERTS_ENGINE_URL: required when RULES_FROM_ENGINE=true')
  if (e.RETRY_BASE_MS > e.RETRY_CAP_MS) problems.push('RETRY_BASE_MS: must not exceed RETRY_CAP_MS')
  if (problems.length > 0) throw new ConfigError(problems)

  const webhooks: Record<string, string> = { ...e.SLACK_WEBHOOKS }
  if (e.SLACK_WEBHOOK_URL) webhooks.default = e.SLACK_WEBHOOK_URL
  return deepFreeze({
    kafka: {
      brokers: e.KAFKA_BROKERS,
      sessionTimeoutMs: e.SESSION_TIMEOUT_MS,
      produceTimeoutMs: e.PRODUCE_TIMEOUT_MS,
    },
    redisUrl: e.REDIS_URL,
    redisClusterNodes: e.REDIS_CLUSTER_NODES,
    port: e.PORT,
    apiWorkers: e.API_WORKERS,
    channel: e.CHANNEL,
    metricsPort: e.METRICS_PORT,
    topics: { prefix: e.TOPIC_PREFIX, partitions: e.TOPIC_PARTITIONS, replication: e.TOPIC_REPLICATION },
    keyPrefix: e.KEY_PREFIX,
    delivery: {
      maxAttempts: e.MAX_ATTEMPTS,
      retryBaseMs: e.RETRY_BASE_MS,
      retryCapMs: e.RETRY_CAP_MS,
      concurrency: e.DELIVERY_CONCURRENCY,
      crashLoopLimit: e.CRASH_LOOP_LIMIT,
    },
    breaker: {
      threshold: e.BREAKER_THRESHOLD,
      probeMs: e.BREAKER_PROBE_MS,
      probeMaxMs: e.BREAKER_PROBE_MAX_MS,
    },
    lagIntervalMs: e.LAG_INTERVAL_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    idempotencyTtlSeconds: e.IDEMPOTENCY_TTL_SECONDS,
    statusTtlSeconds: e.STATUS_TTL_SECONDS,
    maxBodyBytes: e.MAX_BODY_BYTES,
    email: { smtpUrl: e.SMTP_URL, from: e.MAIL_FROM, defaultTo: e.DEFAULT_EMAIL_TO },
    sms: {
      accountSid: e.TWILIO_ACCOUNT_SID,
      authToken: e.TWILIO_AUTH_TOKEN,
      from: e.TWILIO_FROM,
      apiUrl: e.TWILIO_API_URL,
      defaultTo: e.DEFAULT_SMS_TO,
    },
    slack: { webhooks },
    webhook: { destinations: e.WEBHOOK_DESTINATIONS, timeoutMs: e.WEBHOOK_TIMEOUT_MS },
    apiKeys: e.API_KEYS,
    rateLimits: Object.fromEntries(
      channels.flatMap((c) => {
        const limit = e[`RATE_LIMIT_${c.toUpperCase()}` as 'RATE_LIMIT_EMAIL']
        return limit ? [[c, limit]] : []
      }),
    ),
    rules: {
      prometheusUrl: e.PROMETHEUS_URL,
      alertsEngineUrl: e.ALERTS_ENGINE_URL,
      fromEngine: e.RULES_FROM_ENGINE,
      refreshSeconds: e.RULES_REFRESH_SECONDS,
      concurrency: e.RULES_CONCURRENCY,
    },
    alarmEvents: { externalTopics: e.ALARM_EVENTS_TOPICS, ttlSeconds: e.ALARM_EVENT_TTL_SECONDS },
    logLevel: e.LOG_LEVEL,
  })
}

/** True when every broker is on this machine: replication 1 is then expected, not a warning. */
export function isLocalCluster(brokers: readonly string[]): boolean {
  return brokers.every((b) => /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]|kafka):\d+$/.test(b))
}
