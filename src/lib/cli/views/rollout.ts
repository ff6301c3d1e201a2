import type {View} from '../output.js'
import type {FirmwareRecord, SigningKeyInfo, VerifyResult} from '../../firmware/index.js'
import type {RolloutRecord, RolloutStatus} from '../../rollout/index.js'

const pct = (x: number) => `${Math.round(x * 1000) / 10}%`

export const keyView: View<SigningKeyInfo> = {
  rows: (r) => [r as SigningKeyInfo],
  name: (k) => `key/${k.key_id}`,
  columns: [{header: 'KEY_ID', get: (k) => k.key_id}, {header: 'ALGORITHM', get: (k) => k.algorithm}, {header: 'PUBLIC_KEY', get: (k) => k.public_key_file}],
}

export const firmwareView: View<FirmwareRecord> = {
  rows: (r) => (Array.isArray(r) ? r : [r]) as FirmwareRecord[],
  name: (f) => `firmware/${f.device_type}@${f.version}`,
  columns: [
    {header: 'TYPE', get: (f) => f.device_type}, {header: 'VERSION', get: (f) => f.version}, {header: 'CODE', get: (f) => f.version_code},
    {header: 'SIZE', get: (f) => f.size}, {header: 'SHA256', get: (f) => f.sha256.slice(0, 16) + '…'}, {header: 'KEY', get: (f) => f.key_id},
    {header: 'CREATED', get: (f) => new Date(f.created_at).toISOString()},
  ],
}

export const verifyView: View<VerifyResult> = {
  rows: (r) => [r as VerifyResult],
  name: (v) => `firmware/${v.firmware.device_type}@${v.firmware.version}`,
  columns: [{header: 'FILE', get: (v) => v.file}, {header: 'FIRMWARE', get: (v) => `${v.firmware.device_type}@${v.firmware.version}`},
    {header: 'SHA256', get: (v) => v.sha256}, {header: 'SIGNATURE', get: (v) => `${v.signature} (${v.firmware.key_id})`}],
}

export const rolloutView: View<RolloutRecord> = {
  rows: (r) => (Array.isArray(r) ? r : [r]) as RolloutRecord[],
  name: (r) => `rollout/${r.name}`,
  columns: [
    {header: 'NAME', get: (r) => r.name}, {header: 'FIRMWARE', get: (r) => `${r.device_type}@${r.version}`}, {header: 'STATE', get: (r) => r.state},
    {header: 'STAGE', get: (r) => `${r.stage + 1}/${r.stages.length} (${r.stages[r.stage]}%)`}, {header: 'TARGETS', get: (r) => r.target_count},
    {header: 'REASON', get: (r) => r.reason ?? ''},
  ],
}

export const rolloutStatusView: View<RolloutStatus> = {
  rows: (r) => [r as RolloutStatus],
  name: (s) => `rollout/${s.name}`,
  columns: [
    {header: 'NAME', get: (s) => s.name}, {header: 'STATE', get: (s) => s.state}, {header: 'STAGE', get: (s) => `${s.stage}/${s.stages.length} (${s.stage_percent}%)`},
    {header: 'SUCCEEDED', get: (s) => s.counts.succeeded}, {header: 'FAILED', get: (s) => s.counts.failed + s.counts['timed-out']},
    {header: 'IN_FLIGHT', get: (s) => s.counts.dispatched + s.counts.downloading + s.counts.installing}, {header: 'PENDING', get: (s) => s.counts.pending},
    {header: 'FAILURE_RATE', get: (s) => `${pct(s.failure_rate)} / ${pct(s.max_failure_rate)}`},
    {header: 'SOAK_LEFT', get: (s) => (s.soak_left_s === null ? '' : `${s.soak_left_s}s`)}, {header: 'ETA', get: (s) => (s.eta_s === null ? '' : `${s.eta_s}s`)},
  ],
}

/** The human status: a bar per stage on stderr (a TTY), counts per state. */
export function statusLines(s: RolloutStatus, width = 30): string[] {
  const lines = [`rollout ${s.name}: ${s.firmware}, ${s.state}, stage ${s.stage}/${s.stages.length}; failure rate ${pct(s.failure_rate)} of ${s.decided} decided (abort at ${pct(s.max_failure_rate)} after ${s.min_decided})`]
  for (const st of s.per_stage) {
    const done = st.counts.succeeded + st.counts['already-installed']
    const bad = st.counts.failed + st.counts['timed-out'] + st.counts.rejected + st.counts['rolled-back']
    const fill = st.size === 0 ? 0 : Math.round((done / st.size) * width)
    const fail = st.size === 0 ? 0 : Math.round((bad / st.size) * width)
    lines.push(`  stage ${st.stage} ${String(st.percent).padStart(3)}% [${'#'.repeat(fill)}${'x'.repeat(Math.min(fail, width - fill))}${'.'.repeat(Math.max(0, width - fill - fail))}] ${done}/${st.size} ok, ${bad} failed`)
  }
  if (s.soak_left_s !== null) lines.push(`  soaking: ${s.soak_left_s}s left`)
  if (s.waiting) lines.push(`  waiting: ${s.waiting}`)
  if (s.reason) lines.push(`  reason: ${s.reason}`)
  return lines
}
