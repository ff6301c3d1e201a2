import type {View} from '../output.js'
import type {Device} from '../../registry/device.js'
import type {DevicePage} from '../../registry/store.js'

const columns: View<Device>['columns'] = [
  {header: 'DEVICE_ID', get: (d) => d.device_id},
  {header: 'TYPE', get: (d) => d.device_type},
  {header: 'STATUS', get: (d) => d.status},
  {header: 'FIRMWARE', get: (d) => d.firmware_version},
  {header: 'OWNER', get: (d) => d.owner_user_id},
  {header: 'LABELS', get: (d) => d.labels},
  {header: 'LAST_SEEN', get: (d) => d.last_seen_at},
]

export const deviceView: View<Device> = {rows: (r) => [r as Device], columns, name: (d) => `device/${d.device_id}`}
export const devicePageView: View<Device> = {rows: (r) => (r as DevicePage).items, columns, name: (d) => `device/${d.device_id}`}
