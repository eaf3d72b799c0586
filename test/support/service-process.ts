// Herald's services as real child processes, for tests that kill, freeze and restart them.
import { type ChildProcess, spawn } from 'node:child_process'
import { appendFileSync, mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { processState, repoRoot } from '../../dev/lib/process.ts'

export interface ServiceProcess {
  readonly child: ChildProcess
  readonly name: string
  /** Every log line so far (pino JSON lines, parsed when possible). */
  readonly lines: Array<Record<string, unknown>>
  waitForLog(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>
  /** Resolves with the exit code (or signal name) once the process ended. */
  exited: Promise<number | string>
  kill(signal?: NodeJS.Signals): void
}

/**
 * Starts a service from its production entry point, or from its test-only entry point
 * (test/support/entries/) when `env` sets a HERALD_TEST_ variable: only that entry reads them and composes
 * the fault in. `entry: 'production'` forces the production entry (to show it ignores those variables).
 */
export function startService(
  name: string,
  script: 'api' | 'distributor' | 'router' | 'alarms' | 'rules',
  env: Record<string, string>,
  options: { entry?: 'production' | 'test' } = {},
): ServiceProcess {
  const wantsFaults = Object.keys(env).some((key) => key.startsWith('HERALD_TEST_'))
  const entryKind = options.entry ?? (wantsFaults ? 'test' : 'production')
  const entry =
    entryKind === 'test'
      ? join(repoRoot, 'test', 'support', 'entries', `${script}.ts`)
      : join(repoRoot, script, 'src', 'main.ts')
  const child = spawn(process.execPath, [entry], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: Array<Record<string, unknown>> = []
  // HERALD_SERVICE_LOG_DIR keeps every service's log lines in <dir>/<name>.log, for looking into a run.
  const logDir = process.env.HERALD_SERVICE_LOG_DIR
  const logFile = logDir ? join(logDir, `${name}.log`) : undefined
  if (logDir) mkdirSync(logDir, { recursive: true })
  const waiters: Array<{
    match: (l: Record<string, unknown>) => boolean
    resolve: (l: Record<string, unknown>) => void
  }> = []
  const onText = (stream: 'stdout' | 'stderr') => {
    let buffered = ''
    return (chunk: Buffer) => {
      buffered += chunk.toString('utf8')
      let newline = buffered.indexOf('\n')
      while (newline >= 0) {
        const text = buffered.slice(0, newline)
        buffered = buffered.slice(newline + 1)
        let line: Record<string, unknown>
        try {
          line = JSON.parse(text) as Record<string, unknown>
        } catch {
          line = { msg: text, stream }
        }
        lines.push(line)
        if (logFile) appendFileSync(logFile, `${text}\n`)
        if (process.env.HERALD_TEST_VERBOSE) console.log(`[${name}] ${text}`)
        for (const w of [...waiters]) {
          if (w.match(line)) {
            waiters.splice(waiters.indexOf(w), 1)
            w.resolve(line)
          }
        }
        newline = buffered.indexOf('\n')
      }
    }
  }
  child.stdout?.on('data', onText('stdout'))
  child.stderr?.on('data', onText('stderr'))
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1))
  })
  return {
    child,
    name,
    lines,
    exited,
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    },
    waitForLog(match, timeoutMs = 30_000) {
      const found = lines.find(match)
      if (found) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const tail = lines
            .slice(-15)
            .map((l) => JSON.stringify(l))
            .join('\n')
          reject(
            new Error(`${name}: expected log line not seen within ${timeoutMs} ms; last lines:\n${tail}`),
          )
        }, timeoutMs)
        const waiter = {
          match,
          resolve: (l: Record<string, unknown>) => {
            clearTimeout(timer)
            resolve(l)
          },
        }
        waiters.push(waiter)
        void exited.then((code) => {
          if (waiters.includes(waiter)) {
            clearTimeout(timer)
            const tail = lines
              .slice(-15)
              .map((l) => JSON.stringify(l))
              .join('\n')
            reject(new Error(`${name} exited (${code}) before the expected log line; last lines:\n${tail}`))
          }
        })
      })
    },
  }
}

/** Polls `check` until it returns a value other than undefined. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

/**
 * SIGSTOPs a process and returns once every one of its threads is stopped. kill(2) returns when the signal
 * is queued; the group stop happens when one of its threads next runs, and on a loaded machine the others
 * (a broker's network and request threads) can go on for a while: a request sent right after the kill was
 * seen acknowledged by a "frozen" broker in CI.
 */
export async function freeze(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP')
  await eventually(
    `process ${pid} stopped`,
    () => {
      const states = readdirSync(`/proc/${pid}/task`).map((tid) => processState(pid, tid))
      return states.every((state) => state === 'T' || state === 't') ? true : undefined
    },
    10_000,
    5,
  )
}
