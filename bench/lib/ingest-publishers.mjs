// The ingest benchmark's publishers, in this process ('inline', the default) or in a child process
// ('child'): one interface either way: connect(url), run({qos, perDevice, window, rate, base, T0}),
// close(), and `pid` (the process whose CPU time is the load generator's).
import {fork} from 'node:child_process'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {closePublishers, connectPublishers, publishRun} from './ingest-load.mjs'

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'ingest-publisher-child.mjs')

export async function createPublishers(mode, {devices, trust}) {
  if (mode === 'inline') {
    const {default: mqtt} = await import('mqtt')
    let load
    return {
      mode, pid: process.pid,
      async connect(url, protocolVersion) {
        load = await connectPublishers({mqtt, url, devices, trust, protocolVersion})
        return {connectMs: load.connectMs}
      },
      run: (args) => publishRun(load, args),
      async close() {
        if (load) await closePublishers(load)
        load = undefined
      },
      async exit() {},
    }
  }
  if (mode !== 'child') throw new Error(`--publishers must be inline or child, got ${JSON.stringify(mode)}`)
  const child = fork(CHILD, [], {stdio: ['ignore', 'inherit', 'inherit', 'ipc']})
  const kill = () => child.kill('SIGKILL')
  process.once('exit', kill)
  const waiting = new Map()
  let next = 0
  child.on('message', ({id, result, error}) => {
    const w = waiting.get(id)
    waiting.delete(id)
    if (error) w?.reject(new Error(`publisher child: ${error}`))
    else w?.resolve(result)
  })
  child.once('exit', (code, signal) => {
    for (const w of waiting.values()) w.reject(new Error(`publisher child exited (code ${code}, signal ${signal})`))
    waiting.clear()
  })
  const call = (cmd, args) => new Promise((resolve, reject) => {
    const id = ++next
    waiting.set(id, {resolve, reject})
    child.send({id, cmd, args})
  })
  return {
    mode, pid: child.pid,
    connect: (url, protocolVersion) => call('connect', {url, devices, trust, protocolVersion}),
    run: (args) => call('run', args),
    close: () => call('close'),
    async exit() {
      process.off('exit', kill)
      child.disconnect()
      await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)))
    },
  }
}
