// What an integration test file sets up before its tests and tears down after them: Kafka and Redis
// clients, optionally the stand-ins or a private stack, the namespaces it created and the service processes
// it started. Call `testContext` once at the top level of a test file; its handles are there in the tests,
// and in the file's own hooks once `ready` settled.
import { after, before } from 'node:test'
import { createRedis, defineScripts, type Redis, sharedScripts } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { StatusStore, type StatusView } from '@herald/shared/status'
import type { Admin, Kafka, Producer } from 'kafkajs'
import type { Sandbox } from '../../dev/standins/index.ts'
import { type SmtpStandIn, startSmtpStandIn } from '../../dev/standins/smtp.ts'
import { kafkaBrokers, type PrivateStack, redisUrl, requireServers, startPrivateStack } from '../helpers.ts'
import { redisClusterNodes, spanNodes } from './cluster.ts'
import {
  createTopics,
  deleteNamespace,
  namespace,
  newProducer,
  serviceEnv,
  startTestSandbox,
  type TestNamespace,
  testKafka,
} from './fixtures.ts'
import { eventually, type ServiceProcess, startService } from './service-process.ts'

export interface ContextOptions {
  /** The SMTP, Twilio and Slack stand-ins on free ports (`distributor` points services at them). */
  sandbox?: boolean
  /** A lone SMTP stand-in on free ports (`distributor` points services at it). */
  smtp?: boolean
  /** A Kafka broker and Redis server of the file's own instead of the shared ones, destroyed after. */
  privateStack?: boolean
}

export interface TestContext {
  /**
   * Settles once the context's `before` hook finished. A file's top-level `before` hooks run at the same
   * time (node:test), so a hook of the file's own that uses the handles awaits this (or `setup`) first.
   */
  readonly ready: Promise<void>
  readonly kafka: Kafka
  readonly admin: Admin
  readonly producer: Producer
  /** A client of the stack's Redis, with Herald's shared scripts defined. */
  readonly redis: Redis
  /** Only with `sandbox: true`. */
  readonly sandbox: Sandbox
  /** Only with `smtp: true`. */
  readonly smtp: SmtpStandIn
  /** Only with `privateStack: true`. */
  readonly stack: PrivateStack
  readonly brokers: string
  readonly redisUrl: string
  /** A new namespace without topics (the services make them), deleted with its Redis keys after the file. */
  namespace(label: string): TestNamespace
  /** A new namespace (after `ready`) whose topics are created now and deleted with its Redis keys after. */
  setup(label: string, partitions?: number): Promise<TestNamespace>
  /** A service process, SIGKILLed after the file if it still runs. */
  service(
    name: string,
    script: 'api' | 'distributor' | 'router' | 'alarms' | 'rules',
    env: Record<string, string>,
    options?: { entry?: 'production' | 'test' },
  ): ServiceProcess
  /** A distributor of the namespace, pointed at this context's stack and stand-ins. */
  distributor(ns: TestNamespace, name: string, env: Record<string, string>): ServiceProcess
  /** Resolves once the process claimed a partition (within 30 s). */
  claimed(p: ServiceProcess): Promise<Record<string, unknown>>
  /**
   * Ids of the namespace the stand-ins received, with repeats: SMTP by its Message-ID <id@herald>, Twilio
   * and Slack by the first word of the text that starts with the namespace's prefix.
   */
  deliveredIds(ns: TestNamespace): string[]
  /** The namespace's notification statuses (in the context's Redis). */
  statuses(ns: TestNamespace): StatusStore
  /** Waits for the id's status to be final (delivered, dead_lettered or expired), 30 s unless told. */
  finalStatus(ns: TestNamespace, id: string, timeoutMs?: number): Promise<StatusView>
  /** Runs `step` after the file, first (the last one registered first), before the SIGKILLs and deletions. */
  teardown(step: () => Promise<unknown> | unknown): void
}

function present<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`the test context has no ${what}`)
  return value
}

