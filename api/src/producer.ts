// Writes accepted notifications to Kafka with acks=all. Concurrent requests are coalesced into one produce
// request per event-loop turn (each is still answered only after its own record is acknowledged), and every
// write has a deadline: past it the caller gets a timeout, never a hang.
//
// The deadline is a timer per record, independent of kafkajs: kafkajs may go on retrying a batch after its
// records' deadlines fired (bounded by its retry settings, see server.ts). The caller has then answered
// "outcome unknown", which is exactly what it is; a caller that must learn the outcome after all (an
// Idempotency-Key keeps its id until then) uses `track`, whose `fate` settles when kafkajs is done.
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

export interface ProducerOptions {
  /** Default deadline of a write (PRODUCE_TIMEOUT_MS). */
  deadlineMs: number
  /** How long the broker may wait for the in-sync replicas (the produce request's `timeout`). */
  ackTimeoutMs?: number
  /** Produce requests sent to Kafka and records in them (coalescing ratio = records / requests). */
  onBatch?: (records: number, seconds: number, error?: Error) => void
}

export class NotificationProducer {
  readonly #producer: Producer
  readonly #deadlineMs: number
  readonly #ackTimeoutMs: number
  readonly #onBatch: ProducerOptions['onBatch']
  #queue: Pending[] = []
  #scheduled = false
  #inFlight = new Set<Promise<unknown>>()

  constructor(producer: Producer, options: ProducerOptions) {
    this.#producer = producer
    this.#deadlineMs = options.deadlineMs
    this.#ackTimeoutMs = options.ackTimeoutMs ?? options.deadlineMs
    this.#onBatch = options.onBatch
  }

  /**
   * Resolves once Kafka acknowledged the record (acks=all); rejects on error or at the deadline (the
   * default one, or a shorter one for a request that already spent part of its time waiting).
   */
  send(
    topic: string,
    key: string,
    value: string,
    headers: IHeaders,
    deadlineMs = this.#deadlineMs,
  ): Promise<void> {
    return this.sendMany([{ topic, message: { key, value, headers } }], deadlineMs)[0] as Promise<void>
  }

  /**
   * One record, with two promises: `answer` settles like `send` (the deadline included), `fate` when
   * kafkajs acknowledged the record or gave up on it, however long after the deadline that is.
   */
  track(
    topic: string,
    key: string,
    value: string,
    headers: IHeaders,
    deadlineMs = this.#deadlineMs,
  ): { answer: Promise<void>; fate: Promise<void> } {
    const fate = this.#enqueue(topic, { key, value, headers })
    return { answer: withDeadline(fate, deadlineMs), fate }
  }

  /** Several records at once; one promise per record, in order. */
  sendMany(
    records: Array<{ topic: string; message: Message }>,
    deadlineMs = this.#deadlineMs,
  ): Array<Promise<void>> {
    return records.map((r) => withDeadline(this.#enqueue(r.topic, r.message), deadlineMs))
  }

  /** Queues a record for the next produce request; settles with kafkajs' outcome. */
  #enqueue(topic: string, message: Message): Promise<void> {
    const fate = new Promise<void>((resolve, reject) => {
      this.#queue.push({ topic, message, resolve, reject })
    })
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(() => this.#flush())
    }
    return fate
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
        timeout: this.#ackTimeoutMs,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      })
      .then(
        () => {
          this.#onBatch?.(batch.length, (performance.now() - started) / 1000)
          for (const p of batch) p.resolve()
        },
        (error: Error) => {
          this.#onBatch?.(batch.length, (performance.now() - started) / 1000, error)
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

/** Settles like `fate`, or rejects with ProduceTimeoutError once `ms` passed. */
function withDeadline(fate: Promise<void>, ms: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new ProduceTimeoutError(ms)), ms)
    fate.then(
      () => {
        clearTimeout(timer)
        resolve()
      },
      (error: Error) => {
        clearTimeout(timer)
        reject(error)
      },
    )
  })
}
