import {randomBytes} from 'node:crypto'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {FileArtifactStore, loadPublicKey, loadSigningKey, uploadFirmware, urlSigningSecret, type FirmwareRecord} from '../../src/lib/firmware/index.js'
import {createRollout, createRolloutController, type RolloutController, type RolloutRecord, type RolloutSpec} from '../../src/lib/rollout/index.js'
import {DEFAULT_METRICS, parseMetrics, startFleet, type OtaOptions, type RunningFleet} from '../../src/lib/simulator/index.js'
import {prepareSimulation} from '../../src/lib/simulator/prepare.js'
import {startDevBroker} from '../../src/lib/stack/dev-broker.js'
import {freshDatabase, type TestDatabase} from './database.js'
import {caPem, cleanup, tempDir} from './pki-fixtures.js'

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Poll until `check` returns a value (not undefined), or fail after `timeoutMs` with `what`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(everyMs)
  }
}

export type RolloutWorld = Awaited<ReturnType<typeof rolloutWorld>>

/**
 * The dev stack's services in-process (startDevBroker: embedded broker over mutual TLS, ingest,
 * shadow sync, rollout controller, HTTPS artifact server) on a fresh database and a temporary home,
 * plus simulated fleets whose devices do OTA as docs/PROTOCOL.md says. No part is faked.
 */
export async function rolloutWorld(options: {tickMs?: number} = {}) {
  const db: TestDatabase = await freshDatabase()
  const home = await tempDir('rollout')
  const log: string[] = []
  const keep = (line: string) => void log.push(line)
  const services = await startDevBroker({home, db, mqttPort: 0, servicePort: 0, rolloutTickMs: options.tickMs ?? 200,
    logs: {broker: () => undefined, ingest: () => undefined, shadow: () => undefined, rollout: keep}})
  const caDir = join(home, 'ca')
  const passphrase = (await readFile(join(caDir, 'dev-passphrase'), 'utf8')).trim()
  const trust = await caPem(caDir, 'root.crt', 'service-ca.crt')
  const root = await caPem(caDir, 'root.crt')
  const trustedKey = (await loadPublicKey(join(home, 'keys'))).key
  const fleets: RunningFleet[] = []
  const controllers: RolloutController[] = []
  /** Every firmware assignment the broker carried, per device (install or rollback). */
  const dispatched = new Map<string, Array<{kind: string; id: string}>>()
  await services.broker.subscribe('devices/+/firmware', (topic, payload, done) => {
    const device = topic.split('/')[1]!
    try {
      const a = JSON.parse(Buffer.from((JSON.parse(payload.toString()) as {payload: string}).payload, 'base64').toString()) as {kind: string; id: string}
      dispatched.set(device, [...(dispatched.get(device) ?? []), {kind: a.kind, id: a.id}])
    } catch {
      dispatched.set(device, [...(dispatched.get(device) ?? []), {kind: 'unreadable', id: ''}])
    }
    done()
  })

  return {
    db, home, services, log, dispatched, caDir, passphrase,
    /** Every controller: the dev stack's own first, then those added with controller(). */
    controllers: () => [services.firmware.controller, ...controllers],
    /** Register `count` devices of `type` on `firmware`, issue certificates, and connect them. */
    fleet: async (prefix: string, count: number, type: string, firmware: string, ota: Partial<OtaOptions> = {}, start = true, intervalMs = 5000) => {
      const plan = await prepareSimulation(db, {caDir, passphrase, prefix, count, type, firmware, register: true})
      const run = () => startFleet({url: `mqtts://127.0.0.1:${services.broker.devicePort}`, trust, devices: plan.devices, intervalMs,
        metrics: parseMetrics(DEFAULT_METRICS), anomalyRate: 0, qos: 1, log: () => undefined,
        ota: {trustedKey, ca: root, failureRate: 0, hangRate: 0, installMs: 50, rebootMs: 50, ...ota}})
      if (!start) return {ids: plan.devices.map((d) => d.id), start: async () => fleets[fleets.push(await run()) - 1]!}
      const fleet = await run()
      fleets.push(fleet)
      return {ids: plan.devices.map((d) => d.id), fleet}
    },
    upload: async (type: string, version: string, size = 200_000): Promise<FirmwareRecord> => {
      const file = join(home, `${type}-${version}.bin`)
      await writeFile(file, randomBytes(size))
      return uploadFirmware(db, {file, version, deviceType: type, keysDir: join(home, 'keys'), passphrase, store: new FileArtifactStore(join(home, 'artifacts'))})
    },
    create: (spec: Partial<RolloutSpec> & {name: string; firmware: string}, start = true): Promise<RolloutRecord> =>
      createRollout(db, {stages: [1, 10, 100], soakMs: 500, maxFailureRate: 0.05, minDecided: 10, minCoverage: 0.9, stepTimeoutMs: 30_000, rollback: false, ...spec}, {start}),
    /** Another controller on the same database and broker (a standby, or a second leader candidate). */
    controller: async (tickMs = 200): Promise<RolloutController> => {
      const signing = await loadSigningKey(join(home, 'keys'), passphrase)
      const secret = await urlSigningSecret(join(home, 'artifacts'))
      const c = createRolloutController({db, signing, tickMs, standbyMs: 200, log: (line) => log.push(`[extra] ${line}`),
        artifacts: {baseUrl: services.firmware.artifacts.baseUrl, secret},
        publish: (topic, payload, o) => services.broker.publish(topic, payload, {...o, retain: false})})
      controllers.push(c)
      c.start()
      return c
    },
    targets: async (rollout: string) => (await db.pool.query<{device_id: string; stage: number; state: string; dispatched_at: Date | null; rollback_state: string | null}>(
      'SELECT device_id, stage, state, dispatched_at, rollback_state FROM rollout_targets WHERE rollout = $1 ORDER BY position', [rollout])).rows,
    state: async (rollout: string) => (await db.pool.query<{state: string; stage: number; reason: string | null}>('SELECT state, stage, reason FROM rollouts WHERE name = $1', [rollout])).rows[0]!,
    close: async () => {
      await Promise.allSettled(fleets.map((f) => f.stop()))
      await Promise.allSettled(controllers.map((c) => c.stop()))
      await services.firmware.stop()
      await services.broker.close()
      await services.telemetry.flush()
      await services.shadow.stop()
      await db.drop()
      await cleanup(home)
    },
  }
}
