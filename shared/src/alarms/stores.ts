// The alarm topics as kept in memory by a reader that is not the processor (the api): every partition of
// each topic, read from the beginning and then followed, like the configuration stores.
//
// The producer given must use AlarmPartitioner (./partitioner.ts): overrides are keyed `<name>/<kind>`, and
// the default partitioner would put them on another partition than the alarm's other records, where the
// processor that owns the alarm never reads them.
import type { Kafka, Producer } from 'kafkajs'
import { ConfigTopicStore } from '../config-topics/store.ts'
import { startTopicStores } from '../config-topics/stores.ts'
import type { Logger } from '../logger.ts'
import type { AlarmTopicKind } from '../topics.ts'
import {
  type Activation,
  activationSchema,
  type Effective,
  effectiveSchema,
  type Override,
  type Overrides,
  overrideKey,
  overrideKinds,
  overrideSchema,
  type Registration,
  registrationSchema,
} from './schemas.ts'

export interface AlarmStores {
  /** Key: alarm name. */
  registrations: ConfigTopicStore<Registration>
  /** Key: alarm name. */
  activations: ConfigTopicStore<Activation>
  /** Key: `<alarm name>/<kind>`. */
  overrides: ConfigTopicStore<Override>
  /** Key: alarm name; written by the processor only. */
  effective: ConfigTopicStore<Effective>
}

export function createAlarmStores(
  kafka: Kafka,
  options: {
    names: Record<AlarmTopicKind, string>
    /** Created with `createPartitioner: AlarmPartitioner`. */
    producer: Producer
    logger: Logger
    groupPrefix: string
    readBackTimeoutMs?: number
    ackTimeoutMs?: number
  },
): AlarmStores {
  const common = {
    producer: options.producer,
    logger: options.logger,
    groupPrefix: options.groupPrefix,
    ...(options.readBackTimeoutMs !== undefined ? { readBackTimeoutMs: options.readBackTimeoutMs } : {}),
    ...(options.ackTimeoutMs !== undefined ? { ackTimeoutMs: options.ackTimeoutMs } : {}),
  }
  return {
    registrations: new ConfigTopicStore(kafka, {
      ...common,
      topic: options.names.registered,
      schema: registrationSchema,
    }),
    activations: new ConfigTopicStore(kafka, {
      ...common,
      topic: options.names.activations,
      schema: activationSchema,
    }),
    overrides: new ConfigTopicStore(kafka, {
      ...common,
      topic: options.names.overrides,
      schema: overrideSchema,
    }),
    effective: new ConfigTopicStore(kafka, {
      ...common,
      topic: options.names.effective,
      schema: effectiveSchema,
    }),
  }
}

const all = (stores: AlarmStores) =>
  [stores.registrations, stores.activations, stores.overrides, stores.effective] as const

/** True once every alarm topic was read to the log end captured at its store's start. */
export function alarmStoresReady(stores: AlarmStores): boolean {
  return all(stores).every((s) => s.ready)
}

/** Starts the stores, retrying until they start or `signal` aborts; resolves once every one is ready. */
export async function startAlarmStores(
  stores: AlarmStores,
  options: { logger: Logger; signal?: AbortSignal },
): Promise<void> {
  await startTopicStores(all(stores), options)
}

export async function stopAlarmStores(stores: AlarmStores): Promise<void> {
  await Promise.all(all(stores).map((s) => s.stop()))
}

/**
 * The overrides of one alarm on the topic, by kind. A record whose value names another kind than its key
 * is not the override of that key and is left out.
 */
export function overridesOf(stores: Pick<AlarmStores, 'overrides'>, name: string): Overrides {
  const found: Record<string, Override> = {}
  for (const kind of overrideKinds) {
    const override = stores.overrides.get(overrideKey(name, kind))
    if (override?.kind === kind) found[kind] = override
  }
  return found as Overrides
}
