// Operator tools: npm run herald -- dlq list|replay --channel email [filters]; recipients, templates and
// routes (cli-config.ts), alarm-events (cli-alarm-events.ts), alarms (cli-alarms.ts), rules (cli-rules.ts),
// send, status and lag (cli-ops.ts) through the api. `--help` (or -h, or `help VERB`) after any verb prints
// that verb's usage on stdout and exits 0, before anything is read or connected. Every verb takes --json
// (its answer as JSON on stdout; errors stay on stderr) and exits 0 done, 1 refused or failed, 2 usage
// (send, status and lag add theirs: cli-ops.ts exitCodes).
//   --class <poison|permanent|retryable|crash-loop>  --since <ISO time>  --until <ISO time>
//   --at <partition:offset,...> (replay only these)   --limit <n>   --all (replay every match)
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { type Channel, channels, loadConfig } from '@herald/shared/config'
import { DeadLetterStore } from '@herald/shared/dead-letters'
import { ConfigError } from '@herald/shared/errors'
import { createKafka } from '@herald/shared/kafka'
import { createLogger } from '@herald/shared/logger'
import { createRedis, defineScripts, sharedScripts } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { StatusStore } from '@herald/shared/status'
import { topicNames } from '@herald/shared/topics'
import dotenv from 'dotenv'
import { alarmEventsUsage, runAlarmEventsCommand } from './cli-alarm-events.ts'
import { alarmsUsage, runAlarmsCommand } from './cli-alarms.ts'
import { configAreas, configUsage, runConfigCommand } from './cli-config.ts'
import { opsUsage, opsVerbs, runOpsCommand } from './cli-ops.ts'
import { rulesUsage, runRulesCommand } from './cli-rules.ts'

const dlqUsage = `usage (straight to Kafka and Redis, with the services' configuration):
  npm run herald -- dlq list   --channel <email|sms|slack|webhook> [--class C] [--since T] [--until T] [--limit N] [--json]
  npm run herald -- dlq replay --channel <email|sms|slack|webhook> (--at P:O[,P:O...] | --class C | --since T | --all)
                               [--json]
  prints a line per dead letter (partition:offset, id, class, failed at, error) and a count; --json: a JSON
  array of them (partition, offset, id, key, errorClass, error, attempts, failedAt, original)
  exit codes: 0 done, 1 failed, 2 usage`

const usage = `${dlqUsage}
${configUsage}
${alarmEventsUsage}
${alarmsUsage}
${opsUsage}
${rulesUsage}`

/** Each verb's usage, for --help. */
const usages: Record<string, string> = {
  dlq: dlqUsage,
  ...Object.fromEntries(configAreas.map((area) => [area, configUsage])),
  'alarm-events': alarmEventsUsage,
  alarms: alarmsUsage,
  rules: rulesUsage,
  ...Object.fromEntries(opsVerbs.map((verb) => [verb, opsUsage])),
}

const dlqOptions = {
  channel: { type: 'string' },
  class: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  at: { type: 'string' },
  limit: { type: 'string' },
  all: { type: 'boolean' },
  json: { type: 'boolean' },
} as const

/** The exit code when argv asks for help (printed here), else undefined. */
function help(argv: string[]): number | undefined {
  const end = argv.indexOf('--')
  const args = end < 0 ? argv : argv.slice(0, end)
  const positionals = args.filter((a) => !a.startsWith('-'))
  const asked = args.includes('--help') || args.includes('-h') || positionals[0] === 'help'
  if (!asked) return undefined
  const verb = positionals[0] === 'help' ? positionals[1] : positionals[0]
  if (verb === undefined) {
    console.log(usage)
    return 0
  }
  const shown = usages[verb]
  if (shown === undefined) {
    console.error(`herald: no verb ${verb}\n${usage}`)
    return 2
  }
  console.log(shown)
  return 0
}

