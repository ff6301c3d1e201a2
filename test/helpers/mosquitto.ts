import {spawn, type ChildProcess} from 'node:child_process'
import {connect as tcpConnect} from 'node:net'
import {userInfo} from 'node:os'
import {join} from 'node:path'
import {writeMosquittoConfig} from '../../src/lib/broker/mosquitto-config.js'
import {freePort} from '../../src/lib/db/embedded.js'
import {PASSPHRASE} from './pki-fixtures.js'
import type {PkiWorld} from './mqtt-world.js'

/** Debian's `mosquitto` running with the configuration `iotctl broker config mosquitto` writes. */
export interface RunningMosquitto {
  devicePort: number
  servicePort: number
  /** Everything mosquitto wrote to stderr so far (log_dest stderr). */
  log(): string
  stop(): Promise<void>
}

/**
 * Write the iotctl Mosquitto configuration for this PKI world and start `mosquitto -c` with it.
 * Rejects (never skips) when the binary is missing, exits early, or does not listen within the
 * timeout: CI installs mosquitto, so its absence is a failure.
 */
export async function startMosquitto(world: PkiWorld, options: {maxPacketBytes?: number; timeoutMs?: number} = {}): Promise<RunningMosquitto> {
  const devicePort = await freePort()
  const servicePort = await freePort()
  const out = join(world.dir, 'mosquitto')
  await writeMosquittoConfig({caDir: world.caDir, passphrase: PASSPHRASE, outDir: out, host: '127.0.0.1', devicePort, servicePort,
    maxPacketBytes: options.maxPacketBytes ?? 65_536, user: userInfo().username})
  let stderr = ''
  const child: ChildProcess = spawn('mosquitto', ['-c', join(out, 'mosquitto.conf')], {stdio: ['ignore', 'ignore', 'pipe']})
  child.stderr!.on('data', (d) => (stderr += d))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (error) => reject(new Error(`mosquitto could not be started (is Debian's mosquitto installed?): ${error.message}`)))
    child.once('exit', (code, signal) => reject(new Error(`mosquitto exited early (code ${code}, signal ${signal}): ${stderr}`)))
  })
  failed.catch(() => undefined) // observed below; a later exit after a successful start is not an error here
  const stop = async () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) { // never spawned: nothing to stop
      child.kill('SIGTERM')
      await exited
    }
  }
  try {
    await Promise.race([failed, Promise.all([waitForPort(devicePort, options.timeoutMs ?? 10_000, () => stderr), waitForPort(servicePort, options.timeoutMs ?? 10_000, () => stderr)])])
  } catch (error) {
    await stop()
    throw error
  }
  return {devicePort, servicePort, log: () => stderr, stop}
}

async function waitForPort(port: number, timeoutMs: number, log: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect(port, '127.0.0.1', () => socket.end(() => resolve(true)))
      socket.on('error', () => resolve(false))
    })
    if (open) return
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${log()}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
