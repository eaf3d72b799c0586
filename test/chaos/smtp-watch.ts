// A TCP relay between one distributor replica and the SMTP stand-in that sees deliveries in flight: on each
// connection, a message whose data ended ("\r\n.\r\n") and whose reply has not come back yet. The chaos
// harness kills a replica at such a moment, so "killed mid-delivery" is an observation, not a hope.
import { connect, createServer, type Socket } from 'node:net'

export interface SmtpWatch {
  readonly port: number
  /** Recipients of the messages in flight right now. */
  inFlight(): string[]
  /** Called synchronously when a message's data has just been passed on, before its reply can arrive. */
  onDataEnd(listener: ((recipient: string) => void) | undefined): void
  close(): Promise<void>
}

const endOfData = '\r\n.\r\n'

export async function startSmtpWatch(target: { host: string; port: number }): Promise<SmtpWatch> {
  const pending = new Map<Socket, string>()
  const sockets = new Set<Socket>()
  let listener: ((recipient: string) => void) | undefined
  const server = createServer((client) => {
    const upstream = connect(target)
    sockets.add(client)
    sockets.add(upstream)
    let recipient = ''
    // The tail of the previous chunk: a marker may be split across chunks.
    let carry = ''
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk)
      const text = carry + chunk.toString('latin1')
      carry = text.slice(-(endOfData.length - 1))
      for (const m of text.matchAll(/RCPT TO:<([^>]*)>/gi)) recipient = m[1] ?? ''
      if (text.includes(endOfData)) {
        pending.set(client, recipient)
        listener?.(recipient)
      }
    })
    upstream.on('data', (chunk: Buffer) => {
      pending.delete(client)
      client.write(chunk)
    })
    // A replica that dies closes its side: what it sent still reaches the stand-in (end, not destroy).
    client.on('close', () => {
      pending.delete(client)
      sockets.delete(client)
      upstream.end()
    })
    upstream.on('close', () => {
      sockets.delete(upstream)
      client.destroy()
    })
    client.on('error', () => {})
    upstream.on('error', () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const address = server.address()
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    inFlight: () => [...pending.values()],
    onDataEnd: (l) => {
      listener = l
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
