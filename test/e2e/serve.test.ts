import {spawn} from 'node:child_process'
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {BIN} from '../helpers/cli.js'
import {boundCli, describeRun, expectJsonError, USER_ENV, type Cli} from '../helpers/e2e-expect.js'
import {connectWith, pkiWorld, type PkiWorld} from '../helpers/mqtt-world.js'
import {PASSPHRASE} from '../helpers/pki-fixtures.js'

describe('iotctl serve', () => {
  let world: PkiWorld
  let cli: Cli
  let identityDir: string

  beforeAll(async () => {
    world = await pkiWorld({prefix: 'serve', devices: ['s1'], operators: ['ingest-1']})
    ;({cli} = await boundCli(world.db.url))
    identityDir = join(world.dir, 'ingest-1')
    const identity = world.certs.get('ingest-1')!
    await mkdir(identityDir, {recursive: true})
    await writeFile(join(identityDir, 'operator.crt'), identity.certificate)
    await writeFile(join(identityDir, 'operator.key'), identity.private_key!, {mode: 0o600})
    await writeFile(join(identityDir, 'chain.pem'), identity.chain)
  }, 60_000)

  afterAll(async () => {
    await world?.close()
  })

  it('refuses bad options before connecting anywhere, with the exit code and a next step', async () => {
    const cases: Array<[string[], number, string]> = [
      [['--components', 'ingest,shadowz'], 2, 'E_COMPONENTS'],
      [['--components', ''], 2, 'E_COMPONENTS'],
      [['--components', 'ingest'], 2, 'E_BROKER_URL'],
      [['--components', 'ingest', '--broker-url', 'http://x:1'], 4, 'E_BROKER_URL'],
      [['--components', 'ingest', '--broker-url', 'mqtts://127.0.0.1:1'], 2, 'E_IDENTITY'],
      [['--components', 'ingest', '--broker-url', 'mqtts://127.0.0.1:1', '--identity', '/nonexistent'], 3, 'E_IDENTITY'],
      [['--components', 'broker', '--mqtt-port', '9000', '--service-port', '9000'], 4, 'E_PORTS'],
    ]
    for (const [args, exit, code] of cases) {
      const error = expectJsonError(await cli(['serve', ...args, '-o', 'json', '--database-url', 'postgres://nobody@127.0.0.1:1/none']), exit, code)
      expect(error.hint, args.join(' ')).toBeTruthy()
    }
  })

  it('an unreachable broker is exit 6 with the masked URL', async () => {
    const r = await cli(['serve', '--components', 'ingest', '--broker-url', 'mqtts://user:s3cret@127.0.0.1:1', '--identity', identityDir, '-o', 'json'])
    const error = expectJsonError(r, 6, 'E_BROKER_UNREACHABLE')
    expect(error.message).toContain('127.0.0.1:1')
    expect(r.stdout + r.stderr).not.toContain('s3cret')
  })

  it('--components broker,ingest stores telemetry before the PUBACK and stops cleanly on SIGTERM', async () => {
    const env: NodeJS.ProcessEnv = {...process.env, ...USER_ENV, CI: 'true', IOTCTL_CA_PASSPHRASE: PASSPHRASE, IOTCTL_DATABASE_URL: world.db.url}
    for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key]
    const child = spawn(process.execPath, [BIN, 'serve', '--components', 'broker,ingest', '--ca-dir', world.caDir, '--mqtt-port', '0', '--service-port', '0', '-o', 'json'],
      {env, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d) => (stdout += d))
    child.stderr!.on('data', (d) => (stderr += d))
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    try {
      await expect.poll(() => stderr.includes('[serve] ready'), {timeout: 30_000}).toBe(true)
      const result = JSON.parse(stdout).result as {components: string[]; broker: {devicePort: number}; ingest: {mode: string}}
      expect(result.components).toEqual(['broker', 'ingest'])
      expect(result.ingest.mode).toBe('in-broker')
      const device = await connectWith(`mqtts://127.0.0.1:${result.broker.devicePort}`, world.certs.get('s1')!, world.trust, 's1')
      await device.publishAsync('devices/s1/telemetry', JSON.stringify({ts: Date.now(), seq: 1, metrics: {t: 20.5}}), {qos: 1})
      const {rows} = await world.db.pool.query("SELECT value FROM telemetry WHERE device_id = 's1'")
      expect(rows).toEqual([{value: 20.5}])
      await device.endAsync()
    } finally {
      child.kill('SIGTERM')
    }
    expect(await exited, `${stdout}\n${stderr}`).toBe(0)
    expect(stderr).toMatch(/\[serve\] stopped/)
    expect(describeRun({code: 0, stdout, stderr, json: () => JSON.parse(stdout)})).not.toMatch(/\n\s+at /)
  }, 60_000)
})
