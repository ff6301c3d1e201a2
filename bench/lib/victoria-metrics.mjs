// Debian's victoria-metrics for the influx benchmark: a free loopback port (retried when taken
// between choosing and binding), its own storage, -search.latencyOffset=0s, 1 ms dedup (InfluxDB
// overwrites a rewritten point). Same start-up as test/helpers/victoria-metrics.ts.
import {spawn} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const freePort = () => new Promise((resolve, reject) => {
  const s = createServer()
  s.once('error', reject)
  s.listen(0, '127.0.0.1', () => {
    const {port} = s.address()
    s.close(() => resolve(port))
  })
})

export async function startVictoriaMetrics() {
  const dir = await mkdtemp(join(tmpdir(), 'iotctl-bench-vm-'))
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    let log = ''
    const child = spawn('victoria-metrics', [`-storageDataPath=${join(dir, 'data')}`, `-httpListenAddr=127.0.0.1:${port}`, '-search.latencyOffset=0s',
      '-dedup.minScrapeInterval=1ms', '-loggerLevel=ERROR'], {stdio: ['ignore', 'pipe', 'pipe']})
    child.stdout.on('data', (d) => (log += d))
    child.stderr.on('data', (d) => (log += d))
    let exited = null
    child.once('exit', (code) => (exited = code ?? -1))
    const spawnError = new Promise((resolve) => child.once('error', resolve))
    const deadline = Date.now() + 15_000
    for (;;) {
      const failed = await Promise.race([spawnError, sleep(100).then(() => undefined)])
      if (failed) {
        await rm(dir, {recursive: true, force: true})
        throw new Error(`victoria-metrics could not be started (apt-get install victoria-metrics): ${failed.message}`)
      }
      if (exited !== null) break
      if (await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false)) {
        const url = `http://127.0.0.1:${port}`
        return {
          url, pid: child.pid,
          /** CPU seconds (user + system) the server used so far, from /proc. */
          cpuSeconds() {
            const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8')
            const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
            return (Number(f[11]) + Number(f[12])) / 100
          },
          /** Samples stored for metrics matching `match`, counted from the export API. */
          async countSamples(match) {
            await fetch(`${url}/internal/force_flush`)
            const text = await (await fetch(`${url}/api/v1/export?${new URLSearchParams({'match[]': match})}`)).text()
            let n = 0
            for (const line of text.split('\n')) if (line) n += JSON.parse(line).values.length
            return n
          },
          async close() {
            if (exited === null) {
              child.kill('SIGTERM')
              await new Promise((r) => child.once('exit', r))
            }
            await rm(dir, {recursive: true, force: true})
          },
        }
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        throw new Error(`victoria-metrics did not answer on ${port}: ${log}`)
      }
    }
    if (!/address already in use/i.test(log) || attempt >= 4) {
      await rm(dir, {recursive: true, force: true})
      throw new Error(`victoria-metrics exited early (code ${exited}): ${log.slice(-2000)}`)
    }
  }
}
