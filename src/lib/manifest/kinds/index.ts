import type {KindHandler} from '../types.js'
import {desiredStateKind} from './desired-state.js'
import {deviceGroupKind} from './device-group.js'
import {deviceKind} from './device.js'
import {firmwareKind} from './firmware.js'
import {rolloutKind} from './rollout.js'

/** The kind registry: one module per kind, one line here. Apply runs in `order`; deletes in reverse. */
export const KINDS: readonly KindHandler[] = [
  deviceKind,
  deviceGroupKind,
  desiredStateKind,
  firmwareKind,
  rolloutKind,
].sort((a, b) => a.order - b.order)

export const kindNames = () => KINDS.map((k) => k.kind)

export function kindByName(kind: string): KindHandler | undefined {
  return KINDS.find((k) => k.kind === kind)
}

/** `get` accepts the kind (`Device`), its resource (`device`) or an alias (`devices`), in any case. */
export function resolveKind(name: string): KindHandler | undefined {
  const lower = name.toLowerCase()
  return KINDS.find((k) => k.kind.toLowerCase() === lower || k.resource === lower || k.aliases.includes(lower))
}