export function testContext(options: ContextOptions = {}): TestContext {
  let stack: PrivateStack | undefined
  let sandbox: Sandbox | undefined
  let smtp: SmtpStandIn | undefined
  let kafka: Kafka | undefined
  let admin: Admin | undefined
  let producer: Producer | undefined
  let redis: Redis | undefined
  const namespaces: TestNamespace[] = []
  const running: ServiceProcess[] = []
  const steps: Array<() => Promise<unknown> | unknown> = []
  const brokers = () => stack?.brokers ?? kafkaBrokers()
  const redisAddress = () => stack?.redisUrl ?? redisUrl()

  let started: () => void = () => {}
  let failed: (error: unknown) => void = () => {}
  const ready = new Promise<void>((resolve, reject) => {
    started = resolve
    failed = reject
  })
  ready.catch(() => {}) // reported by the hook that failed

  before(async () => {
    try {
      if (options.privateStack) stack = await startPrivateStack()
      else await requireServers()
      if (options.sandbox) sandbox = await startTestSandbox()
      if (options.smtp) smtp = await startSmtpStandIn({ port: 0, httpPort: 0, quiet: true })
      kafka = testKafka(brokers())
      admin = kafka.admin()
      await admin.connect()
      producer = await newProducer(kafka)
      const clusterNodes = stack ? [] : redisClusterNodes()
      redis = createRedis(redisAddress(), {}, clusterNodes)
      if (clusterNodes.length > 0) spanNodes(redis)
      defineScripts(redis, sharedScripts)
      await redis.connect()
      started()
    } catch (error) {
      failed(error)
      throw error
    }
  })

  // Best effort: a step that fails (a broker a test killed) does not keep the others from running.
  after(async () => {
    const ignore = () => {}
    for (const step of steps.reverse()) await Promise.resolve().then(step).catch(ignore)
    for (const p of running) p.kill('SIGKILL')
    for (const ns of namespaces) if (admin) await deleteNamespace(admin, redis, ns).catch(ignore)
    await sandbox?.close().catch(ignore)
    await smtp?.close().catch(ignore)
    await producer?.disconnect().catch(ignore)
    await admin?.disconnect().catch(ignore)
    redis?.disconnect()
    await stack?.destroy()
  })

  const context: TestContext = {
    ready,
    get kafka() {
      return present(kafka, 'Kafka client (before it ran?)')
    },
    get admin() {
      return present(admin, 'Kafka admin (before it ran?)')
    },
    get producer() {
      return present(producer, 'producer (before it ran?)')
    },
    get redis() {
      return present(redis, 'Redis client (before it ran?)')
    },
    get sandbox() {
      return present(sandbox, 'sandbox (pass { sandbox: true })')
    },
    get smtp() {
      return present(smtp, 'SMTP stand-in (pass { smtp: true })')
    },
    get stack() {
      return present(stack, 'private stack (pass { privateStack: true })')
    },
    get brokers() {
      return brokers()
    },
    get redisUrl() {
      return redisAddress()
    },
    namespace(label) {
      const ns = namespace(label)
      namespaces.push(ns)
      return ns
    },
    async setup(label, partitions = 4) {
      await ready
      const ns = context.namespace(label)
      await createTopics(context.admin, ns, partitions, brokers())
      return ns
    },
    service(name, script, env, serviceOptions = {}) {
      const p = startService(name, script, env, serviceOptions)
      running.push(p)
      return p
    },
    distributor(ns, name, env) {
      const standIns = sandbox?.env ?? (smtp ? { SMTP_URL: smtp.url } : {})
      const at = { KAFKA_BROKERS: brokers(), REDIS_URL: redisAddress() }
      return context.service(name, 'distributor', serviceEnv(ns, standIns, { ...at, ...env }))
    },
    claimed: (p) => p.waitForLog((l) => l.msg === 'claimed partition', 30_000),
    deliveredIds(ns) {
      const ours = (id: string | undefined): id is string => id?.startsWith(`${ns.prefix}-`) ?? false
      const fromText = (text: string) => text.split(/\s+/).find(ours)
      const mail = sandbox?.smtp ?? smtp
      return [
        ...(mail?.messages() ?? []).map((m) => /^<(.+)@herald>$/.exec(m.messageId ?? '')?.[1]),
        ...(sandbox?.twilio.messages() ?? []).map((m) => fromText(m.text)),
        ...(sandbox?.slack.messages() ?? []).map((m) => fromText(m.text)),
      ].filter(ours)
    },
    statuses: (ns) => new StatusStore(context.redis, redisKeys(ns.prefix), 3600),
    finalStatus: (ns, id, timeoutMs = 30_000) =>
      eventually(
        `final status of ${id}`,
        async () => {
          const view = await context.statuses(ns).get(id)
          return view && ['delivered', 'dead_lettered', 'expired'].includes(view.status) ? view : undefined
        },
        timeoutMs,
        100,
      ),
    teardown(step) {
      steps.push(step)
    },
  }
  return context
}
