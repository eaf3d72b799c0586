// What the system-level benchmarks (e2e, scaling) share: the SMTP stand-in in its own process and the
// receipts it records, Herald's services as child processes, and CPU accounting from /proc.
import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, existsSync, openSync, readSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { repoRoot } from '../dev/lib/process.ts'
import { type ServiceProcess, startService } from '../test/support/service-process.ts'

export type { ServiceProcess }

export interface StandInProcess {
  readonly child: ChildProcess
  readonly url: string
  readonly httpUrl: string
  readonly recordFile: string
  stop(): Promise<void>
}

/** A provider stand-in (bench/standin-process.ts, SMTP by default) with `latencyMs` before every answer. */
export async function startStandInProcess(
  recordDir: string,
  latencyMs: number,
  provider: 'smtp' | 'slack' = 'smtp',
): Promise<StandInProcess> {
  const child = spawn(
    process.execPath,
    [join(repoRoot, 'bench', 'standin-process.ts'), recordDir, String(latencyMs), provider],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const address = await new Promise<{ url: string; httpUrl: string }>((resolve, reject) => {
    let text = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8')
      const line = text.split('\n')[0]
      if (text.includes('\n') && line) resolve(JSON.parse(line) as { url: string; httpUrl: string })
    })
    void exited.then(() => reject(new Error(`the ${provider} stand-in exited before listening`)))
  })
  return {
    child,
    ...address,
    recordFile: join(recordDir, `${provider}.jsonl`),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    },
  }
}

export interface Receipt {
  /** Wall-clock ms when the stand-in accepted the message (the record's `at`, ms resolution). */
  at: number
  text: string
  heraldId: string | undefined
}

/** Reads the stand-in's JSONL record incrementally: each call returns the receipts appended since the last. */
export class ReceiptTail {
  readonly #file: string
  #offset = 0
  #partial = ''

  constructor(file: string) {
    this.#file = file
  }

