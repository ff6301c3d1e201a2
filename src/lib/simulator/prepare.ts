import {notFound} from '../core/errors.js'
import type {Database} from '../db/pool.js'
import {issueDeviceCertificates} from '../pki/index.js'
import {importDevices, toDeviceInput} from '../registry/index.js'

export interface SimulationPlan {
  /** Identities, with the type and the firmware each device starts running (OTA checks both). */
  devices: Array<{id: string; cert: string; key: string; type: string; firmware?: string}>
  registered: number
}

/** `sim-0000` … : zero-padded so ids sort in creation order. */
export function simulatedIds(prefix: string, count: number): string[] {
  const width = Math.max(4, String(count - 1).length)
  return Array.from({length: count}, (_, i) => `${prefix}${String(i).padStart(width, '0')}`)
}

/**
 * Register the virtual devices (with --register; existing ones are kept) and issue each a fresh
 * certificate in bulk. Keys stay in memory: a simulated device's identity lives as long as the run
 * (a new certificate supersedes the previous run's when the device connects).
 */
export async function prepareSimulation(db: Database, options: {caDir: string; passphrase: string; prefix: string; count: number; type: string; firmware?: string; register: boolean}): Promise<SimulationPlan> {
  const ids = simulatedIds(options.prefix, options.count)
  let registered = 0
  if (options.register) {
    const rows = ids.map((id, i) => ({line: i + 1, device: toDeviceInput({device_id: id, device_type: options.type, labels: {simulated: 'true'}, ...(options.firmware ? {firmware_version: options.firmware} : {})})}))
    registered = (await importDevices(db, rows, 'skip')).inserted
  } else {
    const {rows} = await db.pool.query<{n: string}>("SELECT count(*) AS n FROM devices WHERE device_id = ANY($1::text[]) AND status <> 'deprovisioned'", [ids])
    const missing = ids.length - Number(rows[0]!.n)
    if (missing > 0) {
      throw notFound('E_SIM_DEVICES', `${missing} of the ${ids.length} devices ${ids[0]}…${ids.at(-1)} are not registered`, {hint: 'add --register to register them (of --type, reporting --firmware)'})
    }
  }
  const issued = await issueDeviceCertificates(db, {caDir: options.caDir, passphrase: options.passphrase, deviceIds: ids, days: 7})
  const registry = await registeredFirmware(db, ids)
  // `--register --firmware V` says what the devices run; otherwise the registry knows (a device kept from
  // an earlier run may have been updated since).
  const firmwareOf = (id: string) => (options.register && options.firmware) || registry.get(id)?.firmware
  return {registered, devices: issued.map((c) => {
    const id = c.record.subject_name
    return {id, cert: c.certificate + c.chain, key: c.private_key!, type: registry.get(id)?.type ?? options.type, firmware: firmwareOf(id)}
  })}
}

async function registeredFirmware(db: Database, ids: string[]): Promise<Map<string, {type: string; firmware?: string}>> {
  const {rows} = await db.pool.query<{device_id: string; device_type: string; firmware_version: string | null}>(
    'SELECT device_id, device_type, firmware_version FROM devices WHERE device_id = ANY($1::text[])', [ids])
  return new Map(rows.map((r) => [r.device_id, {type: r.device_type, firmware: r.firmware_version ?? undefined}]))
}
