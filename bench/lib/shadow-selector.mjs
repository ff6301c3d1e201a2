// Part (b) of the shadow benchmark: `shadow set --selector` for N devices. Two separate figures:
// the bulk set itself (setDesiredBySelector from dist/lib/shadow: one transaction), and how long
// until the sync service (started by startDevBroker, in this process) has published every delta
// (services.shadow.stats.deltas; no device needs to be connected: the deltas are retained).
import {join} from 'node:path'
import {runCli} from './proc.mjs'
import {now} from './shadow-probe.mjs'
import {fmtCount, fmtRate} from './stats.mjs'
import {poolLines} from './shadow-roundtrip.mjs'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const STALL_MS = 60_000
export const SELECTOR = 'site=bulk'

/** N devices labelled site=bulk (plus a rack label), straight into `devices`. */
export async function insertBulkDevices(pool, count) {
  const width = Math.max(6, String(count).length)
  await pool.query(`INSERT INTO devices (device_id, device_type, labels)
    SELECT 'bulk-' || lpad(g::text, ${width}, '0'), 'thermostat', jsonb_build_object('site', 'bulk', 'rack', 'r' || lpad((g % 40)::text, 2, '0'))
    FROM generate_series(1, $1) g`, [count])
  await pool.query('ANALYZE devices')
}

/** Wait until the service has published `count` more deltas than `before`; the trace gives the time of the last. */
async function waitForDeltas(services, trace, before, count) {
  let seen = services.shadow.stats.deltas - before
  let moved = now()
  while (seen < count) {
    await sleep(5)
    const s = services.shadow.stats.deltas - before
    if (s !== seen) {
      seen = s
      moved = now()
    } else if (now() - moved > STALL_MS) break
  }
  // stats.deltas counts a delta when its publish starts; the trace when the broker confirmed it.
  while (trace.data.deltas < seen && now() - moved < STALL_MS) await sleep(5)
  return {published: seen, first: trace.data.firstDelta, last: trace.data.lastDelta}
}

/**
 * One bulk set, timed: the call (API or CLI), then the deltas. ctx: {report, services, trace, cpu,
 * stackProbe, cliProbe, setDesiredBySelector, cliDb, count, profile}
 */
export async function selectorRun(ctx, {label, desired, viaCli, env, url}) {
  const {report, services, trace, cpu, stackProbe, cliProbe} = ctx
  trace.reset()
  stackProbe.reset()
  cliProbe?.reset()
  const before = services.shadow.stats.deltas
  const cpu0 = cpu.take()
  if (ctx.profileDir) await ctx.profileStart()
  const t0 = now()
  let result
  let cliMs
  if (viaCli) {
    const args = ['shadow', 'set', '--selector', SELECTOR, ...Object.entries(desired).map(([k, v]) => `${k}=${v}`), '--database-url', url, '-o', 'json']
    const r = await runCli(args, {env})
    cliMs = r.ms
    result = JSON.parse(r.stdout).result ?? JSON.parse(r.stdout)
  } else {
    result = await ctx.setDesiredBySelector(ctx.cliDb, {selector: SELECTOR}, desired)
  }
  const t1 = now()
  const cpu1 = cpu.take()
  const deltas = result.changed > 0 ? await waitForDeltas(services, trace, before, result.changed) : {published: 0, first: 0, last: 0}
  const cpu2 = cpu.take()
  let profile
  if (ctx.profileDir) {
    const file = join(ctx.profileDir, `selector-${label.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}-broker.cpuprofile`)
    profile = {summary: await ctx.profileStop(file), file}
  }
  const callMs = t1 - t0
  const lastMs = deltas.last ? deltas.last - t0 : NaN
  report.line(label, `matched ${fmtCount(result.matched)}, changed ${fmtCount(result.changed)}, unchanged ${fmtCount(result.unchanged)}`)
  report.line(viaCli ? '  the command (spawn → exit)' : '  setDesiredBySelector()', `${fmtCount(Math.round(viaCli ? cliMs : callMs))} ms` +
    (viaCli ? ' (node start-up, oclif, connect, the transaction, output)' : ' (one transaction, the COMMIT included)'))
  if (!viaCli && cliProbe) poolLines(report, 'its pool (the CLI side)', cliProbe.take(), callMs)
  report.line('  CPU during the set', cpu.line(cpu0, cpu1))
  if (!viaCli) {
    const used = cpu.parts(cpu0, cpu1)
    const pg = used.parts.PostgreSQL ?? 0
    const node = used.parts['broker process'] ?? 0
    report.line('  CPU spent on the set', `PostgreSQL ${fmtCount(Math.round(pg))} ms + the calling process ${fmtCount(Math.round(node))} ms (it also runs the idle broker) = ` +
      `${fmtCount(Math.round(pg + node))} ms: one transaction alternates between the two, so about this long even with the machine to itself`)
  }
  if (result.changed > 0) {
    const returned = viaCli ? 'the command exited' : 'the set returned'
    const rel = (ms) => `${fmtCount(Math.round(Math.abs(ms)))} ms ${ms < 0 ? 'before' : 'after'}`
    report.line('  deltas published', `${fmtCount(deltas.published)} of ${fmtCount(result.changed)}: first ${rel(deltas.first - t1)} ${returned}, ` +
      `last ${rel(deltas.last - t1)} it (${fmtCount(Math.round(lastMs))} ms after the call began); ` +
      `${fmtRate(deltas.published / ((deltas.last - deltas.first) / 1000 || 1))} deltas/s while publishing`)
    report.line('  sync service', `${fmtCount(trace.data.notifyCount)} NOTIFYs (${fmtCount(trace.data.notifyIds)} ids) seen by the 2nd listener; ` +
      `Σ broker.publish time ${fmtCount(Math.round(trace.data.publishMs))} ms`)
    poolLines(report, 'broker-process pool', stackProbe.take(), deltas.last - t1)
    report.line('  CPU while publishing', cpu.line(cpu1, cpu2))
  }
  if (profile) {
    report.line('  CPU profile, broker process', profile.summary.buckets.slice(0, 8).map((b) => `${b.name} ${Math.round(b.share * 100)} %`).join(', '))
    report.line('', `    top functions (self): ${profile.summary.functions.slice(0, 6).map((f) => `${f.name} ${Math.round(f.share * 100)} %`).join('; ')}`)
    report.line('  profile', profile.file)
  }
  return {result, callMs, cliMs, deltas, lastMs, deltasAfterSetMs: deltas.last ? deltas.last - t1 : NaN}
}

/**
 * EXPLAIN ANALYZE of one chunk of setDesiredForSelection's row-locking SELECT (same text as
 * dist/lib/shadow/store.js, cursor half-way through the ids), in a transaction rolled back.
 */
export async function explainChunk(pool, deviceSelectionSql, count, chunk = 2000) {
  const params = []
  const where = deviceSelectionSql({selector: SELECTOR, status: undefined}, params)
  const width = Math.max(6, String(count).length)
  const after = `bulk-${String(Math.floor(count / 2)).padStart(width, '0')}`
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const {rows} = await client.query(`EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) SELECT s.device_id, s.document FROM shadows s
         WHERE s.device_id IN (SELECT device_id FROM devices WHERE ${where} AND status <> 'deprovisioned') AND s.device_id > $${params.length + 1}
         ORDER BY s.device_id LIMIT ${chunk} FOR UPDATE`, [...params, after])
    return rows.map((r) => r['QUERY PLAN'])
  } finally {
    await client.query('ROLLBACK').catch(() => undefined)
    client.release()
  }
}
