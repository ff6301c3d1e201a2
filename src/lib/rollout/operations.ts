import type {Database, PoolClient} from '../db/pool.js'
import {conflict, invalidInput, notFound} from '../core/errors.js'
import {parseSelector} from '../core/selector.js'
import {getFirmware, parseFirmwareRef} from '../firmware/index.js'
import {commandTransition, FINAL_ROLLOUT_STATES, type RolloutState} from './machine.js'
import {parseHealth, stageBoundaries} from './planner.js'
import {explainSelection, logEvent, readRollout, resolveTargets, revertDesired, rolloutNotFound, ROLLOUT_COLUMNS, withTransaction, type RolloutRecord} from './store.js'

export interface RolloutSpec {
  name: string
  firmware: string
  selector?: string
  canarySelector?: string
  stages: number[]
  soakMs: number
  maxFailureRate: number
  minDecided: number
  minCoverage: number
  ratePerMinute?: number
  stepTimeoutMs: number
  health?: string
  rollback: boolean
}

export const ROLLOUT_DEFAULTS = {stages: '1,10,100', soak: '1h', maxFailureRate: '5%', minDecided: 10, minCoverage: '90%', rate: 'unlimited', stepTimeout: '30m'}

export const NAME_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,62}$/

/** Everything checkable without a database (exit 4 before exit 6). */
export function checkSpec(spec: RolloutSpec): {deviceType: string; version: string} {
  if (!NAME_PATTERN.test(spec.name)) throw invalidInput('E_ROLLOUT_NAME', `invalid rollout name ${JSON.stringify(spec.name)}`, {hint: 'lowercase letters, digits, ".", "_" and "-", up to 63 characters, e.g. fw-250'})
  const ref = parseFirmwareRef(spec.firmware)
  if (!ref) throw invalidInput('E_FIRMWARE_REF', `--firmware ${JSON.stringify(spec.firmware)} is not TYPE@VERSION`, {hint: 'e.g. --firmware thermostat@2.5.0'})
  if (spec.selector) parseSelector(spec.selector)
  if (spec.canarySelector) parseSelector(spec.canarySelector)
  if (spec.health) parseHealth(spec.health)
  if (!Number.isInteger(spec.minDecided) || spec.minDecided < 1) throw invalidInput('E_MIN_DECIDED', '--min-decided must be a positive integer', {hint: 'e.g. --min-decided 10'})
  if (spec.stepTimeoutMs < 1000) throw invalidInput('E_STEP_TIMEOUT', '--step-timeout must be at least 1s', {hint: 'e.g. --step-timeout 30m'})
  return ref
}

/** `rollout create`: record it (state pending) after checking that its firmware exists and it targets someone. */
export async function createRollout(db: Database, spec: RolloutSpec, options: {start?: boolean} = {}): Promise<RolloutRecord> {
  const ref = checkSpec(spec)
  const firmware = await getFirmware(db, ref.deviceType, ref.version)
  return withTransaction(db.pool, db.url, (client) => insertRollout(client, spec, firmware.firmware_id, options))
}

