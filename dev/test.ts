// npm test: type check and lint, unit tests, then integration tests (*.int.test.ts) against a real Kafka
// broker and Redis server. It starts the local stack when it is not running and stops only what it started.
import { spawn } from 'node:child_process'
import { globSync } from 'node:fs'
import { join, relative } from 'node:path'
import { repoRoot } from './lib/process.ts'
import { type StackUp, stackFromEnv, startStack, stopStack } from './lib/stack.ts'

const log = (line: string) => console.log(`[test] ${line}`)
// Herald's producers name their partitioner; tests that use bare kafkajs need not hear about it.
const args = process.argv.slice(2)
// Filters: parts of test file paths (a file runs when its path contains any of them).
const filters = args.filter((a) => !a.startsWith('--'))
const skipChecks = args.includes('--no-checks')
const unknownOptions = args.filter((a) => a.startsWith('--') && a !== '--no-checks')

function run(command: string, commandArgs: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, commandArgs, { stdio: 'inherit', cwd: repoRoot, env })
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)))
    child.on('error', (error) => {
      console.error(error.message)
      resolve(1)
    })
  })
}

function testFiles(): { unit: string[]; integration: string[] } {
  const all = globSync('**/*.test.ts', {
    cwd: repoRoot,
    exclude: (name) => name === 'node_modules' || name === '.data' || name === '.cache' || name === 'dist',
  })
    .map((f) => relative(repoRoot, join(repoRoot, f)))
    .filter((f) => filters.length === 0 || filters.some((part) => f.includes(part)))
    .sort()
  return {
    unit: all.filter((f) => !f.endsWith('.int.test.ts')),
    integration: all.filter((f) => f.endsWith('.int.test.ts')),
  }
}

const bin = (name: string) => join(repoRoot, 'node_modules', '.bin', name)
const nodeTest = (files: string[], env?: NodeJS.ProcessEnv) =>
  run(process.execPath, ['--test', '--test-reporter=spec', '--test-timeout=300000', ...files], env)

async function main(): Promise<number> {
  const started = Date.now()
  const { unit, integration } = testFiles()
  if (unknownOptions.length > 0) {
    console.error(`[test] unknown option ${unknownOptions.join(', ')}; the only option is --no-checks`)
    return 1
  }
  // A typo must not pass as a green run that tested nothing.
  const matchedNothing = filters.filter((part) => ![...unit, ...integration].some((f) => f.includes(part)))
  if (matchedNothing.length > 0) {
    console.error(
      `[test] no test file path contains ${matchedNothing.map((p) => `"${p}"`).join(', ')}; nothing ran`,
    )
    return 1
  }
  const stack = stackFromEnv()
  // The broker takes a few seconds to start: start it while types, lint and unit tests run.
  const stackUp: Promise<StackUp | Error> =
    integration.length > 0
      ? startStack(stack, log, { adoptRunning: true }).catch((error: Error) => error)
      : Promise.resolve(new Error('unused'))
  const results: Array<[string, number]> = []
  try {
    if (!skipChecks) {
      log('type check (tsc --noEmit)')
      results.push(['typecheck', await run(bin('tsc'), ['--noEmit', '-p', 'tsconfig.json'])])
      // The console runs in a browser: its own project, with the DOM's types.
      results.push([
        'typecheck console',
        await run(bin('tsc'), ['--noEmit', '-p', 'api/console/tsconfig.json']),
      ])
      log('lint and format check (biome)')
      results.push(['lint', await run(bin('biome'), ['check', '.'])])
    }
    if (unit.length > 0) {
      log(`unit tests (${unit.length} files)`)
      results.push(['unit tests', await nodeTest(unit)])
    }
    if (integration.length > 0) {
      const up = await stackUp
      if (up instanceof Error) {
        log(`could not start Kafka and Redis for the integration tests: ${up.message}`)
        results.push(['integration tests', 1])
      } else {
        log(
          `integration tests (${integration.length} files) against Kafka ${up.brokers} and Redis ${up.redisUrl}`,
        )
        const env = { ...process.env, KAFKA_BROKERS: up.brokers, REDIS_URL: up.redisUrl }
        results.push(['integration tests', await nodeTest(integration, env)])
      }
    }
  } finally {
    const up = await stackUp
    if (!(up instanceof Error) && (up.startedKafka || up.startedRedis)) {
      for (const line of await stopStack(stack, { kafka: up.startedKafka, redis: up.startedRedis })) {
        log(`stopped what this run started: ${line}`)
      }
    }
  }
  const failed = results.filter(([, code]) => code !== 0).map(([name]) => name)
  const secs = ((Date.now() - started) / 1000).toFixed(0)
  log(`${results.map(([name, code]) => `${name}: ${code === 0 ? 'ok' : 'FAILED'}`).join(', ')} (${secs} s)`)
  return failed.length === 0 ? 0 : 1
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (error: Error) => {
    console.error(`[test] ${error.stack ?? error.message}`)
    process.exitCode = 1
  },
)
