// A real Apache Kafka broker without Docker: jars from Maven Central, KRaft storage, one combined
// broker/controller node on 127.0.0.1. Settings come from dev/kafka/broker.properties (the one source).
import { execFileSync } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
// Loaded for its kafkajs fix (no idle request-queue timer with a negative delay, see shared/src/kafka.ts).
import '@herald/shared/kafka'
import { Kafka, logLevel } from 'kafkajs'
import {
  cacheRoot,
  isPortOpen,
  isRunning,
  livePid,
  repoRoot,
  spawnDetached,
  stopProcess,
  tailOf,
  waitFor,
} from './process.ts'

const pomFile = join(repoRoot, 'dev', 'kafka', 'pom.xml')
const brokerPropertiesFile = join(repoRoot, 'dev', 'kafka', 'broker.properties')
const mainClass = 'kafka.Kafka'

export interface KafkaInstance {
  /** Client port (PLAINTEXT listener). */
  port: number
  /** KRaft controller port. */
  controllerPort: number
  /** Folder for storage, logs, pid file and the generated server.properties. */
  dataDir: string
  /** Extra broker settings for this instance (tests: e.g. a shorter session timeout floor). */
  overrides?: Record<string, string>
  /** The KRaft cluster id to format storage with; the nodes of one cluster share it (default: a new one). */
  clusterId?: string
}

export interface StartResult {
  pid: number
  reused: boolean
  brokers: string
}

/** The Kafka version pinned in dev/kafka/pom.xml. */
export function kafkaVersion(): string {
  const match = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(readFileSync(pomFile, 'utf8'))
  if (!match?.[1]) throw new Error(`no <kafka.version> in ${pomFile}`)
  return match[1]
}

/** The shared broker settings, in file order. */
export function readBrokerProperties(file = brokerPropertiesFile): Map<string, string> {
  const settings = new Map<string, string>()
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const eq = line.indexOf('=')
    if (eq < 1) throw new Error(`${file}: not a key=value line: ${line}`)
    settings.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim())
  }
  return settings
}

/**
 * Resolves the broker's jars into .cache/kafka-<version>/libs once; later calls resolve nothing.
 * A marker file is written last, so an interrupted download is redone.
 */
