// Shared output of the benchmarks: tables, percentiles, machine facts, and the append-only docs/BENCHMARKS.md
// (written only with --record).
import { execFileSync } from 'node:child_process'
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { repoRoot } from '../dev/lib/process.ts'

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index] ?? 0
}

export function formatTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n')
}

/** The commit, machine and node; `services` are the source folders whose uncommitted changes are named. */
export async function machineFacts(
  services: readonly string[] = ['api', 'distributor', 'router', 'shared'],
): Promise<string> {
  const commit = (() => {
    try {
      return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot }).toString().trim()
    } catch {
      return 'unknown'
    }
  })()
  // Others may be changing the code the benchmark ran: name the uncommitted service sources.
  const dirty = (() => {
    try {
      return execFileSync('git', ['status', '--porcelain', '--', ...services], {
        cwd: repoRoot,
      })
        .toString()
        .split('\n')
        .filter((l) => l.trim().length > 0)
        .map((l) => l.slice(3))
    } catch {
      return []
    }
  })()
  const cpu = cpus()
  return `commit ${commit}${dirty.length > 0 ? ` + uncommitted ${dirty.join(', ')}` : ''}, node ${process.version}, ${cpu.length} × ${cpu[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB`
}

/** Whether this run was asked to append its figures to docs/BENCHMARKS.md (`--record`). */
export const recording = process.argv.includes('--record')

/**
 * Appends a dated section to docs/BENCHMARKS.md when the run was started with `--record`; else to
 * .data/bench/BENCHMARKS.md (git-ignored), so a trial run leaves the working tree clean.
 */
export function appendReport(title: string, lines: string[]): void {
  const file = recording
    ? join(repoRoot, 'docs', 'BENCHMARKS.md')
    : join(repoRoot, '.data', 'bench', 'BENCHMARKS.md')
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(
      file,
      '# Herald benchmarks\n\nEach section is one run, appended by `npm run bench* -- --record`. Figures are ratios to baselines ' +
        'measured in the same run on the same machine; absolute numbers move with the machine.\n',
    )
  }
  appendFileSync(file, `\n## ${title} — ${new Date().toISOString()}\n\n${lines.join('\n')}\n`)
  console.log(
    `[bench] appended to ${file}${recording ? '' : ' (pass --record to append to docs/BENCHMARKS.md)'}`,
  )
}
