import {readFile, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {IssuedCertificate} from '../../src/lib/pki/index.js'
import {boundCli, describeRun, expectJsonError, expectOk, expectPlainError} from '../helpers/e2e-expect.js'
import {connectWith} from '../helpers/mqtt-world.js'

/**
 * The real dev stack: `dev up --detach` starts an embedded PostgreSQL in a background process
 * under a temporary IOTCTL_HOME, and every other command finds it without flags. The tests run in
 * order and share the stack; afterAll always runs `dev down`.
 */
describe('dev stack lifecycle', {timeout: 120_000}, () => {
  let cli: Awaited<ReturnType<typeof boundCli>>['cli']
  let home: string
  let firstPid: number
  let mqttPort: number

  const exists = (path: string) => stat(path).then(() => true, () => false)

  beforeAll(async () => {
    ;({cli, home} = await boundCli()) // no IOTCTL_DATABASE_URL: only the stack can provide one
  })
  afterAll(async () => {
    const down = await cli(['dev', 'down'], {timeoutMs: 60_000})
    if (down.code !== 0) process.stderr.write(`dev down in afterAll failed:\n${describeRun(down)}\n`)
    else await rm(home, {recursive: true, force: true})
  }, 90_000)

  it('dev status before anything runs → 3', async () => {
    const err = expectJsonError(await cli(['dev', 'status', '-o', 'json']), 3, 'E_STACK_NOT_RUNNING')
    expect(err.hint).toContain('iotctl dev up --detach')
    expectPlainError(await cli(['devices', 'list']), 6)
  })

  it('dev up --detach -o json → 0, running, URL masked', async () => {
    // A summary line every second instead of every 10 s, so that the test below need not wait.
    const r = await cli(['dev', 'up', '--detach', '--mqtt-port', '0', '--service-port', '0', '--summary-interval', '1s', '-o', 'json'], {timeoutMs: 110_000})
    const result = expectOk(r)
    expect(result).toMatchObject({status: 'running', detached: true, data_dir: join(home, 'dev')})
    expect(result.database_url).toMatch(/^postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/iotctl$/)
    const secrets = JSON.parse(await readFile(join(home, 'dev', 'postgres.json'), 'utf8')) as {password: string}
    expect(r.stdout + r.stderr).not.toContain(secrets.password)
    expect((await stat(join(home, 'dev', 'postgres.json'))).mode & 0o777).toBe(0o600)
    firstPid = result.pid
    mqttPort = Number(/:(\d+)$/.exec(result.mqtt_url)![1])
  })

  it('dev up --detach again → 0, the same stack (idempotent)', async () => {
    const r = await cli(['dev', 'up', '--detach'])
    expect(r.code, describeRun(r)).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^STATUS\\s+PID\\s+DATABASE\\s+MQTT\\s+DATA_DIR\\nrunning\\s+${firstPid}\\s`))
    expect(r.stderr).toMatch(/already running/)
  })

  it('dev status -o json → running and reachable', async () => {
    const status = expectOk(await cli(['dev', 'status', '-o', 'json']))
    expect(status).toMatchObject({running: true, pid: firstPid, database: {reachable: true}})
    expect(status.database.url).toContain('***')
    expect(status.database.version).toMatch(/^\d+/)
    // The broker runs too, with a CA the stack created and a passphrase kept 0600 beside the data.
    expect(status.broker.mqtt_url).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/)
    expect((await stat(join(home, 'ca', 'root.crt'))).isFile()).toBe(true)
    expect((await stat(join(home, 'ca', 'dev-passphrase'))).mode & 0o777).toBe(0o600)
  })

  it('devices register without any database flag finds the running stack', async () => {
    const d = expectOk(await cli(['devices', 'register', 'dev-1', '--type', 'thermostat', '--label', 'site=berlin', '--json']))
    expect(d).toMatchObject({device_id: 'dev-1', status: 'active'})
    expect(expectOk(await cli(['config', 'view', '--json'])).effective.database_source).toBe('dev-stack')
  })

  it('a context takes precedence over the running stack', async () => {
    // Like kubectl, set-context alone does not switch: the stack is still used until --use.
    expect((await cli(['config', 'set-context', 'far', '--database-url', 'postgres://u:p@127.0.0.1:1/x'])).code).toBe(0)
    expect(expectOk(await cli(['devices', 'get', 'dev-1', '--json'])).device_id).toBe('dev-1')
    expect((await cli(['config', 'use-context', 'far'])).code).toBe(0)
    expectJsonError(await cli(['devices', 'get', 'dev-1', '--json']), 6, 'E_DB_UNAVAILABLE')
    await rm(join(home, 'config.yaml'))
    expect(expectOk(await cli(['devices', 'get', 'dev-1', '--json'])).device_id).toBe('dev-1')
  })

  it('dev logs postgres prints the server log', async () => {
    const r = await cli(['dev', 'logs', 'postgres'])
    expect(r.code, describeRun(r)).toBe(0)
    expect(r.stdout.trim().length).toBeGreaterThan(0)
    const all = await cli(['dev', 'logs'])
    expect(all.stdout).toMatch(/^\[postgres\] /m)
    expectJsonError(await cli(['dev', 'logs', 'kafka', '--json']), 4, 'E_SERVICE')
  })

  it('dev status -o json → postgres, broker (device and service listeners) and ingest: ports, pid, healthy', async () => {
    const status = expectOk(await cli(['dev', 'status', '-o', 'json']))
    const {postgres, broker, ingest} = status.services
    const dbPort = Number(/:(\d+)\/iotctl$/.exec(status.database.url)![1])
    expect(postgres).toMatchObject({healthy: true, ports: {postgres: dbPort}, version: expect.stringMatching(/^\d+/)})
    expect(postgres.pid).toBeGreaterThan(0)
    expect(postgres.pid).not.toBe(firstPid) // the PostgreSQL server is a process of its own
    expect(broker).toMatchObject({pid: firstPid, healthy: true, ports: {device: mqttPort, service: expect.any(Number)},
      listeners: {device: {port: mqttPort, healthy: true}, service: {healthy: true}}})
    expect(broker.ports.service).not.toBe(mqttPort)
    expect(broker.listeners.service.port).toBe(broker.ports.service)
    expect(ingest).toMatchObject({pid: firstPid, healthy: true, ports: {}, stats: {failures: 0, pending_points: 0}})
    expect(ingest.heartbeat_age_ms).toBeLessThan(10_000)
    for (const service of [postgres, broker, ingest]) expect(service).not.toHaveProperty('error')

    const table = await cli(['dev', 'status'])
    expect(table.code, describeRun(table)).toBe(0)
    expect(table.stdout).toMatch(/^SERVICE\s+PID\s+PORTS\s+HEALTH\s+DETAIL\n/)
    expect(table.stdout).toMatch(new RegExp(`^postgres\\s+${postgres.pid}\\s+${dbPort}\\s+healthy\\s`, 'm'))
    expect(table.stdout).toMatch(new RegExp(`^broker\\s+${firstPid}\\s+device=${mqttPort} service=${broker.ports.service}\\s+healthy\\s`, 'm'))
    expect(table.stdout).toMatch(new RegExp(`^ingest\\s+${firstPid}\\s+-\\s+healthy\\s`, 'm'))
    expect(table.stderr).not.toMatch(/unhealthy/)
  })

  it('dev logs broker → the broker\'s own log with its start line; dev logs nope → 4 naming the services', async () => {
    const r = await cli(['dev', 'logs', 'broker'])
    expect(r.code, describeRun(r)).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^\\S+Z MQTT over TLS: devices on 127\\.0\\.0\\.1:${mqttPort}, services on 127\\.0\\.0\\.1:\\d+$`, 'm'))
    expect(r.stdout).not.toMatch(/^\[/m) // one service: no prefixes
    expect((await cli(['dev', 'logs', 'stack'])).stdout).not.toMatch(/MQTT over TLS/) // a file per service
    expect((await cli(['dev', 'logs'])).stdout).toMatch(/^\[broker\] \S+ MQTT over TLS/m)
    const nope = await cli(['dev', 'logs', 'nope'])
    expectPlainError(nope, 4)
    expect(nope.stderr).toMatch(/"nope".*stack, postgres, broker, ingest/)
  })

  it('telemetry shows in the ingest counters, the ingest log and the detached stack\'s plain summary line', async () => {
    const dir = join(home, 'dev-1-identity')
    const issued = await cli(['certs', 'issue', 'dev-1', '--out', dir])
    expect(issued.code, describeRun(issued)).toBe(0)
    const read = (file: string) => readFile(file, 'utf8')
    const identity = {certificate: await read(join(dir, 'device.crt')), chain: await read(join(dir, 'chain.pem')),
      private_key: await read(join(dir, 'device.key'))} as IssuedCertificate
    const trust = (await read(join(home, 'ca', 'root.crt'))) + (await read(join(home, 'ca', 'service-ca.crt')))
    const client = await connectWith(`mqtts://127.0.0.1:${mqttPort}`, identity, trust, 'dev-1')
    try {
      for (let seq = 1; seq <= 3; seq++) {
        await client.publishAsync('devices/dev-1/telemetry', JSON.stringify({ts: Date.now(), seq, metrics: {temp: 20 + seq}}), {qos: 1})
      }
      await client.publishAsync('devices/dev-1/telemetry', 'not json', {qos: 1}) // PUBACKed after it was rejected
      const status = async () => expectOk(await cli(['dev', 'status', '-o', 'json'])).services
      await expect.poll(async () => (await status()).ingest.stats, {timeout: 15_000, interval: 500})
        .toMatchObject({messages: 4, points: 3, rejected: 1, failures: 0, pending_points: 0, lag_ms: 0})
      expect((await status()).broker.connections).toBeGreaterThanOrEqual(1)
    } finally {
      await client.endAsync()
    }
    expect((await cli(['dev', 'logs', 'ingest'])).stdout).toMatch(/^\S+Z telemetry from dev-1 rejected: payload is not JSON$/m)
    // Without a terminal: a plain line every --summary-interval, no carriage returns or escape codes.
    const line = /^\S+Z summary: connections=\d+ msg\/s=\d+(\.\d)? messages=4 lag_points=0 lag=0s rejected=1 write_failures=0$/m
    await expect.poll(async () => (await cli(['dev', 'logs', 'stack'])).stdout, {timeout: 15_000, interval: 500}).toMatch(line)
    const log = await readFile(join(home, 'dev', 'logs', 'stack.log'), 'utf8')
    expect(log).not.toMatch(/[\r\u001B]/)
    expect(log).toMatch(new RegExp(`^\\S+Z ready \\(pid ${firstPid}\\)$`, 'm'))
  })

  it('dev down → 0; then status → 3 and commands find no database', async () => {
    const down = expectOk(await cli(['dev', 'down', '--json'], {timeoutMs: 60_000}))
    expect(down).toEqual({stopped: true, pid: firstPid})
    const log = (await cli(['dev', 'logs', 'stack'])).stdout
    expect(log).toMatch(/^\S+Z SIGTERM: stopping$/m)
    expect(log.trimEnd()).toMatch(/ stopped$/)
    expectJsonError(await cli(['dev', 'status', '--json']), 3, 'E_STACK_NOT_RUNNING')
    expectJsonError(await cli(['devices', 'get', 'dev-1', '--json']), 6, 'E_NO_DATABASE')
    expect(expectOk(await cli(['dev', 'down', '--json']))).toEqual({stopped: false})
  })

  it('dev up --detach again: the device registered earlier is still there', async () => {
    const up = expectOk(await cli(['dev', 'up', '--detach', '--mqtt-port', '0', '--service-port', '0', '--json'], {timeoutMs: 110_000}))
    expect(up.pid).not.toBe(firstPid)
    expect(expectOk(await cli(['devices', 'get', 'dev-1', '--json']))).toMatchObject({device_id: 'dev-1', labels: {site: 'berlin'}})
  })

  it('dev reset without --yes → 2 and nothing is deleted', async () => {
    const r = await cli(['dev', 'reset'])
    expectPlainError(r, 2)
    expect(r.stderr).toMatch(/--yes/)
    expect(await exists(join(home, 'dev', 'pgdata'))).toBe(true)
    expect(expectOk(await cli(['dev', 'status', '--json'])).running).toBe(true)
    expect(expectOk(await cli(['devices', 'get', 'dev-1', '--json'])).device_id).toBe('dev-1')
  })

  it('dev reset --yes → 0 and $IOTCTL_HOME/dev is gone', async () => {
    const r = expectOk(await cli(['dev', 'reset', '--yes', '--json'], {timeoutMs: 60_000}))
    expect(r).toEqual({removed: join(home, 'dev')})
    expect(await exists(join(home, 'dev'))).toBe(false)
    expectJsonError(await cli(['dev', 'status', '--json']), 3, 'E_STACK_NOT_RUNNING')
  })
})

describe('top-level help and version', () => {
  it('iotctl --help lists the exit code table', async () => {
    const {cli} = await boundCli()
    const r = await cli(['--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^EXIT CODES$/m)
    for (const code of [0, 2, 3, 4, 5, 6, 70, 130]) expect(r.stdout).toMatch(new RegExp(`^\\s+${code}\\s+\\S`, 'm'))
    expect(r.stdout).toMatch(/^\s+130\s+interrupted$/m)
  })

  it('iotctl --version prints iotctl/<version>', async () => {
    const {cli} = await boundCli()
    const r = await cli(['--version'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^iotctl\/\d+\.\d+\.\d+ /)
  })
})