export function ensureKafkaJars(log: (line: string) => void = () => {}): string {
  const version = kafkaVersion()
  const dir = join(cacheRoot, `kafka-${version}`)
  const libs = join(dir, 'libs')
  const marker = join(dir, 'resolved')
  if (existsSync(marker)) return libs
  log(`resolving Apache Kafka ${version} from Maven Central (once; cached in ${dir})`)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  try {
    execFileSync(
      'mvn',
      [
        '-q',
        '-B',
        '-f',
        pomFile,
        'dependency:copy-dependencies',
        `-DoutputDirectory=${libs}`,
        '-DincludeScope=runtime',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
  } catch (error) {
    const e = error as { code?: string; stdout?: Buffer; stderr?: Buffer }
    if (e.code === 'ENOENT') {
      throw new Error(
        'mvn (Apache Maven) is not installed: it fetches the Kafka broker. Install Maven and Java 17+.',
      )
    }
    throw new Error(`mvn could not resolve Kafka ${version}:\n${e.stdout ?? ''}${e.stderr ?? ''}`)
  }
  if (!readdirSync(libs).some((f) => f.startsWith('kafka_2.13-'))) throw new Error(`no Kafka jar in ${libs}`)
  writeFileSync(marker, `${new Date().toISOString()}\n`)
  return libs
}

function javaCommand(): string {
  return process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java'
}

function jvmArgs(libs: string, instance: KafkaInstance): string[] {
  return [
    '-Xms256m',
    '-Xmx512m',
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-XX:+ExitOnOutOfMemoryError',
    '-XX:ParallelGCThreads=2',
    '-XX:CICompilerCount=2',
    '-Djava.awt.headless=true',
    '-Dorg.slf4j.simpleLogger.showDateTime=true',
    '-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss.SSS',
    '-Dorg.slf4j.simpleLogger.defaultLogLevel=info',
    // The broker is chatty at info about every partition and group; keep what an operator needs.
    '-Dorg.slf4j.simpleLogger.log.org.apache.kafka.clients=warn',
    '-Dorg.slf4j.simpleLogger.log.org.apache.kafka.storage=warn',
    '-Dorg.slf4j.simpleLogger.log.kafka.log=warn',
    '-Dorg.slf4j.simpleLogger.log.org.apache.kafka.coordinator=warn',
    `-Dherald.instance=${instance.dataDir}`,
    '-cp',
    join(libs, '*'),
  ]
}

function paths(instance: KafkaInstance) {
  return {
    pidFile: join(instance.dataDir, 'kafka.pid'),
    logFile: join(instance.dataDir, 'kafka.log'),
    configFile: join(instance.dataDir, 'server.properties'),
    logDir: join(instance.dataDir, 'kafka-data'),
  }
}

function writeServerProperties(instance: KafkaInstance): string {
  const { configFile, logDir } = paths(instance)
  const settings = readBrokerProperties()
  settings.set('node.id', '1')
  settings.set('controller.quorum.voters', `1@127.0.0.1:${instance.controllerPort}`)
  settings.set(
    'listeners',
    `PLAINTEXT://127.0.0.1:${instance.port},CONTROLLER://127.0.0.1:${instance.controllerPort}`,
  )
  settings.set('advertised.listeners', `PLAINTEXT://127.0.0.1:${instance.port}`)
  settings.set('log.dirs', logDir)
  for (const [key, value] of Object.entries(instance.overrides ?? {})) settings.set(key, value)
  const text = [...settings].map(([k, v]) => `${k}=${v}`).join('\n')
  mkdirSync(instance.dataDir, { recursive: true })
  writeFileSync(configFile, `# generated by dev/lib/kafka.ts from dev/kafka/broker.properties\n${text}\n`)
  return configFile
}

/** Formats KRaft storage once per data folder (a fresh cluster id each time the folder is new). */
function formatStorage(libs: string, instance: KafkaInstance, configFile: string): void {
  const { logDir } = paths(instance)
  if (existsSync(join(logDir, 'meta.properties'))) return
  const clusterId = instance.clusterId ?? newClusterId()
  try {
    execFileSync(
      javaCommand(),
      [
        ...jvmArgs(libs, instance),
        'kafka.tools.StorageTool',
        'format',
        '--cluster-id',
        clusterId,
        '--config',
        configFile,
        '--ignore-formatted',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
  } catch (error) {
    const e = error as { code?: string; stdout?: Buffer; stderr?: Buffer }
    if (e.code === 'ENOENT') throw new Error('java is not installed (Java 17 or newer runs the Kafka broker)')
    throw new Error(`formatting Kafka storage failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`)
  }
}

/**
 * A new KRaft cluster id: a base64url UUID without padding (16 random bytes). One that starts with '-' would
 * be read as an option by the storage tool, so draw again (Kafka's own generator avoids those too).
 */
export function newClusterId(): string {
  let id = randomBytes(16).toString('base64url')
  while (id.startsWith('-')) id = randomBytes(16).toString('base64url')
  return id
}

/** True once the broker takes a produce with acks=all and a group consumer reads the record back. */
export async function isKafkaReady(brokers: string, timeoutMs = 20_000): Promise<boolean> {
  const kafka = new Kafka({
    clientId: 'herald-dev-probe',
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    retry: { retries: 2, initialRetryTime: 100 },
  })
  const admin = kafka.admin()
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  const consumer = kafka.consumer({
    groupId: `herald-dev-probe-${randomUUID()}`,
    allowAutoTopicCreation: false,
  })
  const topic = 'herald.dev.probe'
  try {
    await admin.connect()
    const topics = await admin.listTopics()
    if (!topics.includes(topic)) {
      await admin.createTopics({
        // min.insync.replicas 1: a cluster's brokers may default to 2, which a one-replica topic never meets.
        topics: [
          {
            topic,
            numPartitions: 1,
            replicationFactor: 1,
            configEntries: [{ name: 'min.insync.replicas', value: '1' }],
          },
        ],
        waitForLeaders: true,
      })
    }
    await producer.connect()
    const token = randomUUID()
    await producer.send({ topic, acks: -1, messages: [{ value: token }] })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    const seen = await new Promise<boolean>((done) => {
      const timer = setTimeout(() => done(false), timeoutMs)
      void consumer.run({
        eachMessage: async ({ message }) => {
          if (message.value?.toString() === token) {
            clearTimeout(timer)
            done(true)
          }
        },
      })
    })
    return seen
  } finally {
    await consumer.disconnect().catch(() => {})
    await producer.disconnect().catch(() => {})
    await admin.disconnect().catch(() => {})
  }
}

/**
 * Starts the broker in the background and returns once it serves produce and fetch requests.
 * A broker this data folder already runs is reused; a port held by anything else is an error.
 */
export async function startKafka(
  instance: KafkaInstance,
  log: (line: string) => void = () => {},
): Promise<StartResult> {
  const brokers = `127.0.0.1:${instance.port}`
  const { pidFile, logFile } = paths(instance)
  const running = livePid(pidFile, mainClass)
  if (running !== undefined) {
    if (!(await isPortOpen(instance.port))) {
      throw new Error(
        `the Kafka broker of ${instance.dataDir} (pid ${running}) is running but not on port ${instance.port}; ` +
          'stop it first (npm run infra:down)',
      )
    }
    await waitFor('Kafka', () => isKafkaReady(brokers), { timeoutMs: 90_000, intervalMs: 500 })
    return { pid: running, reused: true, brokers }
  }
  for (const port of [instance.port, instance.controllerPort]) {
    if (await isPortOpen(port)) {
      throw new Error(
        `port ${port} is already in use by a process Herald did not start; ` +
          'stop it, or choose other ports (KAFKA_PORT / KAFKA_CONTROLLER_PORT)',
      )
    }
  }
  const libs = ensureKafkaJars(log)
  const configFile = writeServerProperties(instance)
  formatStorage(libs, instance, configFile)
  const pid = spawnDetached(
    javaCommand(),
    [...jvmArgs(libs, instance), mainClass, configFile],
    logFile,
    pidFile,
  )
  log(`Kafka starting (pid ${pid}, log ${logFile})`)
  try {
    await waitFor('Kafka', async () => (await isPortOpen(instance.port)) && isKafkaReady(brokers, 10_000), {
      timeoutMs: 120_000,
      intervalMs: 500,
      abortIf: () => (isRunning(pid) ? undefined : `the broker exited; last log lines:\n${tailOf(logFile)}`),
    })
  } catch (error) {
    await stopProcess(pid, 5000)
    throw error
  }
  return { pid, reused: false, brokers }
}

/** Stops the broker of this data folder (controlled shutdown, SIGKILL after the grace period). */
export async function stopKafka(instance: KafkaInstance, graceMs = 30_000): Promise<string> {
  const { pidFile } = paths(instance)
  const pid = livePid(pidFile, mainClass)
  if (pid === undefined) return 'not running'
  const how = await stopProcess(pid, graceMs)
  rmSync(pidFile, { force: true })
  return how
}

export function kafkaPid(instance: KafkaInstance): number | undefined {
  return livePid(paths(instance).pidFile, mainClass)
}
