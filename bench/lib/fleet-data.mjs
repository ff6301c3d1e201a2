// Synthetic fleets: a CSV for `devices import`, and a fast SQL bulk load for the list benchmark.
// Both draw site (10 cities, ~10% each), type (~1/3 each), tier (80% prod), status (5% offline)
// and firmware (20 versions, 6 of them prereleases) independently per device.
import {writeFile} from 'node:fs/promises'

export const CITIES = ['berlin', 'paris', 'london', 'madrid', 'rome', 'vienna', 'warsaw', 'prague', 'amsterdam', 'lisbon']
export const TYPES = ['thermostat', 'gateway', 'sensor']
export const FIRMWARE_VERSIONS = [
  '1.0.0', '1.0.1', '1.1.0', '1.2.0', '1.2.1', '1.3.0', '2.0.0-beta.1', '2.0.0-rc.1', '2.0.0', '2.1.0',
  '2.2.0', '2.3.0', '2.3.1', '2.4.0', '2.4.1', '2.5.0-rc.1', '2.5.0-rc.2', '2.5.0', '3.0.0-alpha.1', '3.0.0',
]

/** Ids sort like their numbers: dev-000001 … (wider when the fleet needs it). */
export const idWidth = (count) => Math.max(6, String(count).length)
export const deviceId = (i, width) => `dev-${String(i).padStart(width, '0')}`

/** mulberry32: a small deterministic PRNG, so every run imports the same file. */
function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const csvCell = (text) => (/[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text)

export async function writeImportCsv(path, count) {
  const random = prng(0x10_7c_71)
  const pick = (list) => list[Math.floor(random() * list.length)]
  const width = idWidth(count)
  const lines = ['device_id,device_type,owner_user_id,firmware_version,status,labels,metadata']
  for (let i = 1; i <= count; i++) {
    const id = deviceId(i, width)
    const labels = `site=${pick(CITIES)};tier=${random() < 0.8 ? 'prod' : 'test'};rack=r${String(Math.floor(random() * 40)).padStart(2, '0')}`
    const metadata = JSON.stringify({serial: `SN-${id.slice(4)}`, room: `${1 + Math.floor(random() * 9)}.${Math.floor(random() * 40)}`})
    lines.push([id, pick(TYPES), 1 + Math.floor(random() * 5000), pick(FIRMWARE_VERSIONS), random() < 0.05 ? 'offline' : 'active',
      labels, csvCell(metadata)].join(','))
  }
  const text = lines.join('\n') + '\n'
  await writeFile(path, text)
  return Buffer.byteLength(text)
}

const sqlArray = (values) => `ARRAY[${values.map((v) => `'${v}'`).join(',')}]`

/**
 * Load `count` devices straight into `devices` with INSERT … SELECT generate_series, in chunks
 * (progress on stderr). firmware_key comes from the project's firmwareKey() through a small
 * versions → keys table. One 63-bit hash per device supplies every independent draw.
 */
export async function loadFleetSql(pool, count, firmwareKey, {chunk = 100_000, onProgress} = {}) {
  await pool.query('CREATE TABLE bench_firmware (idx int PRIMARY KEY, version text NOT NULL, key text COLLATE "C" NOT NULL)')
  await pool.query('INSERT INTO bench_firmware SELECT * FROM unnest($1::int[], $2::text[], $3::text[])',
    [FIRMWARE_VERSIONS.map((_, i) => i), FIRMWARE_VERSIONS, FIRMWARE_VERSIONS.map((v) => firmwareKey(v))])
  const width = idWidth(count)
  const insert = `INSERT INTO devices (device_id, owner_user_id, device_type, firmware_version, firmware_key, status, labels, metadata)
    SELECT 'dev-' || lpad(g::text, ${width}, '0'),
           1 + (h / 600000) % 5000,
           (${sqlArray(TYPES)})[1 + (h / 10) % 3],
           f.version, f.key,
           CASE WHEN (h / 30) % 20 = 0 THEN 'offline' ELSE 'active' END,
           jsonb_build_object('site', (${sqlArray(CITIES)})[1 + h % 10],
                              'tier', CASE WHEN (h / 12000) % 5 = 0 THEN 'test' ELSE 'prod' END,
                              'rack', 'r' || lpad(((h / 60000) % 40)::text, 2, '0')),
           jsonb_build_object('serial', 'SN-' || lpad(g::text, ${width}, '0'), 'room', (1 + (h / 3000000000) % 9) || '.' || (h / 27000000000) % 40)
    FROM (SELECT g, hashint8extended(g, 42) & 9223372036854775807 AS h FROM generate_series($1::bigint, $2::bigint) AS g) AS s
    JOIN bench_firmware f ON f.idx = (s.h / 600) % 20`
  for (let lo = 1; lo <= count; lo += chunk) {
    const hi = Math.min(count, lo + chunk - 1)
    await pool.query(insert, [lo, hi])
    onProgress?.(hi)
  }
  await pool.query('DROP TABLE bench_firmware')
}
