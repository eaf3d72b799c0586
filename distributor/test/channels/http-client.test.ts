// The channels' HTTP client (http-client.ts, on undici) against local servers: what the classifiers and the
// statuses read from its errors (the socket error's code, not undici's own), the credentials of a URL, the
// cap on a long answer, and a pooled connection reused by the next request.
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { after, before, test } from 'node:test'
import { HttpClient, HttpRequestError } from '../../src/channels/http-client.ts'

let server: http.Server
let url: string
const stalled: http.ServerResponse[] = []
const seen: Array<{ path: string; authorization?: string; body: string; port: number }> = []

before(async () => {
  server = http.createServer((request, response) => {
    let body = ''
    request.setEncoding('utf8')
    request.on('data', (chunk: string) => {
      body += chunk
    })
    request.on('end', () => {
      seen.push({
        path: request.url ?? '',
        body,
        port: request.socket.remotePort ?? 0,
        ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}),
      })
      if (request.url === '/stall') {
        // Headers and a first chunk, then nothing: the body never ends on its own.
        response.writeHead(200, { 'content-type': 'text/plain' })
        response.write('partial')
        stalled.push(response)
        return
      }
      if (request.url === '/long') {
        response.writeHead(200, { 'content-type': 'text/plain' })
        response.end('x'.repeat(200 * 1024))
        return
      }
      response.writeHead(429, { 'retry-after': '3', 'x-twice': ['a', 'b'] })
      response.end('slow down')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
})
after(async () => {
  for (const response of stalled) response.destroy()
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

const options = { headers: { 'content-type': 'text/plain' }, timeoutMs: 5000 }

test('an answer carries its status, headers (repeated ones joined) and body; the connection is reused', async () => {
  const client = new HttpClient()
  try {
    const first = await client.post(`${url}/a?x=1`, 'one', options)
    const later = [
      await client.post(`${url}/a?x=1`, 'two', options),
      await client.post(`${url}/a?x=1`, 'three', options),
      await client.post(`${url}/a?x=1`, 'four', options),
    ]
    assert.equal(first.status, 429)
    assert.equal(first.header('Retry-After'), '3')
    assert.equal(first.header('x-twice'), 'a, b')
    assert.equal(first.header('x-missing'), undefined)
    assert.equal(first.header('constructor'), undefined, 'only headers of the answer')
    assert.equal(first.body, 'slow down')
    assert.deepEqual(
      later.map((r) => r.body),
      ['slow down', 'slow down', 'slow down'],
    )
    const requests = seen.slice(-4)
    assert.deepEqual(
      requests.map((r) => [r.path, r.body]),
      [
        ['/a?x=1', 'one'],
        ['/a?x=1', 'two'],
        ['/a?x=1', 'three'],
        ['/a?x=1', 'four'],
      ],
    )
    // undici may open a second connection for a request sent the moment the first answer ended (the
    // connection is released just after), but not one per request.
    const connections = new Set(requests.map((r) => r.port))
    assert.ok(connections.size < requests.length, `${connections.size} connections for 4 requests`)
  } finally {
    client.close()
  }
})

test("a URL's credentials are sent as Basic authorization; a long answer is cut at 64 KiB", async () => {
  const client = new HttpClient()
  try {
    const withUser = new URL(url)
    withUser.username = 'herald'
    withUser.password = 'p@ss word'
    withUser.pathname = '/long'
    const reply = await client.post(withUser, 'x', options)
    assert.equal(seen.at(-1)?.authorization, `Basic ${Buffer.from('herald:p@ss word').toString('base64')}`)
    assert.equal(reply.body.length, 64 * 1024)
  } finally {
    client.close()
  }
})

test('a refused connection and a connection closed before the answer fail with the socket error code', async () => {
  const client = new HttpClient()
  const closer = net.createServer((socket) => socket.once('data', () => socket.destroy()))
  await new Promise<void>((resolve) => closer.listen(0, '127.0.0.1', resolve))
  const closerPort = (closer.address() as net.AddressInfo).port
  // A port that was listening a moment ago and is closed now: nothing accepts there.
  const gone = net.createServer()
  await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve))
  const gonePort = (gone.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => gone.close(() => resolve()))
  try {
    await assert.rejects(client.post(`http://127.0.0.1:${gonePort}/`, 'x', options), (error) => {
      assert.ok(error instanceof HttpRequestError)
      assert.equal(error.code, 'ECONNREFUSED')
      return true
    })
    await assert.rejects(client.post(`http://127.0.0.1:${closerPort}/`, 'x', options), (error) => {
      assert.ok(error instanceof HttpRequestError)
      assert.equal(error.code, 'ECONNRESET')
      return true
    })
    await assert.rejects(client.post('ftp://127.0.0.1/', 'x', options), (error) => {
      assert.ok(error instanceof HttpRequestError)
      assert.equal(error.code, 'EPROTO')
      return true
    })
  } finally {
    client.close()
    await new Promise<void>((resolve) => closer.close(() => resolve()))
  }
})

test('the deadline and the stop signal end a request whose answer started and then stalled', async () => {
  const client = new HttpClient()
  try {
    const started = Date.now()
    await assert.rejects(client.post(`${url}/stall`, 'x', { ...options, timeoutMs: 300 }), (error) => {
      assert.ok(error instanceof HttpRequestError)
      assert.equal(error.code, 'ETIMEDOUT')
      assert.match(error.message, /no answer within 300 ms/)
      return true
    })
    assert.ok(Date.now() - started >= 250, 'not before the deadline')
    const stop = new AbortController()
    const sending = client.post(`${url}/stall`, 'x', { ...options, signal: stop.signal })
    // Aborted once the answer is streaming (its headers and first chunk are out).
    const before = stalled.length
    while (stalled.length === before) await new Promise((resolve) => setTimeout(resolve, 10))
    stop.abort(new Error('distributor stopping'))
    await assert.rejects(sending, /distributor stopping/)
  } finally {
    client.close()
  }
})
