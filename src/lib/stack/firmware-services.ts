import {join} from 'node:path'
import type {Database} from '../db/pool.js'
import {FileArtifactStore, hasSigningKeys, initSigningKeys, loadSigningKey, startArtifactServer, urlSigningSecret, type RunningArtifactServer} from '../firmware/index.js'
import {createRolloutController, type RolloutController} from '../rollout/index.js'

export const OTA_TOPICS = ['devices/+/ota/progress'] as const
export const ROLLOUT_SHARE_GROUP = 'iotctl-rollout'

export interface FirmwareServicesOptions {
  db: Database
  /** Where the signing keys and artifacts live ($IOTCTL_HOME/keys, $IOTCTL_HOME/artifacts by default). */
  keysDir: string
  artifactDir: string
  caDir: string
  passphrase: string
  host: string
  artifactPort: number
  /** The base URL devices download from, when it differs from https://host:port (a load balancer). */
  artifactUrl?: string
  /** The dev stack creates the fleet's signing key on first start, as it creates its CA. */
  createKeys: boolean
  publish: (topic: string, payload: string, options: {qos: 1}) => Promise<void>
  log: (line: string) => void
  tickMs?: number
  standbyMs?: number
}

export interface FirmwareServices {
  controller: RolloutController
  artifacts: RunningArtifactServer
  /** Begin driving rollouts (once the broker or session that publishes is up). */
  start(): void
  stop(): Promise<void>
}

/** The rollout controller (leader by advisory lock) and the HTTPS artifact server, side by side. */
export async function startFirmwareServices(o: FirmwareServicesOptions): Promise<FirmwareServices> {
  if (o.createKeys && !(await hasSigningKeys(o.keysDir))) {
    const created = await initSigningKeys({dir: o.keysDir, algorithm: 'ecdsa-p256', passphrase: o.passphrase})
    o.log(`created the firmware signing key ${created.key_id} in ${o.keysDir}`)
  }
  const signing = await loadSigningKey(o.keysDir, o.passphrase)
  const store = new FileArtifactStore(o.artifactDir)
  const secret = await urlSigningSecret(o.artifactDir)
  const artifacts = await startArtifactServer({store, secret, caDir: o.caDir, passphrase: o.passphrase, host: o.host, port: o.artifactPort, log: o.log})
  const controller = createRolloutController({db: o.db, publish: o.publish, signing, log: o.log, tickMs: o.tickMs, standbyMs: o.standbyMs,
    artifacts: {baseUrl: o.artifactUrl ?? artifacts.baseUrl, secret}})
  return {
    controller, artifacts,
    start: () => controller.start(),
    stop: async () => {
      await controller.stop()
      await artifacts.close()
    },
  }
}

export const defaultFirmwareDirs = (home: string) => ({keysDir: join(home, 'keys'), artifactDir: join(home, 'artifacts')})
