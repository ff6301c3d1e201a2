import {invalidInput} from './errors.js'

/**
 * DESIGN.md §3: no `/ + # $` can appear, so an id can never reach into another
 * device's topic subtree (MQTT 3.1.1 §4.7 wildcards, §4.7.2 `$` topics).
 */
export const DEVICE_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/
export const DEVICE_ID_RULE =
  'a device id is 1-64 characters of a-z, 0-9, "_" and "-", starting with a letter or digit (^[a-z0-9][a-z0-9_-]{0,63}$)'

export function isDeviceId(value: string): boolean {
  return DEVICE_ID_PATTERN.test(value)
}

export function assertDeviceId(value: string, where = 'device id'): string {
  if (!isDeviceId(value)) {
    throw invalidInput('E_DEVICE_ID', `invalid ${where} ${JSON.stringify(value)}: ${DEVICE_ID_RULE}`, {
      hint: 'use lower-case letters, digits, "-" or "_", e.g. dev-12345',
    })
  }
  return value
}

/** Names a device may never take: they would shadow service identities (svc-*, admin). */
export function assertNotReservedDeviceId(id: string): string {
  if (id.startsWith('svc-') || id === 'admin' || id.includes('$')) {
    throw invalidInput('E_RESERVED_NAME', `${JSON.stringify(id)} is reserved for services and cannot be a device`, {hint: 'device ids may not be "admin" or start with "svc-"'})
  }
  return id
}
