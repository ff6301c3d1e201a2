// (b) `devices list --selector 'site=berlin,type=thermostat' --limit 100` over a large fleet:
// (i) the query through the project's listDevices() in-process, (ii) the whole CLI command.
import {fileURLToPath, pathToFileURL} from 'node:url'
import {CITIES, deviceId, idWidth, loadFleetSql} from './fleet-data.mjs'
import {getAppRoot, runCli, runNode} from './proc.mjs'
import {shellLine} from './report.mjs'
import {fmtCount, fmtMiB, fmtMs, fmtS, median, msSince, summary} from './stats.mjs'

export const QUERY_GOAL_MS = 50
export const COMMAND_GOAL_MS = 300
const SELECTOR = 'site=berlin,type=thermostat'
const PHASES_SCRIPT = fileURLToPath(new URL('./list-phases.mjs', import.meta.url))
const LIMIT = 100

/** A Database whose pool records the SQL text and parameters listDevices sends. */
function recordingDb(db, seen) {
  return {
    url: db.url,
    pool: {
      connect: async () => {
        const client = await db.pool.connect()
        return {
          query: (text, values) => {
            seen.push({text, values})
            return client.query(text, values)
          },
          release: (error) => client.release(error),
        }
      },
    },
  }
}

async function explain(db, dist, options) {
  const seen = []
  await dist.listDevices(recordingDb(db, seen), options)
  const {text, values} = seen.at(-1)
  const {rows} = await db.pool.query(`EXPLAIN (ANALYZE, BUFFERS) ${text}`, values)
  return {text, values, plan: rows.map((r) => r['QUERY PLAN'])}
}

async function timeQueries(db, dist, iterations, optionsFor) {
  const times = []
  for (let i = 0; i < iterations; i++) {
    const options = optionsFor(i)
    const start = process.hrtime.bigint()
    const page = await dist.listDevices(db, options)
    times.push(msSince(start))
    if (page.items.length !== LIMIT) throw new Error(`listDevices returned ${page.items.length} devices, expected ${LIMIT}`)
  }
  return summary(times)
}

function checkPage(stdout) {
  const {result} = JSON.parse(stdout)
  const bad = result.items.filter((d) => d.labels.site !== 'berlin' || d.device_type !== 'thermostat')
  if (result.items.length !== LIMIT || bad.length > 0) throw new Error(`devices list printed ${result.items.length} items, ${bad.length} not matching ${SELECTOR}`)
}

async function load(pool, url, dist, count, report) {
  await dist.migrate(pool, url)
  let start = process.hrtime.bigint()
  await loadFleetSql(pool, count, dist.firmwareKey, {onProgress: (n) => process.stderr.write(`\r  loading devices: ${fmtCount(n)} / ${fmtCount(count)}`)})
  process.stderr.write('\n')
  const loadMs = msSince(start)
  start = process.hrtime.bigint()
  await pool.query('VACUUM (ANALYZE) devices')
  const analyzeMs = msSince(start)
  const {rows: [c]} = await pool.query(`SELECT count(*)::int AS total,
      count(*) FILTER (WHERE labels @> '{"site":"berlin"}')::int AS berlin,
      count(*) FILTER (WHERE device_type = 'thermostat')::int AS thermostat,
      count(*) FILTER (WHERE labels @> '{"site":"berlin"}' AND device_type = 'thermostat')::int AS both,
      pg_size_pretty(pg_total_relation_size('devices')) AS size FROM devices`)
  report.line('loaded (INSERT … SELECT)', `${fmtCount(c.total)} devices in ${fmtS(loadMs)} (${fmtCount(Math.floor((count / loadMs) * 1000))} rows/s), VACUUM ANALYZE ${fmtS(analyzeMs)}, table+indexes ${c.size}`)
  report.line('selectivity', `site=berlin ${fmtCount(c.berlin)} (${((100 * c.berlin) / c.total).toFixed(1)}%), type=thermostat ${fmtCount(c.thermostat)} (${((100 * c.thermostat) / c.total).toFixed(1)}%), both ${fmtCount(c.both)} (${((100 * c.both) / c.total).toFixed(1)}%); ${CITIES.length} sites`)
}

