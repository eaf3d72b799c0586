// Small process and port helpers for the local stack: pid files, liveness, port probes, waiting.
import { spawn } from 'node:child_process'
import { mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const cacheRoot = join(repoRoot, '.cache')
export const defaultDataDir = join(repoRoot, '.data', 'dev')

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The command line of a running process, or '' when it is gone (Linux /proc). */
export function commandLineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
  } catch {
    return ''
  }
}

export function readPidFile(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10)
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/** The pid recorded in `file` when that process is alive and its command line contains `marker`. */
export function livePid(file: string, marker: string): number | undefined {
  const pid = readPidFile(file)
  if (pid === undefined) return undefined
  if (isRunning(pid) && commandLineOf(pid).includes(marker)) return pid
  // Only a dead process's pid file is stale: a live one may not have exec'd its program yet.
  if (!isRunning(pid)) rmSync(file, { force: true })
  return undefined
}

/** Alive and not a zombie waiting to be reaped. */
export function isRunning(pid: number): boolean {
  return isAlive(pid) && !isZombie(pid)
}

export function isPortOpen(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ port, host })
    const finish = (open: boolean) => {
      socket.destroy()
      done(open)
    }
    socket.setTimeout(timeoutMs, () => finish(false))
    socket.once('connect', () => finish(true))
    socket.once('error', () => finish(false))
  })
}

export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  {
    timeoutMs = 60_000,
    intervalMs = 200,
    abortIf,
  }: { timeoutMs?: number; intervalMs?: number; abortIf?: () => string | undefined } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const reason = abortIf?.()
    if (reason !== undefined) throw new Error(`${what}: ${reason}`)
    if (await check().catch(() => false)) return
    await sleep(intervalMs)
  }
  throw new Error(`${what}: not ready after ${Math.round(timeoutMs / 1000)} s`)
}

/** Starts a detached background process whose output goes to `logFile`; writes its pid to `pidFile`. */
export function spawnDetached(command: string, args: string[], logFile: string, pidFile: string): number {
  mkdirSync(dirname(logFile), { recursive: true })
  const out = openSync(logFile, 'a')
  const child = spawn(command, args, { detached: true, stdio: ['ignore', out, out], cwd: repoRoot })
  if (child.pid === undefined) throw new Error(`could not start ${command}`)
  child.unref()
  writeFileSync(pidFile, `${child.pid}\n`)
  return child.pid
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(
  pid: number,
  graceMs = 30_000,
): Promise<'stopped' | 'killed' | 'not-running'> {
  if (!isAlive(pid)) return 'not-running'
  process.kill(pid, 'SIGTERM')
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline) {
    if (!isAlive(pid) || isZombie(pid)) return 'stopped'
    await sleep(100)
  }
  process.kill(pid, 'SIGKILL')
  while (isAlive(pid) && !isZombie(pid)) await sleep(50)
  return 'killed'
}

function isZombie(pid: number): boolean {
  return processState(pid) === 'Z'
}

/**
 * The state letter of a process, or of one of its threads (`tid`), from /proc: R running, S/D sleeping, T
 * stopped, Z zombie...; undefined once it is gone.
 */
export function processState(pid: number, tid?: string): string | undefined {
  try {
    const stat = readFileSync(tid ? `/proc/${pid}/task/${tid}/stat` : `/proc/${pid}/stat`, 'utf8')
    // The state follows the command name, in parentheses that may themselves hold spaces or parentheses.
    return stat.charAt(stat.lastIndexOf(')') + 2)
  } catch {
    return undefined
  }
}

/** Last lines of a log file, for error messages. */
export function tailOf(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

/**
 * Processes with a socket listening on the TCP port (from /proc: the socket's inode in /proc/net/tcp{,6},
 * then the fds that point at it). A redis-server killed during an AOF rewrite leaves its forked child holding
 * the listening socket, so "the process is dead" does not mean "the port is free".
 */
export function pidsListeningOn(port: number): number[] {
  const inodes = new Set<string>()
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try {
      text = readFileSync(table, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      const local = fields[1]
      if (!local || fields[3] !== '0A') continue // 0A: LISTEN
      if (Number.parseInt(local.split(':')[1] ?? '', 16) === port && fields[9]) inodes.add(fields[9])
    }
  }
  if (inodes.size === 0) return []
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const fds = readdirSync(`/proc/${entry}/fd`)
      if (
        fds.some((fd) =>
          inodes.has(/^socket:\[(\d+)\]$/.exec(readlinkSafe(`/proc/${entry}/fd/${fd}`))?.[1] ?? ''),
        )
      )
        pids.push(Number(entry))
    } catch {}
  }
  return pids
}

function readlinkSafe(path: string): string {
  try {
    return readlinkSync(path)
  } catch {
    return ''
  }
}
