// Baseline servers for the api benchmark, run as child processes: `node bench/servers.ts http|express <port>`.
// Both read the JSON body and answer 202 with a small JSON body, doing no other work: the ceilings of Node
// and of express with the same body parsing as the api.
import { createServer } from 'node:http'
import express from 'express'

const [kind, portText] = process.argv.slice(2)
const port = Number(portText ?? 0)
const answer = JSON.stringify({
  id: '01a2109b-0000-7000-8000-000000000000',
  channel: 'email',
  status: 'queued',
})

if (kind === 'http') {
  createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      JSON.parse(Buffer.concat(chunks).toString('utf8'))
      res.writeHead(202, { 'content-type': 'application/json', location: '/api/v1/notification/x' })
      res.end(answer)
    })
  }).listen(port, '127.0.0.1', () => console.log('ready'))
} else if (kind === 'express') {
  const app = express()
  app.disable('x-powered-by')
  app.set('etag', false)
  app.use(express.json({ limit: 65536 }))
  app.post('/api/v1/notification', (_req, res) => {
    res.status(202).location('/api/v1/notification/x').type('application/json').send(answer)
  })
  app.listen(port, '127.0.0.1', () => console.log('ready'))
} else {
  console.error('usage: node bench/servers.ts http|express <port>')
  process.exit(2)
}
