// Shared output of the benchmarks: tables, percentiles, machine facts, and the append-only docs/BENCHMARKS.md.
import { execFileSync } from 'node:child_process'
import { appendFileSync, existsSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
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

export async function machineFacts(): Promise<string> {
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
      return execFileSync('git', ['status', '--porcelain', '--', 'api', 'distributor', 'shared'], {
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

/** Appends a dated section to docs/BENCHMARKS.md. */
export function appendReport(title: string, lines: string[]): void {
  const file = join(repoRoot, 'docs', 'BENCHMARKS.md')
  if (!existsSync(file)) {
    writeFileSync(
      file,
      '# Herald benchmarks\n\nEach section is one run, appended by `npm run bench*`. Figures are ratios to baselines ' +
        'measured in the same run on the same machine; absolute numbers move with the machine.\n',
    )
  }
  appendFileSync(file, `\n## ${title} — ${new Date().toISOString()}\n\n${lines.join('\n')}\n`)
}