/** `Limit → Index Scan using devices_pkey on devices`: the plan's nodes, top down. */
export function planShape(plan) {
  const nodes = []
  for (const line of plan) {
    const m = /^\s*(?:->\s+)?([A-Z][A-Za-z ]*?(?: using \S+)?(?: on \S+)?)\s+\(cost=/.exec(line)
    if (m) nodes.push(m[1])
  }
  return nodes.join(' → ')
}

function printPlan(report, title, {text, values, plan}) {
  report.line(`EXPLAIN (ANALYZE, BUFFERS), ${title}: ${planShape(plan)}`)
  for (const line of plan) report.line(`      ${line}`)
  report.line(`      -- SQL: ${text.replace(/\s+/g, ' ')}`)
  report.line(`      -- params: ${JSON.stringify(values)}`)
}

const PHASES = [
  ['boot', 'node boot'], ['importCommand', 'import command modules'], ['importPg', 'import pg'],
  ['connect', 'connect (TCP + SCRAM + backend)'], ['schemaCheck', 'migration check'], ['query', 'query'],
  ['render', 'render JSON'], ['poolEnd', 'pool.end'],
]

/** Where the command's time goes: bench/lib/list-phases.mjs in fresh processes, medians. */
async function commandPhases(url, runs, env) {
  const samples = []
  for (let i = 0; i < runs; i++) {
    const r = await runNode([PHASES_SCRIPT, url, SELECTOR, String(LIMIT), pathToFileURL(`${getAppRoot()}/`).href], {env})
    if (r.code !== 0) throw new Error(`list-phases exited ${r.code}: ${r.stderr.slice(-500)}`)
    samples.push(JSON.parse(r.stdout))
  }
  return Object.fromEntries(PHASES.map(([key]) => [key, median(samples.map((s) => s[key]))]))
}

export async function benchList({session, dist, report, count, iterations, cliRuns, env}) {
  report.heading(`(b) devices list --selector '${SELECTOR}' --limit ${LIMIT} over ${fmtCount(count)} devices`)
  const name = 'bench_list'
  const url = await session.createDatabase(name)
  const pool = await dist.createPool(url, {max: 2})
  const out = {}
  try {
    await load(pool, url, dist, count, report)
    const db = {pool, url}
    const first = {selector: SELECTOR, limit: LIMIT}
    const width = idWidth(count)
    const lo = Math.floor(count * 0.45)
    const span = Math.max(1, Math.floor(count * 0.1))
    const middle = () => ({...first, after: dist.encodeCursor(deviceId(lo + Math.floor(Math.random() * span), width))})

    await timeQueries(db, dist, 20, () => first) // warm-up: connections, plans, shared buffers
    await timeQueries(db, dist, 20, middle)
    out.first = await timeQueries(db, dist, iterations, () => first)
    out.after = await timeQueries(db, dist, iterations, middle)
    printPlan(report, 'first page', await explain(db, dist, first))
    printPlan(report, '--after a cursor half-way', await explain(db, dist, middle()))
    report.command(`npm run bench -- registry --only list --devices ${count}   (listDevices() in-process, ${iterations} calls after 20 warm-up)`)
    for (const [key, label] of [['first', 'first page'], ['after', '--after cursor at 45–55% of the ids']]) {
      const s = out[key]
      report.goal({id: 'b-i', what: `list query (listDevices), ${label}, p50 / p99 of ${s.n}`,
        measured: `${fmtMs(s.p50, 2)} / ${fmtMs(s.p99, 2)}`, target: `p50 < ${QUERY_GOAL_MS} ms`, pass: s.p50 < QUERY_GOAL_MS})
    }

    // Not an issue goal: the same selector plus a firmware range, a shape the docs advertise.
    const ranged = {selector: `${SELECTOR},firmware<2.0.0`, limit: LIMIT}
    out.ranged = await timeQueries(db, dist, Math.max(5, Math.ceil(iterations / 10)), () => ranged)
    const rangedPlan = await explain(db, dist, ranged)
    printPlan(report, `--selector '${ranged.selector}'`, rangedPlan)
    report.goal({id: 'b-i', what: `not an issue goal: \`--selector '${ranged.selector}'\`, p50 / p99 of ${out.ranged.n}`,
      measured: `${fmtMs(out.ranged.p50, 2)} / ${fmtMs(out.ranged.p99, 2)}; plan ${planShape(rangedPlan.plan)}`, target: null, pass: null})

    const args = ['devices', 'list', '--selector', SELECTOR, '--limit', String(LIMIT), '--database-url', url, '-o', 'json']
    for (let i = 0; i < 2; i++) checkPage((await runCli(args, {env})).stdout)
    const times = []
    for (let i = 0; i < cliRuns; i++) times.push((await runCli(args, {env})).ms)
    out.cli = summary(times)
    const probes = []
    for (let i = 0; i < Math.max(3, Math.ceil(cliRuns / 2)); i++) {
      const probed = await runCli(args, {env, probe: {dir: session.dir}})
      checkPage(probed.stdout)
      probes.push(probed.probe ?? {})
    }
    out.cpuMs = median(probes.map((p) => p.cpuMs ?? NaN))
    out.rssKiB = Math.max(...probes.map((p) => p.maxRSSKiB ?? 0))
    report.line(`CLI CPU, peak RSS (${probes.length} runs)`, `CPU (user+sys) p50 ${fmtMs(out.cpuMs, 0)}, peak RSS ${out.rssKiB ? fmtMiB(out.rssKiB) : 'unknown'}`)
    report.command(`${shellLine(['node', 'bin/run.js', ...args.slice(0, -4)])} --database-url "$DATABASE_URL" -o json   (${cliRuns} runs after 2 warm-up)`)
    report.goal({id: 'b-ii', what: `\`devices list\` whole command, p50 / p99 of ${cliRuns}`,
      measured: `${fmtMs(out.cli.p50, 0)} / ${fmtMs(out.cli.p99, 0)} (CPU p50 ${fmtMs(out.cpuMs, 0)})`, target: `p50 < ${COMMAND_GOAL_MS} ms`, pass: out.cli.p50 < COMMAND_GOAL_MS})
    const phaseRuns = Math.max(3, Math.ceil(cliRuns / 2))
    out.phases = await commandPhases(url, phaseRuns, env)
    const text = PHASES.map(([key, label]) => `${label} ${fmtMs(out.phases[key], 0)}`).join(' · ')
    report.line(`steps, median of ${phaseRuns}`, text)
    report.line('', '(oclif\'s own start-up — config, manifest, routing — is not in these steps: see --version in (c))')
    report.command(`node bench/lib/list-phases.mjs "$DATABASE_URL" '${SELECTOR}' ${LIMIT}`)
    report.goal({id: 'b-ii', what: 'where `devices list` spends its time after oclif routes to it (median of fresh processes)', measured: text, target: null, pass: null})
  } finally {
    await pool.end()
    await session.dropDatabase(name)
  }
  return out
}
