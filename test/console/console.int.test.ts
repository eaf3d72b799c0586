// The operator console in a real browser (Debian's chromium, driven by playwright-core) against the real
// stack: the api on a test namespace, an SMS distributor against the Twilio stand-in, the alarms processor.
// One walk through the four views, each step waiting for what the page shows: a delivered notification and
// its timeline; a dead letter replayed from the page once the provider is fixed, until delivered; dead letters filtered by
// when they failed, counted and replayed by the filter; lag rising while the distributor is stopped and
// falling once another starts; an alarm acknowledged and shelved. A screenshot of each view goes to
// .data/screenshots/ (git-ignored).
import assert from 'node:assert/strict'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { type Browser, chromium, type Page } from 'playwright-core'
import { repoRoot } from '../../dev/lib/process.ts'
import { startTestApi, type TestApi } from '../support/api.ts'
import { testContext } from '../support/context.ts'
import { serviceEnv, type TestNamespace } from '../support/fixtures.ts'
import { eventually, type ServiceProcess } from '../support/service-process.ts'

const ctx = testContext({ sandbox: true })
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const screenshots = join(repoRoot, '.data/screenshots')
let ns: TestNamespace
let api: TestApi
let browser: Browser
let page: Page
let sms: ServiceProcess

before(async () => {
  assert.ok(
    existsSync(executablePath),
    `no chromium at ${executablePath}: apt-get install chromium (or set CHROMIUM_PATH)`,
  )
  ns = await ctx.setup('console', 4)
  api = await startTestApi(ns, {
    brokers: ctx.brokers,
    redisUrl: ctx.redisUrl,
    env: { TOPIC_PARTITIONS: '4', API_KEYS: 'ops:ops-secret:admin' },
  })
  ctx.teardown(() => api.stop())
  sms = ctx.distributor(ns, 'console-sms', { CHANNEL: 'sms', RETRY_BASE_MS: '50' })
  const env = serviceEnv(ns, {}, { KAFKA_BROKERS: ctx.brokers, REDIS_URL: ctx.redisUrl })
  const alarms = ctx.service('console-alarms', 'alarms', env)
  await Promise.all([
    ctx.claimed(sms),
    alarms.waitForLog((l) => l.msg === 'alarm partition loaded; following it', 60_000),
  ])
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] })
  // UTC, so the test writes the dead-letter time filter as the page reads it.
  page = await browser.newPage({ viewport: { width: 1100, height: 800 }, timezoneId: 'UTC' })
  mkdirSync(screenshots, { recursive: true })
})

after(async () => {
  await browser?.close()
})

const shot = (name: string) =>
  page.screenshot({ path: join(screenshots, `console-${name}.png`), fullPage: true })

async function send(to: string, message: string): Promise<string> {
  const answer = await api.call('POST', '/notification', { channel: 'sms', to, message })
  assert.equal(answer.status, 202, JSON.stringify(answer.body))
  return answer.body.id as string
}

async function lookUp(id: string, status: string): Promise<void> {
  await page.getByRole('link', { name: 'Notification' }).click()
  await page.getByLabel('Notification id').fill(id)
  await page.getByRole('button', { name: 'Look up' }).click()
  await page
    .locator('[data-field="status"]', { hasText: status.replace('_', ' ') })
    .waitFor({ timeout: 30_000 })
}

/** The entries of the shown status timeline, oldest first: [status, attempts shown], each with its time. */
async function timeline(): Promise<Array<[string, string]>> {
  const items = page.getByRole('list', { name: 'Status timeline' }).getByRole('listitem')
  return items.evaluateAll((lis) =>
    lis.map((li) => {
      if (!li.querySelector('time')?.getAttribute('datetime'))
        throw new Error('a timeline entry without a time')
      return [li.getAttribute('data-status') ?? '', li.querySelector('.meta')?.textContent ?? ''] as [
        string,
        string,
      ]
    }),
  )
}

