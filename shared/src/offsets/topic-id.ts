// A topic's Kafka topic id: what ties stored offsets to one incarnation of a topic (a topic deleted and
// created again under the same name gets a new id). kafkajs 2.2.4 speaks Metadata up to v6, which has no
// topic ids (they came with v10, Kafka 2.8), so this sends one Metadata v11 request itself, over a plain
// connection to a bootstrap broker (Herald's Kafka clients use no TLS or SASL either).
import { connect } from 'node:net'

const metadataApiKey = 3
const metadataVersion = 11
const errorNames: Record<number, string> = {
  3: 'UNKNOWN_TOPIC_OR_PARTITION',
  29: 'TOPIC_AUTHORIZATION_FAILED',
}

/**
 * Reads the topic's id from the first broker that answers, as Kafka's tools print it (base64url of the
 * 16-byte UUID). Throws when no broker answers or the topic has no id (unknown topic, broker before 2.8).
 */
export async function readTopicId(
  brokers: readonly string[],
  topic: string,
  options: { clientId?: string; timeoutMs?: number } = {},
): Promise<string> {
  const errors: string[] = []
  for (const broker of brokers) {
    try {
      const body = await roundTrip(broker, metadataRequest(topic, options.clientId ?? 'herald'), options)
      return topicIdFrom(body, topic)
    } catch (error) {
      errors.push(`${broker}: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
  throw new Error(`topic id of ${topic} not read: ${errors.join('; ')}`)
}

function metadataRequest(topic: string, clientId: string): Buffer {
  const client = Buffer.from(clientId, 'utf8')
  const name = Buffer.from(topic, 'utf8')
  const header = Buffer.alloc(10)
  header.writeInt16BE(metadataApiKey, 0)
  header.writeInt16BE(metadataVersion, 2)
  header.writeInt32BE(1, 4) // correlation id: one request per connection
  header.writeInt16BE(client.length, 8) // the header's client id is a classic (int16) string
  const message = Buffer.concat([
    header,
    client,
    Buffer.from([0]), // header tagged fields
    uvarint(2), // topics: compact array of one
    Buffer.alloc(16), // topic_id: zero, the topic is named
    uvarint(name.length + 1),
    name,
    Buffer.from([0, 0, 0, 0]), // topic tagged fields, allow_auto_topic_creation, include_topic_authorized_operations, tagged fields
  ])
  const size = Buffer.alloc(4)
  size.writeInt32BE(message.length, 0)
  return Buffer.concat([size, message])
}

function uvarint(value: number): Buffer {
  const bytes: number[] = []
  let v = value
  while (v >= 0x80) {
    bytes.push((v & 0x7f) | 0x80)
    v >>>= 7
  }
  bytes.push(v)
  return Buffer.from(bytes)
}

/** Sends the request and resolves with the response after its size prefix. */
function roundTrip(broker: string, request: Buffer, options: { timeoutMs?: number }): Promise<Buffer> {
  const colon = broker.lastIndexOf(':')
  const host = broker.slice(0, colon).replace(/^\[(.*)\]$/, '$1')
  const port = Number(broker.slice(colon + 1))
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port })
    const chunks: Buffer[] = []
    let received = 0
    socket.setTimeout(options.timeoutMs ?? 5000, () =>
      socket.destroy(new Error('no answer within the timeout')),
    )
    socket.once('connect', () => socket.write(request))
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      received += chunk.length
      if (received < 4) return
      const all = Buffer.concat(chunks)
      const size = all.readInt32BE(0)
      if (all.length < 4 + size) return
      socket.destroy()
      resolve(all.subarray(4, 4 + size))
    })
    socket.once('error', reject)
    socket.once('close', () => reject(new Error('connection closed before the answer')))
  })
}

/** Reads the response far enough to find the topic's error code and id. */
function topicIdFrom(response: Buffer, topic: string): string {
  let at = 0
  const int16 = () => {
    at += 2
    return response.readInt16BE(at - 2)
  }
  const int32 = () => {
    at += 4
    return response.readInt32BE(at - 4)
  }
  const readUvarint = () => {
    let value = 0
    let shift = 0
    for (;;) {
      const byte = response.readUInt8(at++)
      value += (byte & 0x7f) * 2 ** shift
      if (byte < 0x80) return value
      shift += 7
    }
  }
  const compactString = () => {
    const length = readUvarint() - 1
    if (length < 0) return null
    at += length
    return response.toString('utf8', at - length, at)
  }
  const skipTaggedFields = () => {
    for (let n = readUvarint(); n > 0; n--) {
      readUvarint() // tag
      at += readUvarint()
    }
  }
  if (int32() !== 1) throw new Error('answer to another request')
  skipTaggedFields() // response header v1
  int32() // throttle_time_ms
  for (let brokers = readUvarint() - 1; brokers > 0; brokers--) {
    int32() // node_id
    compactString() // host
    int32() // port
    compactString() // rack
    skipTaggedFields()
  }
  compactString() // cluster_id
  int32() // controller_id
  if (readUvarint() - 1 < 1) throw new Error('no topic in the answer')
  const errorCode = int16()
  const name = compactString()
  const id = response.subarray(at, at + 16)
  if (errorCode !== 0) throw new Error(`${errorNames[errorCode] ?? `Kafka error ${errorCode}`} for ${topic}`)
  if (name !== topic) throw new Error(`answer names another topic (${name})`)
  if (id.length !== 16 || id.every((b) => b === 0)) throw new Error('the broker reports no topic id')
  return id.toString('base64url')
}
