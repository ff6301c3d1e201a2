// (a) `devices import` of N devices through the real CLI, into a fresh database per run.
// The in-database part is read from PostgreSQL's own statement log (log_min_duration_statement
// = 0 on the benchmark database only): server time of the INSERT batches plus the final COMMIT.
// A second series runs the same phases in-process (read, parse+validate, migrate, store) to
// show where the client-side time goes.
import {readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {writeImportCsv} from './fleet-data.mjs'
import {runCli} from './proc.mjs'
import {shellLine} from './report.mjs'
import {fmtCount, fmtMiB, fmtMs, fmtRate, fmtS, median, msSince} from './stats.mjs'

export const IMPORT_GOAL = 20_000 // devices per second

const DURATION = /duration: ([\d.]+) ms\s+(parse|bind|execute|statement)\b[^:]*: (.*)$/

/** Server-side milliseconds of the import transaction, from the statement log since `mark`. */
async function serverTime(log, mark, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let insertMs = 0
    let statements = 0
    let commitMs = null
    for (const line of log.since(mark)) {
      const m = DURATION.exec(line)
      if (!m) continue
      if (m[3].startsWith('INSERT INTO devices ')) {
        insertMs += Number(m[1])
        if (m[2] === 'execute') statements++
        commitMs = null // only a COMMIT after the last batch ends the import
      } else if (statements > 0 && /^COMMIT\b/i.test(m[3])) {
        commitMs = Number(m[1])
      }
    }
    if (commitMs !== null) return {ms: insertMs + commitMs, insertMs, commitMs, statements}
    if (Date.now() > deadline) return null // the log did not show the import (logging off?)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function cliRun({session, csv, count, env, run}) {
  const name = `bench_import_${run}`
  const url = await session.createDatabase(name, {log_min_duration_statement: 0, log_parameter_max_length: 0})
  try {
    const mark = session.log.mark()
    const result = await runCli(['devices', 'import', csv, '--database-url', url, '-o', 'json'], {env, probe: {dir: session.dir}})
    const envelope = JSON.parse(result.stdout)
    if (envelope.result?.inserted !== count) throw new Error(`import reported ${JSON.stringify(envelope.result)}, expected ${count} inserted`)
    return {ms: result.ms, server: await serverTime(session.log, mark), rssKiB: result.probe?.maxRSSKiB, cpuMs: result.probe?.cpuMs}
  } finally {
    await session.dropDatabase(name)
  }
}

async function phaseRun({session, dist, csv, count, run}) {
  const name = `bench_import_phases_${run}`
  const url = await session.createDatabase(name)
  const pool = await dist.createPool(url)
  try {
    const phases = {}
    let t = process.hrtime.bigint()
    const lap = (key) => {
      phases[key] = msSince(t)
      t = process.hrtime.bigint()
    }
    const text = await readFile(csv, 'utf8')
    lap('read')
    const rows = await dist.parseImport(text, 'csv')
    lap('parse')
    await dist.migrate(pool, url)
    lap('migrate')
    const result = await dist.importDevices({pool, url}, rows, 'fail')
    lap('store')
    if (result.inserted !== count) throw new Error(`importDevices inserted ${result.inserted}, expected ${count}`)
    return phases
  } finally {
    await pool.end()
    await session.dropDatabase(name)
  }
}

export async function benchImport({session, dist, report, count, runs, env}) {
  report.heading(`(a) devices import: ${fmtCount(count)} devices, ${runs} runs into fresh databases`)
  const csv = join(session.dir, `devices-${count}.csv`)
  let t = process.hrtime.bigint()
  await writeImportCsv(csv, count)
  report.line('CSV', `${csv} (${fmtMiB((await stat(csv)).size / 1024)}, written in ${fmtMs(msSince(t), 0)})`)

  const cli = []
  for (let run = 1; run <= runs; run++) {
    const r = await cliRun({session, csv, count, env, run})
    cli.push(r)
    const server = r.server ? `in database ${fmtS(r.server.ms)} (${r.server.statements} INSERT batches ${fmtS(r.server.insertMs)} + COMMIT ${fmtMs(r.server.commitMs)})` : 'in database: not found in the server log'
    report.line(`CLI run ${run}`, `${fmtS(r.ms)} wall, ${fmtRate((count / r.ms) * 1000)} devices/s; ${server}; CLI CPU ${r.cpuMs ? fmtS(r.cpuMs) : '?'}, peak RSS ${r.rssKiB ? fmtMiB(r.rssKiB) : '?'}`)
  }
  const phases = []
  for (let run = 1; run <= runs; run++) phases.push(await phaseRun({session, dist, csv, count, run}))
  const phase = (key) => median(phases.map((p) => p[key]))
  report.line('in-process phases (median)', `read ${fmtMs(phase('read'), 0)}, parse+validate ${fmtMs(phase('parse'), 0)}, migrate ${fmtMs(phase('migrate'), 0)}, store (importDevices) ${fmtMs(phase('store'), 0)}`)

  const wall = median(cli.map((r) => r.ms))
  const serverRuns = cli.filter((r) => r.server)
  const inDb = serverRuns.length ? median(serverRuns.map((r) => r.server.ms)) : null
  const rss = cli.map((r) => r.rssKiB).filter(Boolean)
  report.line('peak RSS of the CLI (max)', rss.length ? fmtMiB(Math.max(...rss)) : 'unknown')
  report.command(`${shellLine(['node', 'bin/run.js', 'devices', 'import', 'devices.csv'])} --database-url "$FRESH_DATABASE_URL" -o json   (CSV: ${shellLine(['npm', 'run', 'bench', '--', 'registry', '--only', 'import', '--import', String(count)])})`)

  const wallRate = (count / wall) * 1000
  report.goal({id: 'a', what: `\`devices import\` ${fmtCount(count)} devices, whole command (wall, median of ${runs})`,
    measured: `${fmtRate(wallRate)} devices/s (${fmtS(wall)})`, target: `≥ ${fmtCount(IMPORT_GOAL)} devices/s`, pass: wallRate >= IMPORT_GOAL})
  if (inDb !== null) {
    const dbRate = (count / inDb) * 1000
    report.goal({id: 'a', what: 'same, in-database part only (server time of INSERT batches + COMMIT, median)',
      measured: `${fmtRate(dbRate)} devices/s (${fmtS(inDb)})`, target: `≥ ${fmtCount(IMPORT_GOAL)} devices/s`, pass: dbRate >= IMPORT_GOAL})
  }
  const cpu = cli.every((r) => r.cpuMs) ? median(cli.map((r) => r.cpuMs)) : null
  const client = inDb === null ? null : median(serverRuns.map((r) => r.ms - r.server.ms))
  report.goal({id: 'a', what: 'where the time goes (medians)',
    measured: `CLI process CPU ${cpu === null ? '?' : fmtS(cpu)}; wall minus server time ${client === null ? '?' : fmtS(client)}` +
      ` · in-process phases: read ${fmtMs(phase('read'), 0)}, parse+validate ${fmtMs(phase('parse'), 0)}, migrate ${fmtMs(phase('migrate'), 0)}, importDevices ${fmtMs(phase('store'), 0)}`,
    target: null, pass: null})
  return {wall, inDb, cpu, phases: {read: phase('read'), parse: phase('parse'), migrate: phase('migrate'), store: phase('store')}}
}
