// Writes accepted notifications to Kafka with acks=all. Concurrent requests are coalesced into one produce
// request per event-loop turn (each is still answered only after its own record is acknowledged), and every
// write has a deadline: past it the caller gets a timeout, never a hang.
import type { IHeaders, Message, Producer } from 'kafkajs'

export class ProduceTimeoutError extends Error {
  constructor(ms: number) {
    super(`Kafka did not acknowledge the write within ${ms} ms`)
    this.name = 'ProduceTimeoutError'
  }
}

interface Pending {
  topic: string
  message: Message
  resolve: () => void
  reject: (error: Error) => void
}

export interface ProducerStats {
  /** Produce requests sent to Kafka and records in them (coalescing ratio = records / requests). */
  onBatch?: (records: number, seconds: number, error?: Error) => void
}

export class NotificationProducer {
  readonly #producer: Producer
  readonly #deadlineMs: number
  readonly #stats: ProducerStats
  #queue: Pending[] = []
  #scheduled = false
  #inFlight = new Set<Promise<unknown>>()

  constructor(producer: Producer, options: { deadlineMs: number } & ProducerStats) {
    this.#producer = producer
    this.#deadlineMs = options.deadlineMs
    this.#stats = options
  }

  /** Resolves once Kafka acknowledged the record (acks=all); rejects on error or at the deadline. */
  send(topic: string, key: string, value: string, headers: IHeaders): Promise<void> {
    return this.sendMany([{ topic, message: { key, value, headers } }])[0] as Promise<void>
  }

  /** Several records at once; one promise per record, in order. */
  sendMany(records: Array<{ topic: string; message: Message }>): Array<Promise<void>> {
    const promises = records.map(
      (r) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new ProduceTimeoutError(this.#deadlineMs)), this.#deadlineMs)
          this.#queue.push({
            topic: r.topic,
            message: r.message,
            resolve: () => {
              clearTimeout(timer)
              resolve()
            },
            reject: (error) => {
              clearTimeout(timer)
              reject(error)
            },
          })
        }),
    )
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(() => this.#flush())
    }
    return promises
  }

  #flush(): void {
    this.#scheduled = false
    const batch = this.#queue
    this.#queue = []
    if (batch.length === 0) return
    const byTopic = new Map<string, Message[]>()
    for (const p of batch) {
      const list = byTopic.get(p.topic)
      if (list) list.push(p.message)
      else byTopic.set(p.topic, [p.message])
    }
    const started = performance.now()
    const request = this.#producer
      .sendBatch({
        acks: -1,
        timeout: this.#deadlineMs,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      })
      .then(
        () => {
          this.#stats.onBatch?.(batch.length, (performance.now() - started) / 1000)
          for (const p of batch) p.resolve()
        },
        (error: Error) => {
          this.#stats.onBatch?.(batch.length, (performance.now() - started) / 1000, error)
          for (const p of batch) p.reject(error)
        },
      )
    this.#inFlight.add(request)
    void request.finally(() => this.#inFlight.delete(request))
  }

  /** Waits for the writes already sent (graceful shutdown). */
  async drain(): Promise<void> {
    if (this.#queue.length > 0) this.#flush()
    await Promise.allSettled([...this.#inFlight])
  }
}