  read(): Receipt[] {
    if (!existsSync(this.#file)) return []
    const fd = openSync(this.#file, 'r')
    const chunks: Buffer[] = []
    try {
      const buffer = Buffer.allocUnsafe(1 << 20)
      for (;;) {
        const n = readSync(fd, buffer, 0, buffer.length, this.#offset)
        if (n === 0) break
        this.#offset += n
        chunks.push(Buffer.from(buffer.subarray(0, n)))
      }
    } finally {
      closeSync(fd)
    }
    const text = this.#partial + Buffer.concat(chunks).toString('utf8')
    const lines = text.split('\n')
    this.#partial = lines.pop() ?? ''
    return lines
      .filter((l) => l.length > 0)
      .map((l) => {
        const r = JSON.parse(l) as { at: string; text: string; heraldId?: string }
        return { at: Date.parse(r.at), text: r.text, heraldId: r.heraldId }
      })
  }
}

/** A Herald service (its src/main.ts) as a child process with parsed logs. */
export function spawnService(
  name: string,
  script: 'api' | 'distributor' | 'router' | 'alarms' | 'rules',
  env: Record<string, string>,
): ServiceProcess {
  return startService(name, script, env)
}

/**
 * The port of a service's /metrics when it was started with METRICS_PORT=0: the alarms processor and the
 * rules evaluator log it (`metricsPort`) once they run.
 */
export async function metricsPortOf(service: ServiceProcess, timeoutMs = 60_000): Promise<number> {
  const line = await service.waitForLog((l) => typeof l.metricsPort === 'number', timeoutMs)
  return line.metricsPort as number
}

/** Error and fatal lines a service logged (pino levels 50 and 60). */
export function errorLines(service: ServiceProcess): Array<Record<string, unknown>> {
  return service.lines.filter((l) => typeof l.level === 'number' && l.level >= 50)
}

/**
 * Whether a consumer group of distributors has settled: after each replica's latest join, every partition
 * is claimed (its "claimed partition" line logged) by exactly one replica.
 */
export function groupSettled(replicas: ServiceProcess[], partitions: number): boolean {
  const held: number[] = []
  for (const r of replicas) {
    const lines = r.lines
    let join = -1
    for (let i = lines.length - 1; i >= 0; i--) {
      if (lines[i]?.msg === 'joined the group; claiming partitions') {
        join = i
        break
      }
    }
    if (join < 0) return false
    const assigned = (lines[join]?.assigned as number[] | undefined) ?? []
    const claimed = lines.slice(join + 1).filter((l) => l.msg === 'claimed partition').length
    if (claimed < assigned.length) return false
    held.push(...assigned)
  }
  return held.length === partitions && new Set(held).size === partitions
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopService(service: ServiceProcess, graceMs = 10_000): Promise<void> {
  service.kill('SIGTERM')
  const killed = sleep(graceMs).then(() => {
    service.kill('SIGKILL')
    return service.exited
  })
  await Promise.race([service.exited, killed])
}

// --- CPU accounting (Linux /proc; undefined elsewhere) -------------------------------------------------

/** Clock ticks per second of /proc times (USER_HZ, 100 on every mainstream Linux build). */
const ticksPerSecond = 100

/** CPU time (user + system, all threads) a process used so far, in ms. */
export function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined
  try {
    const stat = readText(`/proc/${pid}/stat`)
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const utime = Number(fields[11])
    const stime = Number(fields[12])
    return ((utime + stime) * 1000) / ticksPerSecond
  } catch {
    return undefined
  }
}

/** Machine-wide CPU time so far, in ms summed over all cores: busy and total. */
export function machineCpuMs(): { busy: number; total: number } | undefined {
  try {
    const line = readText('/proc/stat').split('\n')[0] ?? ''
    const values = line.trim().split(/\s+/).slice(1, 9).map(Number)
    const total = values.reduce((s, v) => s + v, 0)
    const idle = (values[3] ?? 0) + (values[4] ?? 0)
    return { busy: ((total - idle) * 1000) / ticksPerSecond, total: (total * 1000) / ticksPerSecond }
  } catch {
    return undefined
  }
}

function readText(file: string): string {
  const fd = openSync(file, 'r')
  try {
    const buffer = Buffer.alloc(64 * 1024)
    const n = readSync(fd, buffer, 0, buffer.length, 0)
    return buffer.subarray(0, n).toString('utf8')
  } finally {
    closeSync(fd)
  }
}

/** Resident memory of a process now, in bytes (VmRSS of /proc/<pid>/status); undefined when unreadable. */
export function residentBytes(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readText(`/proc/${pid}/status`))
    return match ? Number(match[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}

interface CpuSample {
  at: number
  procs: Map<string, number | undefined>
  machine?: { busy: number; total: number }
}

/**
 * CPU use of named processes and of the whole machine over a window: `sample()` at the start, `sample()`
 * at the end, then `shares()` gives each one's average in cores (1.00 = one core busy all the time).
 */
export class CpuMeter {
  readonly #pids: Map<string, () => Array<number | undefined>>
  #start: CpuSample = { at: 0, procs: new Map() }
  #end: CpuSample = { at: 0, procs: new Map() }

  /** Each name maps to the processes it sums (e.g. every replica). */
  constructor(pids: Record<string, () => Array<number | undefined>>) {
    this.#pids = new Map(Object.entries(pids))
  }

  #take(): CpuSample {
    const procs = new Map<string, number | undefined>()
    for (const [name, pids] of this.#pids) {
      const times = pids().map(processCpuMs)
      procs.set(
        name,
        times.length === 0 || times.includes(undefined)
          ? undefined
          : times.reduce((s: number, t) => s + (t ?? 0), 0),
      )
    }
    const machine = machineCpuMs()
    return { at: performance.now(), procs, ...(machine ? { machine } : {}) }
  }

  start(): void {
    this.#start = this.#take()
  }

  stop(): void {
    this.#end = this.#take()
  }

  /**
   * CPU time per operation over the window, µs, per process name (`count` operations: requests accepted,
   * messages delivered, ...): comparable across machines where cores are not.
   */
  perOperation(count: number): Record<string, number> {
    const out: Record<string, number> = {}
    if (count <= 0) return out
    for (const [name, before] of this.#start.procs) {
      const after = this.#end.procs.get(name)
      if (before !== undefined && after !== undefined) out[name] = ((after - before) * 1000) / count
    }
    return out
  }

  /** Cores used per process name, `machine busy` and `other` (busy minus the named ones), and `cores`. */
  shares(): Record<string, number> {
    const wall = this.#end.at - this.#start.at
    const out: Record<string, number> = {}
    let named = 0
    for (const [name, before] of this.#start.procs) {
      const after = this.#end.procs.get(name)
      if (before === undefined || after === undefined || wall <= 0) continue
      out[name] = (after - before) / wall
      named += out[name]
    }
    const a = this.#start.machine
    const b = this.#end.machine
    if (a && b && b.total > a.total) {
      const cores = (b.total - a.total) / wall
      out.cores = cores
      out['machine busy'] = (b.busy - a.busy) / wall
      out.other = Math.max(0, out['machine busy'] - named)
    }
    return out
  }
}

/** "api 61, distributors 140, … µs" for a report line (from CpuMeter.perOperation). */
export function describePerOperation(micros: Record<string, number>): string {
  return Object.entries(micros)
    .map(([name, v]) => `${name} ${v.toFixed(0)}`)
    .join(', ')
}

/** "replicas 1.62, kafka 0.21, … of 2 cores" for a report line. */
export function describeCpu(shares: Record<string, number>): string {
  const { cores, ...rest } = shares
  const parts = Object.entries(rest).map(([name, v]) => `${name} ${v.toFixed(2)}`)
  return `${parts.join(', ')}${cores ? ` (cores in use, of ${Math.round(cores)})` : ''}`
}