async function main(argv: string[]): Promise<number> {
  const helped = help(argv)
  if (helped !== undefined) return helped
  dotenv.config({ quiet: true })
  if (argv.find((a) => !a.startsWith('-')) === 'alarm-events') {
    return runAlarmEventsCommand(argv, {
      env: process.env,
      out: (line) => console.log(line),
      err: (line) => console.error(line),
      readStdin: () => readFileSync(0, 'utf8'),
    })
  }
  if ((opsVerbs as readonly string[]).includes(argv.find((a) => !a.startsWith('-')) ?? '')) {
    // Ctrl-C ends `status --watch` with exit code 130.
    const stop = new AbortController()
    process.once('SIGINT', () => stop.abort())
    process.once('SIGTERM', () => stop.abort())
    return runOpsCommand(argv, {
      env: process.env,
      out: (line) => console.log(line),
      err: (line) => console.error(line),
      readStdin: () => readFileSync(0, 'utf8'),
      signal: stop.signal,
    })
  }
  if (argv.find((a) => !a.startsWith('-')) === 'alarms') {
    // Ctrl-C ends `alarms list --monitor` with exit code 0.
    const stop = new AbortController()
    process.once('SIGINT', () => stop.abort())
    process.once('SIGTERM', () => stop.abort())
    return runAlarmsCommand(argv, {
      env: process.env,
      out: (line) => console.log(line),
      err: (line) => console.error(line),
      readStdin: () => readFileSync(0, 'utf8'),
      signal: stop.signal,
    })
  }
  if (argv.find((a) => !a.startsWith('-')) === 'rules') {
    return runRulesCommand(argv, {
      env: process.env,
      out: (line) => console.log(line),
      err: (line) => console.error(line),
      readStdin: () => readFileSync(0, 'utf8'),
    })
  }
  if ((configAreas as readonly string[]).includes(argv.find((a) => !a.startsWith('-')) ?? '')) {
    return runConfigCommand(argv, {
      env: process.env,
      out: (line) => console.log(line),
      err: (line) => console.error(line),
      readStdin: () => readFileSync(0, 'utf8'),
    })
  }
  let parsed: ReturnType<typeof parseArgs<{ options: typeof dlqOptions; allowPositionals: true }>>
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: dlqOptions })
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`)
    return 2
  }
  const { values, positionals } = parsed
  const [area, action] = positionals
  const channel = values.channel?.toLowerCase() as Channel | undefined
  if (
    area !== 'dlq' ||
    (action !== 'list' && action !== 'replay') ||
    positionals.length > 2 ||
    !channel ||
    !channels.includes(channel)
  ) {
    console.error(usage)
    return 2
  }
  const dates = { since: values.since, until: values.until }
  for (const [name, value] of Object.entries(dates)) {
    if (value !== undefined && Number.isNaN(Date.parse(value))) {
      console.error(`--${name} must be a date/time, e.g. 2026-11-25T10:00:00Z`)
      return 2
    }
  }
  const limit = values.limit === undefined ? undefined : Number(values.limit)
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    console.error('--limit must be a positive whole number')
    return 2
  }
  const filter = {
    ...(values.class ? { errorClass: values.class } : {}),
    ...(values.since ? { since: new Date(values.since) } : {}),
    ...(values.until ? { until: new Date(values.until) } : {}),
    ...(values.at ? { positions: new Set(values.at.split(',').map((p) => p.trim())) } : {}),
    ...(limit !== undefined ? { limit } : {}),
  }
  if (action === 'replay' && !values.all && !values.at && !values.class && !values.since && !values.until) {
    console.error('replay needs a selection: --at, --class, --since/--until, or --all')
    return 2
  }
  const config = loadConfig(process.env, 'tool')
  const logger = createLogger({ service: 'herald-cli', level: 'fatal' })
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'herald-cli', logger })
  const redis = createRedis(config.redisUrl, {}, config.redisClusterNodes)
  defineScripts(redis, sharedScripts)
  try {
    await redis.connect()
    const store = new DeadLetterStore(
      kafka,
      topicNames(config.topics.prefix),
      new StatusStore(redis, redisKeys(config.keyPrefix), config.statusTtlSeconds),
    )
    const letters = await (action === 'list'
      ? store.list(channel, filter)
      : store.replay(channel, filter)
    ).finally(() => store.close())
    if (values.json) console.log(JSON.stringify(letters, null, 2))
    else {
      for (const l of letters) {
        console.log(`${l.partition}:${l.offset}\t${l.id ?? '-'}\t${l.errorClass}\t${l.failedAt}\t${l.error}`)
      }
      console.log(
        `${letters.length} dead letter(s) ${action === 'list' ? 'found' : 'replayed'} on ${channel}`,
      )
    }
    return 0
  } finally {
    redis.disconnect()
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    console.error(
      `herald: ${error instanceof ConfigError || error instanceof Error ? error.message : String(error)}`,
    )
    process.exitCode = 1
  },
)
