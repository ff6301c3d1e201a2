import {rm} from 'node:fs/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {boundCli, expectJsonError, expectOk, type Cli} from '../helpers/e2e-expect.js'

/**
 * The README's main job: `iotctl dev up --demo` on a machine with no services, under CI=true (no
 * TTY), in JSON. It must start the embedded stack, apply manifests/demo/, run 200 simulated devices
 * and end by itself with every check met: the good rollout completed, the bad one aborted in its canary.
 */
describe('iotctl dev up --demo', () => {
  let cli: Cli
  let home: string

  beforeAll(async () => {
    ;({cli, home} = await boundCli())
  })
  afterAll(async () => {
    await cli(['dev', 'down']).catch(() => undefined)
    await rm(home, {recursive: true, force: true})
  })

  it('a device port in use is exit 5 naming it, and the process ends (nothing left holding it open)', async () => {
    const {createServer} = await import('node:net')
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const port = (blocker.address() as {port: number}).port
    try {
      // In the foreground the services' log lines come first on stderr; the JSON error is on stdout.
      const r = await cli(['dev', 'up', '--mqtt-port', String(port), '--service-port', '0', '-o', 'json'], {timeoutMs: 60_000})
      expect(r.code).toBe(5)
      expect(r.json().error).toMatchObject({code: 'E_PORT_IN_USE', message: `the device listener's port 127.0.0.1:${port} is in use`})
      expect(r.stderr).not.toMatch(/^\s+at /m)
    } finally {
      await new Promise((resolve) => blocker.close(resolve))
    }
  }, 90_000)

  it('bad input is exit 4 before anything starts', async () => {
    expectJsonError(await cli(['dev', 'up', '--demo', '--demo-timeout', 'soon', '-o', 'json']), 4, 'E_DURATION')
  })

  it('runs to completion and reports success in JSON; the data stays for exploring', async () => {
    const run = await cli(['dev', 'up', '--demo', '--mqtt-port', '0', '--service-port', '0', '--demo-timeout', '150s', '-o', 'json'], {timeoutMs: 170_000})
    const result = expectOk<{success: boolean; outcome: string; checks: Record<string, boolean>; devices: {online: number; total: number};
      shadows: {converged: number; total: number}; rollouts: Array<{name: string; state: string; stage: number; succeeded: number; failed: number}>; explore: string[]}>(run)
    expect(result.checks).toEqual({'every device online': true, 'telemetry stored': true, 'every shadow converged': true,
      'good rollout completed': true, 'bad rollout aborted in its canary': true})
    expect(result).toMatchObject({success: true, outcome: 'completed', devices: {online: 200, total: 200}, shadows: {converged: 200, total: 200}})
    expect(result.rollouts.find((r) => r.name === 'fw-110-berlin')).toMatchObject({state: 'completed', succeeded: 100, failed: 0})
    expect(result.rollouts.find((r) => r.name === 'fw-120-paris')).toMatchObject({state: 'rolled-back', stage: 1, succeeded: 0})
    expect(result.explore).toContain('iotctl rollout status fw-110-berlin')
    // The stack stopped at the end; what it did is in the database the next stack opens.
    expect(run.stderr).not.toMatch(/^\s+at /m)
    expectOk(await cli(['dev', 'up', '--detach', '--mqtt-port', '0', '--service-port', '0', '-o', 'json']))
    const devices = expectOk<{items: Array<{firmware_version: string}>}>(await cli(['devices', 'list', '--selector', 'site=berlin', '-o', 'json']))
    expect(devices.items).toHaveLength(100)
    expect(new Set(devices.items.map((d) => d.firmware_version))).toEqual(new Set(['1.1.0']))
    const paris = expectOk<{items: Array<{firmware_version: string}>}>(await cli(['devices', 'list', '--selector', 'site=paris', '-o', 'json']))
    expect(new Set(paris.items.map((d) => d.firmware_version))).toEqual(new Set(['1.0.0']))
  }, 240_000)
})
