// alert-exec compatibility (RULES_FROM_ENGINE=true): the alerts engine's rules (GET /alerts) are copied onto
// the rules topic every RULES_REFRESH_SECONDS, so they are evaluated like any other rule. Only rules whose
// source is the engine are changed or deleted; rules written through the api are never touched. One member
// imports at a time: the owner of partition 0 of the rules topic.
import type { ConfigTopicStore } from '@herald/shared/config-topics/store'
import type { Logger } from '@herald/shared/logger'
import { type Rule, rulesFromEngine } from '@herald/shared/rules/schemas'

const auditOf = { user: 'alerts-engine', source: 'rules-import' }

export interface ImportResult {
  written: number
  deleted: number
  refused: number
}

/** One import: reads GET /alerts (retrying its 500s), writes what changed, deletes what the engine dropped. */
export async function importEngineRules(
  engineUrl: string,
  store: ConfigTopicStore<Rule>,
  logger: Logger,
  signal?: AbortSignal,
): Promise<ImportResult | undefined> {
  const url = new URL('alerts', engineUrl.endsWith('/') ? engineUrl : `${engineUrl}/`)
  let body: unknown
  for (let attempt = 1; attempt <= 5; attempt++) {
    try {
      const response = await fetch(url, {
        headers: { accept: 'application/json' },
        signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(5000)]) : AbortSignal.timeout(5000),
      })
      const text = await response.text()
      if (response.ok) {
        body = JSON.parse(text)
        break
      }
      logger.warn({ status: response.status, attempt }, 'GET /alerts failed; retrying')
    } catch (error) {
      logger.warn({ err: error, attempt }, 'GET /alerts failed; retrying')
    }
    await new Promise((r) => setTimeout(r, 100 * 2 ** attempt))
  }
  if (body === undefined) return undefined
  const parsed = rulesFromEngine(body)
  if (!parsed.ok) {
    logger.error(
      { problem: parsed.problem },
      'the alerts engine answered no list of rules; keeping the rules as they are',
    )
    return undefined
  }
  for (const refused of parsed.refused) logger.warn({ refused }, 'an engine rule was refused')
  const result: ImportResult = { written: 0, deleted: 0, refused: parsed.refused.length }
  const names = new Set<string>()
  for (const rule of parsed.rules) {
    names.add(rule.name)
    const current = store.get(rule.name)
    if (current && current.source !== 'alerts-engine') {
      logger.warn(
        { rule: rule.name },
        'an engine rule has the name of a rule written through the api; not imported',
      )
      continue
    }
    if (current && JSON.stringify(current) === JSON.stringify(rule)) continue
    await store.put(rule.name, rule, auditOf)
    result.written++
  }
  for (const [name, rule] of store.entries()) {
    if (rule.source !== 'alerts-engine' || names.has(name)) continue
    await store.delete(name, auditOf)
    result.deleted++
  }
  if (result.written + result.deleted > 0) logger.info(result, 'rules imported from the alerts engine')
  return result
}