/** Record a rollout inside the caller's transaction (the manifests' Rollout kind shares it with its Firmware). */
export async function insertRollout(client: PoolClient, spec: RolloutSpec, firmwareId: number, options: {start?: boolean} = {}): Promise<RolloutRecord> {
  const exists = await client.query('SELECT 1 FROM rollouts WHERE name = $1', [spec.name])
  if (exists.rowCount) throw conflict('E_ROLLOUT_EXISTS', `rollout ${spec.name} already exists`, {hint: `see it with \`iotctl rollout status ${spec.name}\`, or choose another name`})
  await client.query(`INSERT INTO rollouts (name, firmware_id, selector, canary_selector, stages, soak_ms, max_failure_rate, min_decided, min_coverage,
    rate_per_minute, step_timeout_ms, health, rollback) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
  [spec.name, firmwareId, spec.selector ?? null, spec.canarySelector ?? null, spec.stages, spec.soakMs, spec.maxFailureRate, spec.minDecided,
    spec.minCoverage, spec.ratePerMinute ?? null, spec.stepTimeoutMs, spec.health ?? null, Boolean(spec.rollback)])
  const record = await readRollout(client, spec.name, true)
  const matched = await explainSelection(client, record)
  if (Object.values(matched).at(-1) === 0) {
    throw notFound('E_NO_TARGETS', `rollout ${spec.name} would target no device`, {
      hint: `matched: ${Object.entries(matched).map(([k, v]) => `${v} ${k}`).join(', ')}; nothing was recorded`, data: {matched},
    })
  }
  await logEvent(client, spec.name, 'created', {firmware: `${record.device_type}@${record.version}`})
  return options.start ? startInTransaction(client, record) : record
}

/** Start a pending rollout inside the caller's transaction. */
export async function startRolloutIn(client: PoolClient, name: string): Promise<RolloutRecord> {
  return startInTransaction(client, await readRollout(client, name, true))
}

async function startInTransaction(client: PoolClient, record: RolloutRecord): Promise<RolloutRecord> {
  const total = await resolveTargets(client, record, (n, canaries) => stageBoundaries(n, record.stages, canaries))
  if (total === 0) {
    const matched = await explainSelection(client, record)
    throw notFound('E_NO_TARGETS', `rollout ${record.name} targets no device now`, {hint: `matched: ${Object.entries(matched).map(([k, v]) => `${v} ${k}`).join(', ')}`, data: {matched}})
  }
  await client.query(`UPDATE rollouts SET state = 'running', stage = 0, target_count = $2, started_at = now(), stage_started_at = now(), updated_at = now()
    WHERE name = $1`, [record.name, total])
  await logEvent(client, record.name, 'started', {targets: total})
  return readRollout(client, record.name)
}

export type RolloutCommand = 'start' | 'pause' | 'resume' | 'abort'

/** start | pause | resume | abort: a state change in one transaction; the controller acts on it. */
export async function commandRollout(db: Database, name: string, command: RolloutCommand, options: {rollback?: boolean; reason?: string} = {}): Promise<RolloutRecord> {
  return withTransaction(db.pool, db.url, async (client) => {
    const record = await readRollout(client, name, true)
    const next = commandTransition(record.state, command, record.paused_from ?? undefined)
    if (!next) {
      throw conflict('E_ROLLOUT_STATE', `cannot ${command} rollout ${name}: it is ${record.state}`, {
        hint: FINAL_ROLLOUT_STATES.includes(record.state) ? 'it has finished; create a new rollout' : `see \`iotctl rollout status ${name}\``,
      })
    }
    if (command === 'start') return startInTransaction(client, record)
    // An abort with --rollback is `rolled-back`, as when the controller aborts a rollout created with --rollback.
    const state = command === 'abort' && options.rollback ? 'rolled-back' : next
    if (command === 'abort') await revertDesired(client, record)
    await client.query(`UPDATE rollouts SET state = $2, paused_from = $3, reason = COALESCE($4, reason), rollback = rollback OR $5,
      finished_at = CASE WHEN $2 IN ('aborted', 'rolled-back') THEN now() ELSE finished_at END, updated_at = now() WHERE name = $1`,
    [name, state, command === 'pause' ? record.state : null, command === 'abort' ? (options.reason ?? 'aborted by operator') : null, Boolean(options.rollback)])
    await logEvent(client, name, command, {from: record.state, to: state, ...(options.rollback ? {rollback: true} : {})})
    return readRollout(client, name)
  })
}

export async function listRollouts(db: Database): Promise<RolloutRecord[]> {
  return (await db.pool.query<RolloutRecord>(`SELECT ${ROLLOUT_COLUMNS} FROM rollouts r JOIN firmware f USING (firmware_id) ORDER BY r.created_at DESC`)).rows
}

export async function getRollout(db: Database, name: string): Promise<RolloutRecord> {
  const rows = (await db.pool.query<RolloutRecord>(`SELECT ${ROLLOUT_COLUMNS} FROM rollouts r JOIN firmware f USING (firmware_id) WHERE r.name = $1`, [name])).rows
  if (rows.length === 0) throw rolloutNotFound(name)
  return rows[0]!
}

export const isFinal = (state: RolloutState) => FINAL_ROLLOUT_STATES.includes(state)
