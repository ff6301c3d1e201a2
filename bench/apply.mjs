// Manifest benchmark (issue 8's goals), the whole command through bin/run.js:
//   (a) `apply -f` of a manifest with 10,000 devices (plus a group and its desired state) < 10 s
//   (b) re-apply, nothing changed < 3 s
//   (c) `diff -f` of the same files < 3 s
// Plus, in-process, what loading and validating the file costs (the part that grows with the file).
// Uses the built project (dist/): run `npm run build` first.
import {rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {parseCount, UsageError} from './lib/options.mjs'
import {ROOT, runNode} from './lib/proc.mjs'
import {Report} from './lib/report.mjs'
import {openSession} from './lib/session.mjs'
import {fmtCount, fmtMiB, fmtS, median, msSince} from './lib/stats.mjs'

export const description = 'manifests: apply / re-apply / diff of 10,000 devices (needs npm run build)'
export const usage = `node bench/run.mjs apply [options]      (npm run bench -- apply [options])

  --devices N   devices in the manifest (default 10,000)
  --runs N      runs of each measurement; apply runs each into a fresh database; the median is reported (default 3)
  --strict      exit 1 when any goal is missed

Starts one embedded PostgreSQL in a temporary directory and deletes it at the end.`

const dist = (path) => import(pathToFileURL(join(ROOT, 'dist', path)).href)

/** One file: N devices in two sites, a group of one site, desired state for that group. */
function manifest(count) {
  const docs = []
  for (let i = 0; i < count; i++) {
    const site = i % 2 === 0 ? 'berlin' : 'paris'
    docs.push(`apiVersion: iotctl/v1\nkind: Device\nmetadata:\n  name: bench-${String(i).padStart(5, '0')}\n  labels: {site: ${site}, tier: prod}\n` +
      `spec:\n  type: thermostat\n  owner: ${i % 100}\n  firmware: 2.4.0\n  metadata: {room: "r-${i % 50}"}\n`)
  }
  docs.push('apiVersion: iotctl/v1\nkind: DeviceGroup\nmetadata: {name: berlin}\nspec: {selector: site=berlin}\n')
  docs.push('apiVersion: iotctl/v1\nkind: DesiredState\nmetadata: {name: berlin-comfort}\nspec:\n  group: berlin\n  desired: {target_temperature: 21, mode: eco}\n')
  return docs.join('---\n')
}

/** Wall time, and the child's own CPU time (user + system, from child-probe.cjs): less affected by other load. */
async function timed(args, env, probeDir, expectCode = 0) {
  const r = await runNode(['bin/run.js', ...args], {env, probe: {dir: probeDir}})
  if (r.code !== expectCode) throw new Error(`\`iotctl ${args.join(' ')}\` exited ${r.code ?? r.signal} (expected ${expectCode}):\n${r.stderr.slice(-2000)}`)
  return r
}

export async function run(raw) {
  let options
  try {
    options = {devices: raw.devices !== undefined ? parseCount(raw.devices, 'devices') : 10_000, runs: raw.runs !== undefined ? parseCount(raw.runs, 'runs') : 3, strict: raw.strict === true}
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`${error.message}\n\n${usage}\n`)
    return 2
  }
  const [embedded, pool, manifestLib] = await Promise.all([dist('lib/db/embedded.js'), dist('lib/db/pool.js'), dist('lib/manifest/index.js')])
  const session = await openSession({dist: {startEmbeddedPostgres: embedded.startEmbeddedPostgres, createPool: pool.createPool}})
  const report = new Report()
  try {
    const file = join(session.dir, 'fleet.yaml')
    const text = manifest(options.devices)
    await writeFile(file, text)
    report.heading(`iotctl manifest benchmark: ${fmtCount(options.devices)} devices, ${(text.length / 1024 / 1024).toFixed(1)} MiB of YAML, ${options.runs} run(s) each`)
    report.line(`  ${os.availableParallelism()} CPUs (${os.cpus()[0]?.model?.trim()}), node ${process.version}, PostgreSQL ${session.version}`)

    const load = []
    for (let i = 0; i < options.runs; i++) {
      const start = process.hrtime.bigint()
      await manifestLib.loadObjects({files: [file], recursive: false, readStdin: () => Promise.reject(new Error('no stdin'))})
      load.push(msSince(start))
    }
    report.goal({id: 'a0', what: 'load + validate (in process: YAML parse with positions, zod)', measured: fmtS(median(load)), pass: null})

    const apply = []
    const reapply = []
    const diff = []
    const reapplyCold = []
    const diffCold = []
    const dropCache = () => rm(join(session.home, 'cache'), {recursive: true, force: true})
    for (let i = 0; i < options.runs; i++) {
      const url = await session.createDatabase(`bench_apply_${i}`)
      const env = {...process.env, CI: 'true', NO_COLOR: '1', IOTCTL_HOME: session.home, IOTCTL_DATABASE_URL: url}
      delete env.IOTCTL_CONTEXT
      await timed(['get', 'devicegroup'], env, session.dir) // migrates the new database: not part of the measurement
      await dropCache()
      const first = await timed(['apply', '-f', file], env, session.dir)
      if (!first.stdout.includes('desiredstate/berlin-comfort created')) throw new Error(`unexpected apply output:\n${first.stdout.slice(-500)}`)
      apply.push(first)
      const again = await timed(['apply', '-f', file], env, session.dir)
      if (!again.stderr.startsWith(`Plan (apply): 0 to create, 0 to configure, 0 to delete, ${options.devices + 2} unchanged`)) throw new Error(`re-apply changed something:\n${again.stderr.slice(0, 500)}`)
      reapply.push(again)
      diff.push(await timed(['diff', '-f', file], env, session.dir, 0))
      await dropCache() // a fresh runner (CI) has no parse cache: measure that too
      reapplyCold.push(await timed(['apply', '-f', file], env, session.dir))
      await dropCache()
      diffCold.push(await timed(['diff', '-f', file], env, session.dir, 0))
      await session.dropDatabase(`bench_apply_${i}`)
    }
    const goal = (id, what, runs, limitMs) => {
      const wall = runs.map((r) => r.ms)
      const cpu = runs.map((r) => r.probe?.cpuMs ?? NaN)
      report.goal({id, what, measured: `${fmtS(median(wall))} (runs: ${wall.map((v) => fmtS(v)).join(', ')}; CPU ${fmtS(median(cpu))}, peak RSS ${fmtMiB(median(runs.map((r) => r.probe?.maxRSSKiB ?? NaN)))})`,
        target: `< ${limitMs / 1000} s`, pass: median(wall) < limitMs})
    }
    goal('a', `apply -f of ${fmtCount(options.devices)} devices + group desired state (fresh database)`, apply, 10_000)
    goal('b', 're-apply, nothing changed (parse cache warm: same $IOTCTL_HOME)', reapply, 3_000)
    goal('b2', 're-apply, nothing changed, no parse cache (fresh $IOTCTL_HOME)', reapplyCold, 3_000)
    goal('c', 'diff -f, nothing changed (parse cache warm)', diff, 3_000)
    goal('c2', 'diff -f, nothing changed, no parse cache', diffCold, 3_000)
    report.command(`npm run bench -- apply${options.devices === 10_000 ? '' : ` --devices ${options.devices}`}${options.runs === 3 ? '' : ` --runs ${options.runs}`}`)
    report.heading('summary (Markdown)')
    process.stdout.write(`\n${report.markdownTable()}\n\n`)
    process.stdout.write(`Load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}.\n`)
    const misses = report.rows.filter((r) => r.pass === false).length
    return options.strict && misses > 0 ? 1 : 0
  } finally {
    await session.close()
  }
}
