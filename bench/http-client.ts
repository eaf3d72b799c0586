// HTTP client benchmark (issue 17): CPU per POST of the distributor's HTTP client (distributor/src/channels/
// http-client.ts, on undici) against the design it replaced, node:http with a keep-alive agent reading the
// answer into a string, in the same run. Both POST a Slack-sized JSON body to the Slack stand-in (instant,
// its own process), 32 at a time; rounds alternate (baseline first and last). The figure is the bench
// process's CPU (user + system) per POST; a run where any POST did not get its 200 is INVALID.
// Run: npm run bench:http-client [-- --record]  (BENCH_POSTS per round, default 20000)

import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HttpClient } from '../distributor/src/channels/http-client.ts'
import { startStandInProcess } from './processes.ts'
import { appendReport, formatTable, machineFacts } from './report.ts'

const posts = Number(process.env.BENCH_POSTS ?? 20_000)
const concurrency = 32
const body = JSON.stringify({ text: 'disk usage on db-7 is 91% (threshold 90%), since 12:04 UTC' })
const headers = { 'content-type': 'application/json' }

type Post = (url: string) => Promise<number>

/** The baseline: node:http with a keep-alive agent, the answer read into a string, a deadline timer. */
function nodeHttpPost(): { post: Post; close: () => void } {
  const agent = new http.Agent({ keepAlive: true, scheduling: 'lifo' })
  const post: Post = (url) =>
    new Promise((resolve, reject) => {
      const request = http.request(
        url,
        { method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } },
        (response) => {
          const chunks: Buffer[] = []
          response.on('data', (chunk: Buffer) => chunks.push(chunk))
          response.on('end', () => {
            clearTimeout(timer)
            Buffer.concat(chunks).toString('utf8')
            resolve(response.statusCode ?? 0)
          })
        },
      )
      const timer = setTimeout(() => request.destroy(new Error('timeout')), 15_000)
      request.on('error', (error) => {
        clearTimeout(timer)
        reject(error)
      })
      request.end(body)
    })
  return { post, close: () => agent.destroy() }
}

function heraldPost(): { post: Post; close: () => void } {
  const client = new HttpClient()
  return {
    post: async (url) => (await client.post(url, body, { headers, timeoutMs: 15_000 })).status,
    close: () => client.close(),
  }
}

interface Round {
  who: 'node:http' | 'herald'
  perSecond: number
  cpuMicros: number
  ok: number
}

async function round(who: Round['who'], url: string): Promise<Round> {
  const client = who === 'herald' ? heraldPost() : nodeHttpPost()
  // Warm the connections and the JIT outside the measurement.
  await Promise.all(Array.from({ length: concurrency }, () => client.post(url)))
  let next = 0
  let ok = 0
  const cpu = process.cpuUsage()
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < posts) if ((await client.post(url)) === 200) ok += 1
    }),
  )
  const elapsed = performance.now() - started
  const used = process.cpuUsage(cpu)
  client.close()
  return {
    who,
    perSecond: Math.round((posts / elapsed) * 1000),
    cpuMicros: Math.round((used.user + used.system) / posts),
    ok,
  }
}

const recordDir = mkdtempSync(join(tmpdir(), 'bench-http-'))
const standIn = await startStandInProcess(recordDir, 0, 'slack')
const rounds: Round[] = []
try {
  const url = `${standIn.httpUrl}/services/bench`
  for (const who of ['node:http', 'herald', 'node:http', 'herald', 'node:http'] as const) {
    const r = await round(who, url)
    rounds.push(r)
    console.log(
      `${who}: ${r.perSecond} POST/s, ${r.cpuMicros} µs CPU per POST, ${r.ok}/${posts} answered 200`,
    )
  }
} finally {
  await standIn.stop()
  rmSync(recordDir, { recursive: true, force: true })
}

const mean = (who: Round['who']) => {
  const of = rounds.filter((r) => r.who === who)
  return of.reduce((s, r) => s + r.cpuMicros, 0) / of.length
}
const ratio = mean('herald') / mean('node:http')
const valid = rounds.every((r) => r.ok === posts)
const table = formatTable(
  ['round', 'client', 'POST/s', 'CPU µs per POST', 'answered 200'],
  rounds.map((r, i) => [String(i + 1), r.who, String(r.perSecond), String(r.cpuMicros), `${r.ok}/${posts}`]),
)
const summary = `Herald's client: ${mean('herald').toFixed(0)} µs of CPU per POST, ${ratio.toFixed(2)}× node:http's ${mean('node:http').toFixed(0)} µs (means of the rounds)${valid ? '' : ' — INVALID: not every POST answered 200'}`
console.log(`\n${table}\n\n${summary}`)
appendReport('HTTP client', [
  await machineFacts(),
  '',
  `${posts} POSTs per round, ${concurrency} at a time, to the Slack stand-in (instant, its own process); CPU of the bench process.`,
  '',
  table,
  '',
  summary,
])
if (!valid) process.exitCode = 1
