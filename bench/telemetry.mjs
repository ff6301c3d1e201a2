// Telemetry query benchmark (issue 4): `telemetry query --every 1h --since 7d` for one device over a
// raw table of 20 million points (made with generate_series in PostgreSQL, rollups built with SQL
// from them). Goal: under 100 ms. Reports p50/p99 of the lib call (queryTelemetry from dist/) and of
// the whole CLI command, the plan, and the table sizes; then times one retention run over the data.
// Uses the built project (dist/): run `npm run build` first.
import {access, mkdtemp, rm} from 'node:fs/promises'
import os, {tmpdir} from 'node:os'
import {join} from 'node:path'
import {rmSync} from 'node:fs'
import {pathToFileURL} from 'node:url'
import {parseCount, UsageError} from './lib/options.mjs'
import {ROOT, runCli, runNode, useSnapshot} from './lib/proc.mjs'
import {Report, shellLine} from './lib/report.mjs'
import {openSession} from './lib/session.mjs'
import {fmtCount, fmtMs, summary} from './lib/stats.mjs'
import {describeSizes, deviceName, layout, loadSummary, loadTelemetry, tableSizes} from './lib/telemetry-data.mjs'

export const description = 'telemetry query --every 1h --since 7d for one device over 20M raw points; retention (needs npm run build)'
export const usage = `node bench/run.mjs telemetry [options]      (npm run bench -- telemetry [options])

  --points N    raw points generated (default 20,000,000; --quick 2,000,000)
  --devices N   devices, each with 2 metrics (default 100)
  --step S      seconds between points of a series (default 10: 20M points span about 11.6 days)
  --quick       smoke run: 10× fewer points, fewer iterations (not for publishing)
  --strict      exit 1 when a goal is missed
  --snapshot    run a copy of the build from a temporary directory (immune to a concurrent npm run build)

Starts one embedded PostgreSQL in a temporary directory and deletes it at the end.`

const GOAL_MS = 100

function resolveOptions(raw) {
  const quick = raw.quick === true
  return {
    quick, strict: raw.strict === true, snapshot: raw.snapshot === true,
    points: raw.points !== undefined ? parseCount(raw.points, 'points') : quick ? 2_000_000 : 20_000_000,
    devices: raw.devices !== undefined ? parseCount(raw.devices, 'devices') : 100,
    stepMs: (raw.step !== undefined ? parseCount(raw.step, 'step') : 10) * 1000,
    libRuns: quick ? 50 : 200,
    cliRuns: quick ? 5 : 20,
  }
}

async function loadDist(root) {
  const dist = (path) => import(pathToFileURL(join(root, 'dist', path)).href)
  try {
    await access(join(root, 'dist', 'commands', 'telemetry', 'query.js'))
  } catch {
    throw new UsageError('dist/ is missing or incomplete: run `npm run build` first')
  }
  const [embedded, pool, migrate, query, plan, retention] = await Promise.all([dist('lib/db/embedded.js'), dist('lib/db/pool.js'),
    dist('lib/db/migrate.js'), dist('lib/telemetry/query.js'), dist('lib/telemetry/query-plan.js'), dist('lib/telemetry/retention.js')])
  return {startEmbeddedPostgres: embedded.startEmbeddedPostgres, createPool: pool.createPool, migrate: migrate.migrate,
    queryTelemetry: query.queryTelemetry, querySql: query.querySql, planQuery: plan.planQuery, enforceRetention: retention.enforceRetention}
}

async function timeLib(dist, db, request, runs, check) {
  const times = []
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint()
    const {result} = await dist.queryTelemetry(db, request)
    times.push(Number(process.hrtime.bigint() - start) / 1e6)
    check(result)
  }
  return summary(times)
}

function childEnv(home) {
  const env = {...process.env, CI: 'true', NO_COLOR: '1', IOTCTL_HOME: home}
  for (const key of ['IOTCTL_DATABASE_URL', 'IOTCTL_CONTEXT', 'IOTCTL_DEBUG', 'IOTCTL_OUTPUT', 'NODE_ENV']) delete env[key]
  return env
}

