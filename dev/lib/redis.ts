// A real redis-server on 127.0.0.1 with AOF (appendfsync everysec) and noeviction, data in the local folder.
import { execFileSync } from 'node:child_process'
import { accessSync, constants, mkdirSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { delimiter, join } from 'node:path'
import { isPortOpen, isRunning, livePid, spawnDetached, stopProcess, tailOf, waitFor } from './process.ts'

export interface RedisInstance {
  port: number
  dataDir: string
  /** More redis-server options (a Redis Cluster node: --cluster-enabled yes ...). */
  extraArgs?: string[]
}

function paths(instance: RedisInstance) {
  return {
    pidFile: join(instance.dataDir, 'redis.pid'),
    logFile: join(instance.dataDir, 'redis.log'),
    dir: join(instance.dataDir, 'redis-data'),
  }
}

function findOnPath(command: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin']
  for (const dir of dirs) {
    const candidate = join(dir, command)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}

/** Path of redis-server; installs it with apt-get when missing and running as root. */
export function ensureRedisServer(log: (line: string) => void = () => {}): string {
  const found = findOnPath('redis-server')
  if (found) return found
  if (process.getuid?.() !== 0 || !findOnPath('apt-get')) {
    throw new Error(
      'redis-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install -y redis-server; ' +
        'macOS: brew install redis) and run the command again.',
    )
  }
  log('installing redis-server with apt-get')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  try {
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'redis-server'], {
      stdio: 'pipe',
      env,
    })
  } catch {
    execFileSync('apt-get', ['update'], { stdio: 'pipe', env })
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'redis-server'], {
      stdio: 'pipe',
      env,
    })
  }
  const installed = findOnPath('redis-server')
  if (!installed) throw new Error('apt-get finished but redis-server is still not on the PATH')
  return installed
}

/** Sends one inline command over RESP and returns the first reply line. */
export function redisCommand(port: number, command: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' })
    let reply = ''
    socket.setTimeout(timeoutMs, () => {
      socket.destroy()
      reject(new Error('timeout'))
    })
    socket.once('error', reject)
    socket.once('connect', () => socket.write(`${command}\r\n`))
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8')
      const end = reply.indexOf('\r\n')
      if (end >= 0) {
        socket.end()
        resolve(reply.slice(0, end))
      }
    })
  })
}

export async function isRedisReady(port: number): Promise<boolean> {
  return (await redisCommand(port, 'PING').catch(() => '')) === '+PONG'
}

/** Starts redis-server in the background (or reuses the one this data folder runs) and waits for PONG. */
export async function startRedis(
  instance: RedisInstance,
  log: (line: string) => void = () => {},
): Promise<{ pid: number; reused: boolean; url: string }> {
  const url = `redis://127.0.0.1:${instance.port}`
  const { pidFile, logFile, dir } = paths(instance)
  const marker = `127.0.0.1:${instance.port}`
  const running = livePid(pidFile, 'redis-server')
  if (running !== undefined) {
    await waitFor('Redis', () => isRedisReady(instance.port), { timeoutMs: 30_000 })
    return { pid: running, reused: true, url }
  }
  if (await isPortOpen(instance.port)) {
    throw new Error(
      `port ${instance.port} is already in use by a process Herald did not start; stop it, or choose another port (REDIS_PORT)`,
    )
  }
  const server = ensureRedisServer(log)
  mkdirSync(dir, { recursive: true })
  const args = [
    '--bind',
    '127.0.0.1',
    '--port',
    String(instance.port),
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    '--maxmemory-policy',
    'noeviction',
    '--save',
    '',
    '--daemonize',
    'no',
    '--protected-mode',
    'yes',
    '--loglevel',
    'notice',
    ...(instance.extraArgs ?? []),
  ]
  const pid = spawnDetached(server, args, logFile, pidFile)
  log(`Redis starting (pid ${pid}, ${marker}, log ${logFile})`)
  try {
    await waitFor('Redis', () => isRedisReady(instance.port), {
      timeoutMs: 30_000,
      abortIf: () =>
        isRunning(pid) ? undefined : `redis-server exited; last log lines:\n${tailOf(logFile)}`,
    })
  } catch (error) {
    await stopProcess(pid, 5000)
    throw error
  }
  return { pid, reused: false, url }
}

export async function stopRedis(instance: RedisInstance, graceMs = 10_000): Promise<string> {
  const { pidFile } = paths(instance)
  const pid = livePid(pidFile, 'redis-server')
  if (pid === undefined) return 'not running'
  const how = await stopProcess(pid, graceMs)
  rmSync(pidFile, { force: true })
  return how
}

export function redisPid(instance: RedisInstance): number | undefined {
  return livePid(paths(instance).pidFile, 'redis-server')
}