test('an operator signs in, follows a notification, replays a dead letter, watches lag and handles an alarm', async (t) => {
  await t.test('a wrong key is refused; the right one signs in', async () => {
    await page.goto(`${api.url}/console`)
    await page.getByLabel('API key').fill('wrong')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('alert').filter({ hasText: 'refused' }).waitFor()
    await page.getByLabel('API key').fill('ops-secret')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('navigation', { name: 'Views' }).waitFor()
  })

  await t.test('a delivered notification shows its status, attempts and timeline', async () => {
    const id = await send('+14155550101', `${ns.prefix}-hello`)
    await ctx.finalStatus(ns, id)
    await lookUp(id, 'delivered')
    assert.equal(await page.locator('[data-field="attempts"]').textContent(), '1')
    assert.deepEqual(await timeline(), [
      ['queued', '0 attempts'],
      ['delivered', '1 attempt'],
    ])
    await shot('notification')
  })

  await t.test(
    'a permanent failure is dead-lettered; replayed from the page after the fix, it is delivered',
    async () => {
      ctx.sandbox.twilio.setFaults({ permanentRecipients: ['+14155550199'], permanentCode: 21610 })
      const id = await send('+14155550199', `${ns.prefix}-unsubscribed`)
      assert.equal((await ctx.finalStatus(ns, id)).status, 'dead_lettered')
      await lookUp(id, 'dead_lettered')
      assert.match((await page.locator('[data-field="last-error"]').textContent()) ?? '', /21610/)
      ctx.sandbox.twilio.setFaults({})

      await page.getByRole('link', { name: 'Dead letters' }).click()
      await page.getByLabel('Channel').selectOption('sms')
      await page.getByLabel('Error class').selectOption('permanent')
      const row = page.locator(`tr[data-id="${id}"]`)
      await row.waitFor()
      await row.getByRole('button', { name: `Read ${id}` }).click()
      await page.locator('tr.detail pre', { hasText: '21610' }).waitFor()
      await page.getByRole('checkbox', { name: `Select ${id}` }).check()
      await shot('dead-letters')
      await page.getByRole('button', { name: 'Replay selected (1)' }).click()
      const dialog = page.getByRole('dialog', { name: 'Replay 1 dead letter?' })
      await dialog.waitFor()
      await dialog.getByRole('button', { name: 'Replay 1' }).click()
      await page
        .getByRole('status')
        .filter({ hasText: `Replayed 1 dead letter on sms: ${id}` })
        .waitFor()
      await lookUp(id, 'delivered')
      assert.deepEqual(
        (await timeline()).map(([status]) => status),
        ['queued', 'dead_lettered', 'queued', 'delivered'],
      )
      assert.match(
        (await page.locator('ol.timeline > li[data-status="dead_lettered"]').textContent()) ?? '',
        /21610/,
      )
    },
  )

  await t.test(
    'dead letters filtered by when they failed are counted, confirmed and replayed by the filter',
    async () => {
      // From the second after the last dead letter so far: the filter leaves that one out.
      const before = await api.call('GET', '/dead-letters/sms?limit=500')
      assert.equal(before.status, 200, JSON.stringify(before.body))
      const earlier = before.body.deadLetters as Array<{ id: string; failedAt: string }>
      assert.ok(earlier.length > 0, 'the previous step left a dead letter')
      const from = Math.floor(Math.max(...earlier.map((l) => Date.parse(l.failedAt))) / 1000) * 1000 + 1000
      await eventually('the clock passed the filter start', () => (Date.now() >= from ? true : undefined))
      const recipients = ['+14155550197', '+14155550198']
      ctx.sandbox.twilio.setFaults({ permanentRecipients: recipients, permanentCode: 21610 })
      const ids = await Promise.all(recipients.map((to) => send(to, `${ns.prefix}-filtered`)))
      for (const id of ids) assert.equal((await ctx.finalStatus(ns, id)).status, 'dead_lettered')
      ctx.sandbox.twilio.setFaults({})

      await page.getByRole('link', { name: 'Dead letters' }).click()
      await page.getByLabel('Channel').selectOption('sms')
      await page.getByLabel('Error class').selectOption('permanent')
      await page.getByLabel('Failed from').fill(new Date(from).toISOString().slice(0, 19))
      // The earlier ones leave the list once the filter applies; what failed since stays.
      for (const l of earlier) await page.locator(`tr[data-id="${l.id}"]`).waitFor({ state: 'detached' })
      for (const id of ids) await page.locator(`tr[data-id="${id}"]`).waitFor()
      await page.getByRole('button', { name: 'Replay all matching…' }).click()
      const dialog = page.getByRole('dialog', { name: 'Replay 2 dead letters?' })
      await dialog.getByText('matching class permanent, failed from').waitFor()
      await dialog.getByRole('button', { name: 'Replay 2' }).click()
      const done = page
        .getByRole('status')
        .filter({ hasText: 'Replayed 2 dead letters on sms (class permanent' })
      await done.waitFor()
      const told = (await done.textContent()) ?? ''
      for (const id of ids) assert.ok(told.includes(id), `${id} in: ${told}`)
      for (const l of earlier) assert.ok(!told.includes(l.id), `${l.id} not in: ${told}`)
      for (const id of ids) await lookUp(id, 'delivered')
    },
  )

  await t.test('lag rises while the distributor is stopped and falls once one runs again', async () => {
    await page.getByRole('link', { name: 'Channels' }).click()
    const card = page.locator('section[data-channel="sms"]')
    await card.locator('[data-field="lag"]', { hasText: /^0$/ }).waitFor()
    sms.kill('SIGTERM')
    await sms.exited
    const answer = await api.call(
      'POST',
      '/notifications',
      Array.from({ length: 12 }, (_, i) => ({
        channel: 'sms',
        to: `+1415555020${i % 10}`,
        message: `${ns.prefix}-lag-${i}`,
      })),
    )
    assert.equal(answer.status, 207)
    await card.locator('[data-field="lag"]', { hasText: /^12$/ }).waitFor({ timeout: 30_000 })
    await card.locator('[data-field="replicas"]', { hasText: /^0$/ }).waitFor({ timeout: 30_000 })
    assert.doesNotMatch((await card.locator('[data-field="age"]').textContent()) ?? '', /—/)
    await card.getByText('Partitions (4)').click()
    await shot('channels')
    const again = ctx.distributor(ns, 'console-sms-2', { CHANNEL: 'sms', RETRY_BASE_MS: '50' })
    await ctx.claimed(again)
    await card.locator('[data-field="lag"]', { hasText: /^0$/ }).waitFor({ timeout: 30_000 })
    // The running replica publishes its channel breaker; the stopped one removed its own.
    await card.locator('[data-field="breakers"]', { hasText: '1 closed (whole channel)' }).waitFor()
    // The twelve just finished fall in the 10 s the throughput looks back over.
    await card.locator('[data-field="throughput"]', { hasText: /^(?!0\/s)[\d.]+\/s$/ }).waitFor()
    await page.setViewportSize({ width: 390, height: 800 })
    await shot('channels-phone')
    await page.setViewportSize({ width: 1100, height: 800 })
  })

  await t.test(
    'a latched alarm is acknowledged and then shelved from the page, by the signed-in key',
    async () => {
      const name = 'disk-full'
      const registered = await api.call('PUT', `/alarms/${name}`, { severity: 'HIGH', latching: true })
      assert.ok([200, 201].includes(registered.status), JSON.stringify(registered.body))
      await api.call('PUT', '/alarms/queue-slow', { severity: 'LOW' })
      const activated = await api.call('POST', `/alarms/${name}/activate`, { message: 'disk 97% full' })
      assert.equal(activated.status, 202, JSON.stringify(activated.body))

      await page.getByRole('link', { name: 'Alarms' }).click()
      const row = page.locator(`tr[data-alarm="${name}"]`)
      const state = (s: string) =>
        row.locator('[data-field="state"]', { hasText: new RegExp(`^${s}$`) }).waitFor({ timeout: 30_000 })
      await state('latched')
      await page.getByLabel('State').selectOption('latched')
      await page.locator('tr[data-alarm="queue-slow"]').waitFor({ state: 'detached' })
      await page.getByLabel('State').selectOption('')
      await row.getByRole('button', { name: `Ack ${name}` }).click()
      await state('active')
      await row.getByRole('button', { name: `Shelve ${name}` }).click()
      const dialog = page.getByRole('dialog', { name: `Shelve ${name}` })
      await dialog.getByLabel('Shelve for (minutes)').fill('30')
      await dialog.getByLabel('Reason').fill('disk being replaced')
      await dialog.getByRole('button', { name: 'Shelve', exact: true }).click()
      await state('continuous-shelved')
      await shot('alarms')
      // The page showed the effective state; the override is read from another store, which may lag it.
      const view = await eventually('the shelve read back', async () => {
        const answer = await api.call('GET', `/alarms/${name}`)
        return answer.body.overrides?.shelved ? answer : undefined
      })
      assert.equal(view.body.overrides.shelved?.user, 'ops')
      assert.equal(view.body.overrides.shelved?.reason, 'disk being replaced')
    },
  )
})
