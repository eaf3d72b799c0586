// npm start: the whole system on this machine — Kafka, Redis, the provider and alerts-engine stand-ins, the
// api, one distributor per channel, the router, the alarms processor and the rules evaluator — with their
// logs in one terminal. Ctrl-C stops everything it started.
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import dotenv from 'dotenv'
import { repoRoot } from './lib/process.ts'
import { stackFromEnv, startStack, stopStack } from './lib/stack.ts'
import { startSandbox } from './standins/index.ts'

dotenv.config({ path: join(repoRoot, '.env'), quiet: true })

const colors = {
  api: 36,
  email: 32,
  sms: 33,
  slack: 35,
  webhook: 31,
  router: 94,
  alarms: 93,
  rules: 96,
  infra: 90,
  sandbox: 34,
} as const
const paint = (name: keyof typeof colors, text: string) =>
  process.stdout.isTTY ? `\x1b[${colors[name]}m${text}\x1b[0m` : text
const say = (name: keyof typeof colors, line: string) =>
  console.log(`${paint(name, `[${name}]`.padEnd(10))}${line}`)

/** One readable line from a pino JSON line: time, level, message and the interesting fields. */
function formatLine(text: string): string {
  try {
    const { level, time, msg, service: _s, channel: _c, pid: _p, hostname: _h, ...rest } = JSON.parse(text)
    const fields = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`)
      .join(' ')
    const clock = typeof time === 'string' ? time.slice(11, 23) : ''
    return `${clock} ${String(level).toUpperCase().padEnd(5)} ${msg ?? ''}${fields ? `  ${fields}` : ''}`
  } catch {
    return text
  }
}

function pipeLines(name: keyof typeof colors, stream: NodeJS.ReadableStream | null): void {
  let buffered = ''
  stream?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8')
    let newline = buffered.indexOf('\n')
    while (newline >= 0) {
      say(name, formatLine(buffered.slice(0, newline)))
      buffered = buffered.slice(newline + 1)
      newline = buffered.indexOf('\n')
    }
  })
}

async function main(): Promise<void> {
  const stack = stackFromEnv()
  say('infra', 'starting Kafka and Redis (the first start downloads the Kafka jars from Maven Central)')
  const up = await startStack(stack, (line) => say('infra', line))
  say('infra', `Kafka ${up.brokers}${up.startedKafka ? '' : ' (already running)'}, Redis ${up.redisUrl}`)

  // The alerts engine's stand-in too: the rules evaluator's ALERTS_ENGINE_URL (in sandbox.env).
  const sandbox = await startSandbox({ alertsEngine: true })
  for (const line of sandbox.describe()) say('sandbox', line)

  // Defaults that point every service at the local stack and stand-ins; .env and the environment win.
  const env: NodeJS.ProcessEnv = {
    KAFKA_BROKERS: up.brokers,
    REDIS_URL: up.redisUrl,
    ...sandbox.env,
    DEFAULT_EMAIL_TO: 'dev@example.com',
    DEFAULT_SMS_TO: '+15555550100',
    ...process.env,
  }
  const children: Array<{ name: keyof typeof colors; child: ChildProcess }> = []
  const launch = (name: keyof typeof colors, script: string, extra: NodeJS.ProcessEnv = {}) => {
    const child = spawn(process.execPath, [join(repoRoot, script)], {
      cwd: repoRoot,
      env: { ...env, ...extra },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    pipeLines(name, child.stdout)
    pipeLines(name, child.stderr)
    child.on('exit', (code, signal) => {
      if (!stopping) say(name, `exited (${code ?? signal}); Ctrl-C stops the rest`)
    })
    children.push({ name, child })
  }
  launch('api', 'api/src/main.ts')
  const channels = ['email', 'sms', 'slack', 'webhook'] as const
  // Metrics ports from METRICS_PORT up: one per distributor, then the router's, the alarms processor's and
  // the rules evaluator's (9464-9467, 9468, 9469, 9470); 0 stays 0 (any free port, each printed at start).
  const firstMetricsPort = Number(process.env.METRICS_PORT ?? 9464)
  const metricsPort = (i: number) => String(firstMetricsPort === 0 ? 0 : firstMetricsPort + i)
  channels.forEach((channel, i) => {
    launch(channel, 'distributor/src/main.ts', { CHANNEL: channel, METRICS_PORT: metricsPort(i) })
  })
  launch('router', 'router/src/main.ts', { METRICS_PORT: metricsPort(channels.length) })
  launch('alarms', 'alarms/src/main.ts', { METRICS_PORT: metricsPort(channels.length + 1) })
  launch('rules', 'rules/src/main.ts', { METRICS_PORT: metricsPort(channels.length + 2) })
  const port = env.PORT ?? '8080'
  say(
    'api',
    `try: curl -s -XPOST localhost:${port}/api/v1/notification -H 'content-type: application/json' -d '{"message":"Charm!","channel":"email"}'`,
  )

  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    say('infra', 'stopping: services first, then stand-ins and what this command started')
    await Promise.all(
      children.map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve()
            child.once('exit', () => resolve())
            child.kill('SIGTERM')
            setTimeout(() => child.kill('SIGKILL'), 30_000).unref()
          }),
      ),
    )
    await sandbox.close()
    for (const line of await stopStack(stack, { kafka: up.startedKafka, redis: up.startedRedis }))
      say('infra', line)
    process.exit(0)
  }
  process.on('SIGINT', () => void stop())
  process.on('SIGTERM', () => void stop())
}

main().catch((error: Error) => {
  console.error(`npm start failed: ${error.message}`)
  process.exit(1)
})
