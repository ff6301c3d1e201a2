import {spawn, type ChildProcess} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {FleetSummary} from '../../src/lib/simulator/index.js'
import {BIN, type CliResult} from '../helpers/cli.js'
import {boundCli, describeRun, expectJsonError, expectOk, expectPlainError, mapLimit, type Cli} from '../helpers/e2e-expect.js'

type Summary = FleetSummary & {registered: number}

/** A long-running CLI child (simulate, status --watch) whose output is collected; `done` is its result. */
interface Child {
  proc: ChildProcess
  out: () => string
  err: () => string
  done: Promise<CliResult>
}

/**
 * Staged rollouts through the CLI against the real dev stack (`dev up --detach`: embedded PostgreSQL,
 * broker, ingest, shadow sync, rollout controller, HTTPS artifact server) with `iotctl simulate`
 * children as the devices. afterAll stops every child and runs `dev down`.
 */
describe('iotctl rollout against a detached dev stack', {timeout: 150_000}, () => {
  let cli: Cli
  let home: string
  let env: Record<string, string | undefined>
  const children: Child[] = []
  const fleets = new Map<string, Child>()

  const start = (args: string[]): Child => {
    const childEnv = Object.fromEntries(Object.entries({...process.env, ...env, CI: 'true', NO_COLOR: '1'}).filter(([, v]) => v !== undefined)) as NodeJS.ProcessEnv
    const proc = spawn(process.execPath, [BIN, ...args], {env: childEnv, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    proc.stdout!.on('data', (d) => (stdout += d))
    proc.stderr!.on('data', (d) => (stderr += d))
    const done = new Promise<CliResult>((resolve) => proc.on('close', (code) => resolve({code, stdout, stderr, json: () => JSON.parse(stdout)})))
    const child = {proc, out: () => stdout, err: () => stderr, done}
    children.push(child)
    return child
  }
  /** `simulate` until SIGINT (or the --duration safety net); returns its summary. */
  const simulate = (prefix: string, count: number, type: string, extra: string[] = []) =>
    start(['simulate', '--count', String(count), '--prefix', prefix, '--register', '--type', type, '--firmware', '1.0.0',
      '--interval', '30s', '--duration', '240s', ...extra, '-o', 'json'])
  const stopSimulation = async (c: Child): Promise<Summary> => {
    c.proc.kill('SIGINT')
    const r = await c.done
    return expectOk<Summary>(r)
  }
  const devices = async (type: string) =>
    expectOk<{items: Array<{device_id: string; status: string; last_seen_at: string | null; firmware_version: string | null}>}>(await cli(['devices', 'list', '--type', type, '--limit', '1000', '-o', 'json'])).items
  /** Until all `count` devices of `type` are registered and online (status active, seen: their status reached the ingest). */
  const online = async (type: string, count: number) => {
    await expect.poll(async () => (await devices(type)).filter((d) => d.status === 'active' && d.last_seen_at !== null).length, {timeout: 60_000, interval: 1000}).toBe(count)
  }
  const upload = async (type: string, version: string) => {
    const file = join(home, `${type}-${version}.bin`)
    await writeFile(file, randomBytes(150_000))
    return expectOk(await cli(['firmware', 'upload', file, '--version', version, '--device-type', type, '-o', 'json']))
  }
  const rollouts = async () => expectOk<Array<{name: string; state: string}>>(await cli(['rollout', 'list', '-o', 'json']))
  const status = async (name: string) => expectOk(await cli(['rollout', 'status', name, '-o', 'json']))

  beforeAll(async () => {
    ;({cli, home, env} = await boundCli())
    const up = await cli(['dev', 'up', '--detach', '--mqtt-port', '0', '--service-port', '0', '-o', 'json'], {timeoutMs: 110_000})
    expect(up.code, describeRun(up)).toBe(0)
    // The fleets connect while the first tests run.
    fleets.set('ok', simulate('ok-', 30, 'rt-ok'))
    fleets.set('bad', simulate('bad-', 20, 'rt-bad', ['--ota-failure-rate', '1']))
  }, 120_000)
  afterAll(async () => {
    for (const c of children) c.proc.kill('SIGKILL')
    await Promise.all(children.map((c) => c.done))
    const down = await cli(['dev', 'down'], {timeoutMs: 60_000})
    if (down.code !== 0) process.stderr.write(`dev down in afterAll failed:\n${describeRun(down)}\n`)
    else await rm(home, {recursive: true, force: true})
  }, 90_000)

  it('rollout create refuses bad input with the right exit code and records nothing', async () => {
    await upload('rt-input', '2.0.0')
    expectOk(await cli(['devices', 'register', 'in-1', '--type', 'rt-input', '--firmware', '1.0.0', '--label', 'site=berlin', '-o', 'json']))
    const first = expectOk(await cli(['rollout', 'create', 'in-dup', '--firmware', 'rt-input@2.0.0', '-o', 'json']))
    expect(first).toMatchObject({name: 'in-dup', state: 'pending', device_type: 'rt-input', version: '2.0.0'})
    const before = await rollouts()
    expect(before.map((r) => r.name)).toEqual(['in-dup'])

    const create = (name: string, ...args: string[]) => cli(['rollout', 'create', name, ...args, '-o', 'json'])
    const unknown = expectJsonError(await create('in-a', '--firmware', 'rt-input@9.9.9'), 3, 'E_FIRMWARE_NOT_FOUND')
    expect(`${unknown.message} ${unknown.hint}`).toMatch(/rt-input@9\.9\.9/)
    expect(unknown.hint).toMatch(/2\.0\.0/) // the versions that are known
    const empty = expectJsonError(await create('in-a', '--firmware', 'rt-input@2.0.0', '--selector', 'site=paris'), 3, 'E_NO_TARGETS')
    expect(empty.hint).toMatch(/matched: /)
    expect(empty.hint).toMatch(/\b1 /) // one device of the type exists…
    expect(empty.hint).toMatch(/\b0 /) // …and none matched the selector

    const invalid: Array<[string[], string]> = [
      [['--stages', '10,5'], 'E_STAGES'], [['--stages', '10,50'], 'E_STAGES'], [['--max-failure-rate', '150%'], 'E_PERCENT'],
      [['--soak', '5x'], 'E_DURATION'], [['--rate', 'fast'], 'E_RATE'], [['--health', 'temperature!!80'], 'E_HEALTH'],
    ]
    // Two at a time: each is a CLI process, and two cores.
    await mapLimit(invalid, 2, async ([args, code]) => {
      const r = await create('in-b', '--firmware', 'rt-input@2.0.0', ...args)
      const err = expectJsonError(r, 4, code)
      expect(err.hint, describeRun(r)).toBeTruthy()
    })
    const dup = expectJsonError(await create('in-dup', '--firmware', 'rt-input@2.0.0'), 5, 'E_ROLLOUT_EXISTS')
    expect(dup.message).toMatch(/in-dup/)
    expectPlainError(await cli(['rollout', 'create', 'in-dup', '--firmware', 'rt-input@2.0.0']), 5)
    expect(await rollouts()).toEqual(before)
    expectJsonError(await cli(['rollout', 'status', 'nope', '-o', 'json']), 3, 'E_ROLLOUT_NOT_FOUND')
  })

  it('30 simulated devices, --stages 10,100 --soak 1s --start: wait → 0, all succeeded, the registry shows the new version; --watch prints JSON lines', async () => {
    const sim = fleets.get('ok')!
    await online('rt-ok', 30)
    await upload('rt-ok', '2.0.0')
    const created = expectOk(await cli(['rollout', 'create', 'ok-200', '--firmware', 'rt-ok@2.0.0', '--stages', '10,100', '--soak', '1s', '--start', '-o', 'json']))
    expect(created).toMatchObject({name: 'ok-200', state: 'running', target_count: 30, stages: [10, 100]})
    const watch = start(['rollout', 'status', 'ok-200', '--watch', '-o', 'json'])

    const wait = await cli(['rollout', 'wait', 'ok-200', '--timeout', '2m', '-o', 'json'], {timeoutMs: 130_000})
    const waited = expectOk(wait)
    expect(waited).toMatchObject({name: 'ok-200', state: 'completed'})

    const s = await status('ok-200')
    expect(s).toMatchObject({state: 'completed', firmware: 'rt-ok@2.0.0', targets: 30, failure_rate: 0, stage: 2})
    expect(s.counts.succeeded, JSON.stringify(s.counts)).toBe(30)
    expect(s.per_stage.map((st: {size: number}) => st.size)).toEqual([3, 27])
    expect(s.finished_at).not.toBeNull()
    await expect.poll(async () => (await devices('rt-ok')).map((d) => d.firmware_version), {timeout: 15_000, interval: 1000})
      .toEqual(Array.from({length: 30}, () => '2.0.0'))

    // --watch -o json: one JSON object per line, each parseable, the last one the final state; it exits 0 by itself.
    const watched = await watch.done
    expect(watched.code, describeRun(watched)).toBe(0)
    const lines = watched.stdout.trimEnd().split('\n')
    expect(lines.length, watched.stdout).toBeGreaterThanOrEqual(2)
    const parsed = lines.map((line) => JSON.parse(line) as {name: string; state: string; counts: {succeeded: number}})
    for (const p of parsed) expect(p.name).toBe('ok-200')
    expect(parsed.at(-1)).toMatchObject({state: 'completed', counts: {succeeded: 30}})
    for (const p of parsed.slice(0, -1)) expect(p.state).not.toBe('completed')
    expect(watched.stderr).not.toMatch(/\n\s+at /)

    // The devices: every one installed exactly once, nothing refused.
    const summary = await stopSimulation(sim)
    expect(summary).toMatchObject({devices: 30, ota_installs: 30, ota_failures: 0, ota_refusals: 0, errors: 0})

    // The human forms.
    const table = await cli(['rollout', 'status', 'ok-200'])
    expect(table.code, describeRun(table)).toBe(0)
    expect(table.stdout).toMatch(/^NAME\s+STATE\s+STAGE\s+SUCCEEDED/)
    expect(table.stdout).toMatch(/^ok-200\s+completed\s+2\/2 \(100%\)\s+30\s/m)
    expect(table.stderr).toMatch(/rollout ok-200: rt-ok@2\.0\.0, completed/)
    // Finished rollouts refuse commands: 5.
    const paused = expectJsonError(await cli(['rollout', 'pause', 'ok-200', '-o', 'json']), 5, 'E_ROLLOUT_STATE')
    expect(paused.message).toMatch(/completed/)
  })

  it('every install fails (simulate --ota-failure-rate 1): the rollout aborts and wait → 7', async () => {
    const sim = fleets.get('bad')!
    await online('rt-bad', 20)
    await upload('rt-bad', '2.0.0')
    expectOk(await cli(['rollout', 'create', 'bad-200', '--firmware', 'rt-bad@2.0.0', '--stages', '25,100', '--soak', '1s',
      '--min-decided', '3', '--max-failure-rate', '20%', '--start', '-o', 'json']))
    const r = await cli(['rollout', 'wait', 'bad-200', '--timeout', '2m', '-o', 'json'], {timeoutMs: 130_000})
    const err = expectJsonError(r, 7, 'E_ROLLOUT_ABORTED')
    expect(err.message).toMatch(/failure rate/)
    const s = await status('bad-200')
    expect(s).toMatchObject({state: 'aborted', stage: 1})
    expect(s.reason).toMatch(/failure rate/)
    expect(s.counts.succeeded).toBe(0)
    expect(s.counts.failed).toBeGreaterThanOrEqual(3)
    // Aborted in the canary stage: nothing beyond its 5 devices was dispatched.
    expect(s.counts.pending).toBeGreaterThanOrEqual(15)
    expect((await devices('rt-bad')).every((d) => d.firmware_version === '1.0.0')).toBe(true)
    const summary = await stopSimulation(sim)
    expect(summary.ota_installs).toBe(0)
    expect(summary.ota_failures).toBeGreaterThanOrEqual(3)
    expect(summary.ota_failures).toBeLessThanOrEqual(5)
  })

  it('offline devices: wait --timeout 2s → 8; pause / resume change the state; abort --rollback → rolled-back, wait → 7', async () => {
    for (const id of ['off-1', 'off-2']) expectOk(await cli(['devices', 'register', id, '--type', 'rt-off', '--firmware', '1.0.0', '-o', 'json']))
    await upload('rt-off', '1.1.0')
    expectOk(await cli(['rollout', 'create', 'off-110', '--firmware', 'rt-off@1.1.0', '--stages', '100', '--soak', '1s', '--start', '-o', 'json']))
    const t0 = Date.now()
    const timeout = expectJsonError(await cli(['rollout', 'wait', 'off-110', '--timeout', '2s', '-o', 'json']), 8, 'E_ROLLOUT_WAIT_TIMEOUT')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000)
    expect(timeout.message).toMatch(/off-110 is still running/)
    expect(timeout.hint).toMatch(/--watch/)
    // Without -o json: progress lines, then Error:/Next: on stderr, nothing on stdout.
    expectPlainError(await cli(['rollout', 'wait', 'off-110', '--timeout', '1s']), 8, {atStart: false})

    const paused = expectOk(await cli(['rollout', 'pause', 'off-110', '-o', 'json']))
    expect(paused.state).toBe('paused')
    expect((await status('off-110')).state).toBe('paused')
    expectJsonError(await cli(['rollout', 'pause', 'off-110', '-o', 'json']), 5, 'E_ROLLOUT_STATE')
    const resumed = expectOk(await cli(['rollout', 'resume', 'off-110', '-o', 'json']))
    expect(resumed.state).toBe('running')
    expect((await status('off-110')).state).toBe('running')

    const aborted = expectOk(await cli(['rollout', 'abort', 'off-110', '--rollback', '--reason', 'e2e says stop', '-o', 'json']))
    expect(aborted).toMatchObject({name: 'off-110', state: 'rolled-back', reason: 'e2e says stop', rollback: true})
    const after = await status('off-110')
    expect(after).toMatchObject({state: 'rolled-back', reason: 'e2e says stop'})
    expect(after.finished_at).not.toBeNull()
    const err = expectJsonError(await cli(['rollout', 'wait', 'off-110', '--timeout', '5s', '-o', 'json']), 7, 'E_ROLLOUT_ABORTED')
    expect(err.message).toMatch(/e2e says stop/)
    expectJsonError(await cli(['rollout', 'resume', 'off-110', '-o', 'json']), 5, 'E_ROLLOUT_STATE')
    // The list shows each rollout with its state.
    const list = Object.fromEntries((await rollouts()).map((r) => [r.name, r.state]))
    expect(list).toEqual({'in-dup': 'pending', 'ok-200': 'completed', 'bad-200': 'aborted', 'off-110': 'rolled-back'})
  })
})
