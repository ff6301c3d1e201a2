// The other side of bench/simulator.mjs: the real dev stack (`iotctl dev up --detach`: embedded
// PostgreSQL, the broker with the ingest in its publish path, the shadow sync) in its own background
// process, under a temporary IOTCTL_HOME, run from a snapshot of the build. The simulator then runs
// alone in the bench process, so its CPU and memory are its own. stop() runs `dev down`, and falls
// back to killing the stack's processes; it is safe to call more than once and on Ctrl-C.
import {rmSync} from 'node:fs'
import {readFile, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {getAppRoot, ROOT, runNode, useSnapshot} from './proc.mjs'

const isAlive = (pid) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export async function startStack({log = () => undefined} = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'iotctl-bench-simulator-'))
  const home = join(dir, 'home')
  const env = {...process.env, IOTCTL_HOME: home, NODE_ENV: undefined, CI: 'true', NO_COLOR: '1'}
  for (const key of Object.keys(env)) if (env[key] === undefined || (key.startsWith('IOTCTL_') && key !== 'IOTCTL_HOME')) delete env[key]
  let record
  let stopping
  const cli = async (args, timeoutMs = 180_000) => {
    const r = await runNode(['bin/run.js', ...args], {env, timeoutMs})
    if (r.code !== 0) throw new Error(`\`iotctl ${args.join(' ')}\` exited ${r.code ?? r.signal}:\n${(r.stderr || r.stdout).slice(-2000)}`)
    return r
  }
  const stop = () => {
    stopping ??= (async () => {
      if (record) {
        await cli(['dev', 'down'], 60_000).catch((error) => log(`dev down failed: ${error.message}`))
        for (const pid of [record.pid, record.postgresPid]) if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL')
      }
      await rm(dir, {recursive: true, force: true, maxRetries: 5}).catch(() => undefined)
    })()
    return stopping
  }
  const onSignal = () => void stop().then(() => process.exit(130))
  // A crash (an uncaught exception) skips every finally: kill what was started, synchronously.
  const onExit = () => {
    if (!stopping) for (const pid of [record?.pid, record?.postgresPid]) if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL')
    if (!stopping) rmSync(dir, {recursive: true, force: true})
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.once('exit', onExit)
  try {
    await useSnapshot(join(dir, 'app'))
  } catch (error) {
    await stop()
    throw new Error(`cannot copy the build from ${join(ROOT, 'dist')} (run \`npm run build\` first): ${error.message}`)
  }
  try {
    const started = process.hrtime.bigint()
    // --summary-interval 0s: no summary lines; the ingest's counters come from the heartbeat (dev status).
    await cli(['dev', 'up', '--detach', '--mqtt-port', '0', '--service-port', '0', '--summary-interval', '0s', '-o', 'json'])
    const upMs = Number(process.hrtime.bigint() - started) / 1e6
    const stackFile = JSON.parse(await readFile(join(home, 'dev', 'stack.json'), 'utf8'))
    const pgPid = Number((await readFile(join(stackFile.dataDir, 'pgdata', 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0]) || undefined
    record = {...stackFile, postgresPid: pgPid}
    const dist = join(getAppRoot(), 'dist')
    return {
      home, dist, record, upMs, caDir: join(home, 'ca'),
      passphrase: (await readFile(join(home, 'ca', 'dev-passphrase'), 'utf8')).trim(),
      /** What the broker logged about refused connections (authentication, TLS; the rate limit's CONNACK 3 is not logged). */
      brokerLog: async () => {
        const lines = (await readFile(join(home, 'dev', 'logs', 'broker.log'), 'utf8').catch(() => '')).split('\n')
        const count = (re) => lines.filter((l) => re.test(l)).length
        return {refused: count(/ refused /), tls: count(/TLS (refused|handshake failed)/), last: lines.filter((l) => / refused |TLS /.test(l)).slice(-3)}
      },
      /**
       * The stack's own counters from its heartbeat file (what `dev status` shows, rewritten every
       * second; read directly, so no probe connections): ingest messages, points, pending points, lag,
       * failures; broker connections.
       */
      status: async () => {
        const beat = JSON.parse(await readFile(join(home, 'dev', 'heartbeat.json'), 'utf8').catch(() => '{}'))
        return {ingest: beat.ingest ?? null, connections: beat.connections ?? null}
      },
      stop: async () => {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
        await stop()
        process.off('exit', onExit)
      },
    }
  } catch (error) {
    await stop()
    throw error
  }
}
