// Child process of bench/connections.mjs: the embedded broker (dist/lib/broker/server.js) alone in
// its own process, so the clients' memory does not pollute its figures. Driven over IPC:
//   {id, type: 'start', dist, url, caDir, passphrase, connectRate, poolSize} → {devicePort, servicePort}
//   {id, type: 'stats', gc}                                             → memory, CPU, client counts
//   {id, type: 'close'}                                                 → closes broker and pool, exits
// Start it with --expose-gc so 'stats' can collect garbage before reading memory.
import {readdir, readFile, readlink} from 'node:fs/promises'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {Aedes} from 'aedes'

// startBroker() keeps its aedes instance private; the bench needs aedes' own client count. The
// module instance is the one server.js imports, so wrapping the factory hands us the instance.
let aedes
const createBroker = Aedes.createBroker
Aedes.createBroker = async function (...args) {
  aedes = await createBroker.apply(this, args)
  return aedes
}

let broker
let pool
const queries = new Map() // SQL text → {count, totalMs, values (the last ones)}
const logs = {refused: 0, tls: 0, other: 0, last: []}

function log(line) {
  if (/^refused /.test(line)) logs.refused++
  else if (/TLS (refused|handshake failed)/.test(line)) logs.tls++
  else logs.other++
  logs.last.push(line)
  if (logs.last.length > 10) logs.last.shift()
}

/**
 * This process's ESTABLISHED TCP sockets on local `port`: /proc/net/tcp (IPv4, state 01) rows whose
 * inode is one of our file descriptors (the table is the whole network namespace's).
 */
async function establishedOn(port) {
  const inodes = new Set()
  for (const fd of await readdir('/proc/self/fd').catch(() => [])) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '')
    if (target.startsWith('socket:[')) inodes.add(target.slice(8, -1))
  }
  const text = await readFile('/proc/net/tcp', 'utf8').catch(() => '')
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`
  // Counted by inode: the file is not a snapshot, and rows repeat when the table changes under a read.
  const seen = new Set()
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/)
    if (cols.length > 9 && cols[1].endsWith(hex) && cols[3] === '01' && inodes.has(cols[9])) seen.add(cols[9])
  }
  return seen.size
}

/** Time every pool.query(text, values) the broker makes (authentication, supersede, revocation sweep). */
function recordQueries(target) {
  const query = target.query.bind(target)
  target.query = (text, values, callback) => {
    if (typeof text !== 'string' || typeof values === 'function' || callback) return query(text, values, callback)
    const start = performance.now()
    return query(text, values).finally(() => {
      const q = queries.get(text) ?? {count: 0, totalMs: 0}
      q.count++
      q.totalMs += performance.now() - start
      q.values = values
      queries.set(text, q)
    })
  }
}

const handlers = {
  async start({dist, url, caDir, passphrase, connectRate, poolSize}) {
    // `dist` may be a snapshot of the build (see connections.mjs); its node_modules link resolves to
    // the same real files, so 'aedes' above is the instance server.js gets.
    const loadDist = (path) => import(pathToFileURL(join(dist, path)).href)
    const [{createPool}, {startBroker}, {supersedePredecessors}] = await Promise.all([
      loadDist('lib/db/pool.js'), loadDist('lib/broker/server.js'), loadDist('lib/pki/index.js')])
    pool = await createPool(url, {max: poolSize})
    recordQueries(pool)
    const db = {pool, url}
    // The same authentication hook as the dev stack (src/lib/stack/dev-broker.ts): one more query per connect.
    broker = await startBroker({db, caDir, passphrase, devicePort: 0, servicePort: 0, connectRate, log,
      onDeviceAuthenticated: async (identity) => {
        await supersedePredecessors(pool, identity.serial)
      }})
    return {devicePort: broker.devicePort, servicePort: broker.servicePort, pid: process.pid}
  },
  async stats({gc}) {
    // CPU before and after this request's own work (collections, /proc reads): the bench's, not the broker's.
    const cpu = process.cpuUsage()
    if (gc && typeof global.gc === 'function') {
      global.gc()
      await new Promise((resolve) => setImmediate(resolve))
      global.gc()
    }
    return {
      memory: process.memoryUsage(),
      cpu,
      cpuAfter: process.cpuUsage(),
      maxRssKiB: process.resourceUsage().maxRSS,
      gcExposed: typeof global.gc === 'function',
      connectedClients: aedes?.connectedClients ?? null,
      clientsById: aedes ? Object.keys(aedes.clients).length : null,
      tcpEstablished: broker ? await establishedOn(broker.devicePort) : null,
      queries: [...queries].map(([text, q]) => ({text, ...q})),
      logs: {...logs, last: [...logs.last]},
    }
  },
  async close() {
    await broker?.close()
    await pool?.end()
    setImmediate(() => process.exit(0))
    return {}
  },
}

process.on('message', (message) => {
  const handler = handlers[message?.type]
  Promise.resolve()
    .then(() => (handler ? handler(message) : Promise.reject(new Error(`unknown request ${message?.type}`))))
    .then((result) => process.send({id: message.id, ok: true, result}), (error) => process.send({id: message.id, ok: false, error: String(error?.stack ?? error)}))
})
// The bench process went away (Ctrl-C, crash): do not outlive it.
process.on('disconnect', () => process.exit(0))
