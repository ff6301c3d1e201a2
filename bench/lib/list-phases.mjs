// Child script: the steps `devices list` takes after oclif has routed to it, timed one by one in a
// fresh process (so module loading costs what it costs the CLI). Prints one JSON line of ms.
// usage: node bench/lib/list-phases.mjs DATABASE_URL SELECTOR LIMIT [PROJECT_ROOT_URL]
const boot = process.uptime() * 1000 // node's own start-up until this script runs
const [url, selector, limit, root = new URL('../../', import.meta.url).href] = process.argv.slice(2)
const dist = (path) => import(new URL(`dist/${path}`, root.endsWith('/') ? root : `${root}/`).href)
const phases = {boot}
let t = performance.now()
const lap = (key) => {
  phases[key] = performance.now() - t
  t = performance.now()
}
await dist('commands/devices/list.js')
lap('importCommand')
const {createPool} = await dist('lib/db/pool.js')
const {migrate} = await dist('lib/db/migrate.js')
const {listDevices} = await dist('lib/registry/index.js')
const {devicePageView} = await dist('lib/cli/views/devices.js')
const {renderResult} = await dist('lib/cli/output.js')
t = performance.now()
const pool = await createPool(url)
lap('importPg')
const client = await pool.connect()
client.release()
lap('connect')
await migrate(pool, url)
lap('schemaCheck')
const page = await listDevices({pool, url}, {selector, limit: Number(limit)})
lap('query')
await renderResult(page, 'json', devicePageView, [])
lap('render')
await pool.end()
lap('poolEnd')
process.stdout.write(JSON.stringify(phases) + '\n')
