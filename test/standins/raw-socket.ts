// Talks to a stand-in below the SDKs: raw bytes over TCP, for the "bad input does not crash it" tests.
import { connect } from 'node:net'

/**
 * Sends `chunks` one after the other (50 ms apart; after the server's greeting when `greeting` is set, as
 * SMTP wants) and resolves with all the server wrote, when it closes the connection or `waitMs` after the
 * last chunk went out (counted from then, so a slow start on a busy machine does not cut the answer short).
 */
export function talkRaw(
  port: number,
  chunks: Array<string | Buffer>,
  options: { greeting?: boolean; waitMs?: number } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const received: Buffer[] = []
    // Until the chunks are out: a bound for a server that never greets nor closes.
    let timer = setTimeout(() => done(), 30_000)
    const done = () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(Buffer.concat(received).toString('latin1'))
    }
    socket.on('data', (chunk) => received.push(chunk))
    socket.on('close', done)
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A server hanging up on garbage is an answer too.
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') done()
      else reject(error)
    })
    const write = async () => {
      for (const chunk of chunks) {
        if (socket.destroyed) return
        socket.write(chunk)
        await new Promise((r) => setTimeout(r, 50))
      }
      if (socket.destroyed) return
      clearTimeout(timer)
      timer = setTimeout(done, options.waitMs ?? 1000)
    }
    if (options.greeting) socket.once('data', () => void write())
    else socket.on('connect', () => void write())
  })
}

/** Random bytes, the same for the same seed (no dependence on Math.random in tests). */
export function garbage(length: number, seed = 7): Buffer {
  const bytes = Buffer.alloc(length)
  let x = seed
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    bytes[i] = (x >> 16) & 0xff
  }
  return bytes
}
