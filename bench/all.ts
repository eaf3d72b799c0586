// npm run bench [-- --record]: the benchmarks one after another, each in a process of its own, with the
// same arguments (--record appends every one's section to docs/BENCHMARKS.md). Stops at the first failure.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { repoRoot } from '../dev/lib/process.ts'

for (const script of [
  'api-ingest.ts',
  'api-workers.ts',
  'pipeline.ts',
  'distributor.ts',
  'http-client.ts',
  'partitioner.ts',
  'e2e.ts',
  'scaling.ts',
  'router.ts',
  'alarms.ts',
  'rules.ts',
]) {
  const run = spawnSync(process.execPath, [join(repoRoot, 'bench', script), ...process.argv.slice(2)], {
    stdio: 'inherit',
    cwd: repoRoot,
  })
  if (run.status !== 0) {
    console.error(
      `[bench] ${script} failed (${run.status ?? run.signal}); the benchmarks after it did not run`,
    )
    process.exit(run.status ?? 1)
  }
}
