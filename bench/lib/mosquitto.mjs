// Debian's `mosquitto` started with the configuration `iotctl broker config mosquitto` writes
// (dist/lib/broker/mosquitto-config.js): TLS 1.3, client certificates, CRLs, pattern ACLs, client id
// = certificate CN. The bench twin of test/helpers/mosquitto.ts (benchmarks do not import tests).
import {spawn} from 'node:child_process'
import {connect as tcpConnect} from 'node:net'
import {userInfo} from 'node:os'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {loadDist} from './pki-world.mjs'

/**
 * Write the config into `outDir` and start `mosquitto -c`. Rejects when the binary is missing,
 * exits early or does not listen within `timeoutMs`. Returns the ports, the pid (for CPU
 * accounting), the log so far, and stop().
 */
export async function startMosquitto({caDir, passphrase, outDir, maxPacketBytes = 65_536, timeoutMs = 10_000, autosaveSeconds}) {
  const [{writeMosquittoConfig}, {freePort}] = await Promise.all([loadDist('lib/broker/mosquitto-config.js'), loadDist('lib/db/embedded.js')])
  const devicePort = await freePort()
  const servicePort = await freePort()
  await writeMosquittoConfig({caDir, passphrase, outDir, host: '127.0.0.1', devicePort, servicePort, maxPacketBytes, user: userInfo().username})
  const confPath = join(outDir, 'mosquitto.conf')
  if (autosaveSeconds !== undefined) {
    // Diagnosis only (NOT iotctl's configuration): save the persistence file every N seconds
    // instead of after every change, to show what the per-change autosave costs.
    const conf = await readFile(confPath, 'utf8')
    const patched = conf.replace(/^autosave_on_changes true$/m, 'autosave_on_changes false').replace(/^autosave_interval \d+$/m, `autosave_interval ${autosaveSeconds}`)
    if (patched === conf) throw new Error('mosquitto.conf has no autosave_on_changes/autosave_interval lines to override')
    await writeFile(confPath, patched)
  }
  let stderr = ''
  let dropped = 0
  const child = spawn('mosquitto', ['-c', confPath], {stdio: ['ignore', 'ignore', 'pipe']})
  child.stderr.on('data', (d) => {
    stderr += d
    if (stderr.length > 1_000_000) {
      dropped += 500_000
      stderr = stderr.slice(-500_000)
    }
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const failed = new Promise((_, reject) => {
    child.once('error', (error) => reject(new Error(`mosquitto could not be started (is Debian's mosquitto installed?): ${error.message}`)))
    child.once('exit', (code, signal) => reject(new Error(`mosquitto exited early (code ${code}, signal ${signal}): ${stderr}`)))
  })
  failed.catch(() => undefined)
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      await exited
    }
  }
  try {
    await Promise.race([failed, Promise.all([waitForPort(devicePort, timeoutMs, () => stderr), waitForPort(servicePort, timeoutMs, () => stderr)])])
  } catch (error) {
    await stop()
    throw error
  }
  process.once('exit', () => child.kill('SIGKILL')) // never leave it running after an interrupted bench
  return {devicePort, servicePort, pid: child.pid, conf: confPath,
    /** Everything logged so far (log_dest stderr); `mark()` + `since(mark)` for one run's lines. */
    log: () => stderr, mark: () => dropped + stderr.length, since: (mark) => stderr.slice(Math.max(0, mark - dropped)), stop}
}

async function waitForPort(port, timeoutMs, log) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const open = await new Promise((resolve) => {
      const socket = tcpConnect(port, '127.0.0.1', () => socket.end(() => resolve(true)))
      socket.on('error', () => resolve(false))
    })
    if (open) return
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${log()}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