async function measure({dist, session, report, options, url, pool, shape}) {
  const db = {pool, url}
  const least = Math.min(160, Math.floor((shape.last - shape.first) / 3_600_000) - 2) // hours with data in the last 7 days
  const device = deviceName(42 % options.devices)
  const request = {device, metric: 'temperature', since: '7d', every: '1h'}
  const check = (r) => {
    if (r.source !== 'telemetry_1h' || r.points.length < least || r.points.length > 169) throw new Error(`unexpected answer: ${r.points.length} points from ${r.source}`)
  }
  await timeLib(dist, db, request, 20, check) // warm-up: connections, plans, shared buffers
  const lib = await timeLib(dist, db, request, options.libRuns, check)
  const {text, values} = dist.querySql(dist.planQuery(request, Date.now()))
  const {rows} = await pool.query(`EXPLAIN (ANALYZE, BUFFERS) ${text}`, values)
  report.line('EXPLAIN (ANALYZE, BUFFERS) of the query:')
  for (const r of rows) report.line(`      ${r['QUERY PLAN']}`)
  report.command(`npm run bench -- telemetry${options.quick ? ' --quick' : ''}   (queryTelemetry() in-process, ${options.libRuns} calls after 20 warm-up)`)
  report.goal({id: 'a', what: `lib call queryTelemetry(--device ${device} --metric temperature --since 7d --every 1h), p50 / p99 of ${lib.n}`,
    measured: `${fmtMs(lib.p50, 2)} / ${fmtMs(lib.p99, 2)}`, target: `p50 < ${GOAL_MS} ms`, pass: lib.p50 < GOAL_MS})

  const env = childEnv(session.home)
  const args = ['telemetry', 'query', '--device', device, '--metric', 'temperature', '--since', '7d', '--every', '1h', '--database-url', url, '-o', 'json']
  const cliTimes = []
  for (let i = 0; i < options.cliRuns + 2; i++) {
    const r = await runCli(args, {env})
    if (r.code !== 0) throw new Error(`telemetry query exited ${r.code}: ${r.stderr.slice(-500)}`)
    check(JSON.parse(r.stdout).result)
    if (i >= 2) cliTimes.push(r.ms)
  }
  const cli = summary(cliTimes)
  const nodeTimes = []
  for (let i = 0; i < options.cliRuns; i++) nodeTimes.push((await runNode(['-e', '0'], {env})).ms)
  const node = summary(nodeTimes)
  report.command(`${shellLine(['node', 'bin/run.js', ...args.slice(0, -4)])} --database-url "$DATABASE_URL" -o json   (${options.cliRuns} runs after 2 warm-up)`)
  report.goal({id: 'b', what: `whole command \`iotctl telemetry query … --since 7d --every 1h -o json\`, p50 / p99 of ${cli.n}`,
    measured: `${fmtMs(cli.p50, 0)} / ${fmtMs(cli.p99, 0)} (\`node -e 0\` alone: p50 ${fmtMs(node.p50, 0)})`, target: `p50 < ${GOAL_MS} ms`, pass: cli.p50 < GOAL_MS})

  // Information: other shapes over the same data.
  const shapes = [
    ['fleet: --selector site=berlin (half the devices) --since 7d --every 1h --agg avg', {selector: 'site=berlin', metric: 'temperature', since: '7d', every: '1h'}],
    ['one device, raw points --since 24h', {device, metric: 'temperature', since: '24h'}],
    ['one device --since 24h --every 5m (from telemetry_1m)', {device, metric: 'temperature', since: '24h', every: '5m'}],
  ]
  for (const [label, req] of shapes) {
    const s = await timeLib(dist, db, req, Math.max(5, options.libRuns / 10), () => undefined)
    report.goal({id: 'info', what: `lib call, ${label}, p50 / p99 of ${s.n}`, measured: `${fmtMs(s.p50, 2)} / ${fmtMs(s.p99, 2)}`, target: null, pass: null})
  }
}

async function retention({dist, report, url, pool}) {
  const start = process.hrtime.bigint()
  const run = await dist.enforceRetention({pool, url}, Date.now())
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  const again = await dist.enforceRetention({pool, url}, Date.now())
  const byTier = Object.entries(run.dropped.reduce((acc, d) => ({...acc, [d.tier]: (acc[d.tier] ?? 0) + 1}), {})).map(([t, n]) => `${t} ${n}`).join(', ')
  report.goal({id: 'c', what: 'enforceRetention (defaults raw=7d 1m=30d 1h=365d) over the loaded data', target: null, pass: null,
    measured: `dropped ${run.dropped.length} partitions (${byTier || 'none'}) in ${fmtMs(ms, 0)}; a second run dropped ${again.dropped.length}`})
  report.line('sizes after retention', describeSizes(await tableSizes(pool)))
}

export async function run(raw) {
  let options
  let dist
  let appDir
  try {
    options = resolveOptions(raw)
    if (options.snapshot) {
      appDir = await mkdtemp(join(tmpdir(), 'iotctl-bench-app-'))
      process.once('exit', () => rmSync(appDir, {recursive: true, force: true}))
      await useSnapshot(appDir)
    }
    dist = await loadDist(appDir ?? ROOT)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`${error.message}\n\n${usage}\n`)
    return 2
  }
  const report = new Report()
  const session = await openSession({dist})
  const name = 'bench_telemetry'
  let pool
  try {
    const url = await session.createDatabase(name, {synchronous_commit: 'off'})
    pool = await dist.createPool(url, {max: 2})
    await dist.migrate(pool, url)
    const shape = layout({points: options.points, devices: options.devices, stepMs: options.stepMs, end: Date.now()})
    report.heading(`telemetry query over ${fmtCount(shape.total)} raw points${options.quick ? ' (QUICK smoke run, not for publishing)' : ''}`)
    report.line('machine', `${os.availableParallelism()} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, PostgreSQL ${session.version}`)
    report.line('data', `${options.devices} devices × 2 metrics, a point every ${options.stepMs / 1000} s, ${shape.spanDays} days ending now (${new Date(shape.last).toISOString()})`)
    const times = await loadTelemetry(pool, {devices: options.devices, stepMs: options.stepMs, ...shape})
    report.line('load', `${fmtCount(times.rows)} raw points; ${loadSummary(times)}; rollups checked: Σcount(1d) = raw rows`)
    report.line('table sizes', describeSizes(await tableSizes(pool)))
    await measure({dist, session, report, options, url, pool, shape})
    await retention({dist, report, url, pool})
    const misses = report.rows.filter((r) => r.pass === false).length
    report.heading('summary (Markdown)')
    process.stdout.write(`\n${report.markdownTable()}\n\nCommand: \`npm run bench -- telemetry ${process.argv.slice(3).join(' ')}\`. Load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}.\n`)
    return options.strict && misses > 0 ? 1 : 0
  } catch (error) {
    if (session.interrupted) return 130
    throw error
  } finally {
    await pool?.end().catch(() => undefined)
    await session.dropDatabase(name).catch(() => undefined)
    await session.close()
    if (appDir) await rm(appDir, {recursive: true, force: true})
  }
}
