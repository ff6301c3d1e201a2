// Unit costs of the shadow paths, one operation at a time (no concurrency, no connected device):
// wall time and CPU (this process, PostgreSQL) per operation, and the statements each sends. What a
// round trip costs with nothing else in flight; the ceiling a fleet could reach on this machine
// follows from the CPU per operation.
import {cpus} from 'node:os'
import {join} from 'node:path'
import {dist, now} from './shadow-probe.mjs'
import {fmtCount, fmtRate, fmtUp} from './stats.mjs'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function settle(services, before, expected) {
  const deadline = now() + 30_000
  while (services.shadow.stats.deltas - before < expected && now() < deadline) await sleep(2)
}

/**
 * ctx: {report, services, cpu, stackProbe, operatorProbe, operatorDb, setDesired}. `ids`: devices
 * that exist and have no shadow yet.
 */
export async function unitCosts(ctx, allIds, warm = 50) {
  const {report, services, cpu, stackProbe, operatorProbe, operatorDb, setDesired} = ctx
  // The first `warm` devices only warm up (JIT, prepared pools, first plans); the rest are measured.
  const warmIds = allIds.slice(0, warm)
  for (const [i, id] of warmIds.entries()) await setDesired(operatorDb, id, {rt: i, target_temperature: 20, mode: 'heat'})
  for (const [i, id] of warmIds.entries()) {
    await services.shadow.handle(`devices/${id}/shadow/update`, Buffer.from(JSON.stringify({state: {reported: {rt: i, target_temperature: 20, mode: 'heat'}}})))
  }
  const ids = allIds.slice(warm)
  const n = ids.length
  const probes = [stackProbe, operatorProbe]
  const phase = async (label, op) => {
    for (const p of probes) p.reset()
    const before = services.shadow.stats.deltas
    const walls = []
    if (ctx.profileDir) await ctx.profileStart()
    const c0 = cpu.take()
    for (let i = 0; i < n; i++) {
      const t = now()
      await op(ids[i], i)
      walls.push(now() - t)
    }
    await settle(services, before, n) // each operation makes one delta (or one clear) to publish
    const c1 = cpu.take()
    const used = cpu.parts(c0, c1)
    const profile = ctx.profileDir && await ctx.profileStop(join(ctx.profileDir, `costs-${label.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.cpuprofile`))
    const statements = probes.reduce((sum, p) => sum + p.take().statements.reduce((s, k) => s + k.n, 0), 0)
    const w = dist(walls)
    const pg = (used.parts.PostgreSQL ?? 0) / n
    const node = (used.parts['broker process'] ?? 0) / n
    report.line(label, `wall p50 ${fmtUp(w.p50, 2)} ms · p99 ${fmtUp(w.p99, 2)} ms; CPU per operation (its delta publication included): ` +
      `PostgreSQL ${pg.toFixed(2)} ms, this process ${node.toFixed(2)} ms; ${(statements / n).toFixed(1)} SQL statements per operation (BEGIN/COMMIT and the delta read included)`)
    if (profile) {
      report.line('  CPU profile, this process', profile.buckets.slice(0, 8).map((b) => `${b.name} ${Math.round(b.share * 100)} %`).join(', '))
      report.line('', `    top functions (self): ${profile.functions.slice(0, 6).map((f) => `${f.name} ${Math.round(f.share * 100)} %`).join('; ')}`)
    }
    return {pg, node, wall: w}
  }
  const set = await phase(`setDesired() × ${fmtCount(n)}`, (id, i) => setDesired(operatorDb, id, {rt: i, target_temperature: 20, mode: 'heat'}))
  // The device's report, handed to the sync service as the broker would (no MQTT): update tx + update/accepted + the cleared delta.
  const upd = await phase(`sync service: a report × ${fmtCount(n)}`, (id, i) => services.shadow.handle(`devices/${id}/shadow/update`,
    Buffer.from(JSON.stringify({state: {reported: {rt: i, target_temperature: 20, mode: 'heat'}}, clientToken: String(i)}))))
  const perRoundTrip = set.pg + set.node + upd.pg + upd.node
  report.line('one round trip, server side', `${perRoundTrip.toFixed(2)} ms CPU (PostgreSQL ${(set.pg + upd.pg).toFixed(2)} ms) without TLS, MQTT or the device: ` +
    `at most ${fmtRate((cpus().length * 1000) / perRoundTrip)} round trips/s on ${cpus().length} cores if nothing else ran; ` +
    `sequential wall time ${fmtUp(set.wall.p50 + upd.wall.p50, 1)} ms (p50 + p50)`)
  return {set, upd, perRoundTrip}
}
