import type {PoolClient} from '../db/pool.js'

/**
 * "Did you mean" for unknown devices and metrics. Metric names are few and read whole; device ids
 * may be millions, so candidates come from index probes on the primary key: the ids sorting just
 * before and after the given id, each of its prefixes, and each one-character deletion of it
 * (a few hundred rows at most), ranked by Levenshtein distance in the process.
 */
export async function nearestNames(name: string, candidates: Iterable<string>, count = 3): Promise<string[]> {
  const {distance} = await import('fastest-levenshtein')
  return [...new Set(candidates)]
    .map((candidate) => ({candidate, d: distance(name, candidate)}))
    .sort((a, b) => a.d - b.d || (a.candidate < b.candidate ? -1 : 1))
    .slice(0, count)
    .map((c) => c.candidate)
}

/** Strings whose neighbours in sort order are likely near `id`: prefixes and one-character deletions. */
export function probeStrings(id: string): string[] {
  const probes = new Set<string>()
  for (let n = id.length; n >= 1; n--) probes.add(id.slice(0, n))
  for (let i = 0; i < id.length; i++) probes.add(id.slice(0, i) + id.slice(i + 1))
  probes.delete('')
  return [...probes]
}

export async function deviceCandidates(client: PoolClient, id: string): Promise<string[]> {
  const {rows} = await client.query<{device_id: string}>(`SELECT DISTINCT c.device_id FROM unnest($1::text[]) AS p(probe)
    CROSS JOIN LATERAL (
      (SELECT device_id FROM devices WHERE device_id >= p.probe ORDER BY device_id LIMIT 4)
      UNION ALL
      (SELECT device_id FROM devices WHERE device_id < p.probe ORDER BY device_id DESC LIMIT 2)) c`, [probeStrings(id)])
  return rows.map((r) => r.device_id)
}

/** The metrics one device has reported, by a skip scan over telemetry_1d's primary key (device_id, metric, bucket). */
export async function deviceMetrics(client: PoolClient, device: string): Promise<string[]> {
  const {rows} = await client.query<{metric: string}>(`WITH RECURSIVE m(metric) AS (
      SELECT min(metric) FROM telemetry_1d WHERE device_id = $1
      UNION ALL
      SELECT (SELECT min(metric) FROM telemetry_1d WHERE device_id = $1 AND metric > m.metric) FROM m WHERE m.metric IS NOT NULL)
    SELECT metric FROM m WHERE metric IS NOT NULL LIMIT 10000`, [device])
  return rows.map((r) => r.metric)
}

export async function knownMetrics(client: PoolClient): Promise<string[]> {
  const {rows} = await client.query<{metric: string}>('SELECT metric FROM telemetry_metrics ORDER BY metric LIMIT 100000')
  return rows.map((r) => r.metric)
}
