// The three configuration stores a service reads: recipients, templates, routes.
import type { Kafka, Producer } from 'kafkajs'
import type { Logger } from '../logger.ts'
import type { ConfigKind } from '../topics.ts'
import {
  type Recipient,
  type Route,
  recipientSchema,
  routeSchema,
  type Template,
  templateSchema,
} from './schemas.ts'
import { ConfigTopicStore } from './store.ts'

export interface ConfigStores {
  recipients: ConfigTopicStore<Recipient>
  templates: ConfigTopicStore<Template>
  routes: ConfigTopicStore<Route>
}

export function createConfigStores(
  kafka: Kafka,
  options: {
    names: Record<ConfigKind, string>
    producer: Producer
    logger: Logger
    groupPrefix: string
    readBackTimeoutMs?: number
    ackTimeoutMs?: number
  },
): ConfigStores {
  const common = {
    producer: options.producer,
    logger: options.logger,
    groupPrefix: options.groupPrefix,
    ...(options.readBackTimeoutMs !== undefined ? { readBackTimeoutMs: options.readBackTimeoutMs } : {}),
    ...(options.ackTimeoutMs !== undefined ? { ackTimeoutMs: options.ackTimeoutMs } : {}),
  }
  return {
    recipients: new ConfigTopicStore(kafka, {
      ...common,
      topic: options.names.recipients,
      schema: recipientSchema,
    }),
    templates: new ConfigTopicStore(kafka, {
      ...common,
      topic: options.names.templates,
      schema: templateSchema,
    }),
    routes: new ConfigTopicStore(kafka, { ...common, topic: options.names.routes, schema: routeSchema }),
  }
}

const all = (stores: ConfigStores) => [stores.recipients, stores.templates, stores.routes] as const

/** True once every store was read to the log end captured at its start. */
export function configStoresReady(stores: ConfigStores): boolean {
  return all(stores).every((s) => s.ready)
}

/**
 * Starts the stores, retrying a start that fails (Kafka not there yet) until it succeeds or `signal`
 * aborts; resolves once every store is ready.
 */
export async function startConfigStores(
  stores: ConfigStores,
  options: { logger: Logger; signal?: AbortSignal },
): Promise<void> {
  await startTopicStores(all(stores), options)
}

/** startConfigStores for any list of stores (the alarm stores use it too). */
export async function startTopicStores(
  stores: ReadonlyArray<ConfigTopicStore<unknown>>,
  options: { logger: Logger; signal?: AbortSignal },
): Promise<void> {
  await Promise.all(
    stores.map(async (store) => {
      for (let attempt = 1; !options.signal?.aborted; attempt++) {
        try {
          await store.start()
          await store.whenReady()
          return
        } catch (error) {
          options.logger.warn(
            { err: error, topic: store.topic, attempt },
            'config store could not start; retrying',
          )
          await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 500 * attempt)))
        }
      }
    }),
  )
}

export async function stopConfigStores(stores: ConfigStores): Promise<void> {
  await Promise.all(all(stores).map((s) => s.stop()))
}
