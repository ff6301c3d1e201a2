import {describe, expect, it} from 'vitest'
import {checkObjects, planApply, planDelete, summarize} from '../../src/lib/manifest/plan.js'
import type {ManifestObject, OperationContext} from '../../src/lib/manifest/types.js'
import type {DeviceLive} from '../../src/lib/manifest/kinds/device.js'

const source = {file: 'f.yaml', dir: '/tmp', at: (path: Array<string | number>) => ({file: 'f.yaml', line: path.length + 1, column: 1})}
const deviceObject = (name: string, spec: Record<string, unknown>, labels: Record<string, string> = {}): ManifestObject =>
  ({kind: 'Device', name, labels, spec: {type: 't', ...spec}, source})
const live = (name: string, over: Partial<DeviceLive> = {}): DeviceLive =>
  ({device_id: name, device_type: 't', owner_user_id: null, firmware_version: null, status: 'active', labels: {}, metadata: {}, ...over})
const ctx = (objects: ManifestObject[]): OperationContext =>
  ({objects, deleting: new Set(), memo: new Map([['Device.certificateOk', new Set<string>()]]), issuer: () => Promise.reject(new Error('no')), actor: 't', now: 0})

describe('planApply (pure)', () => {
  it.each([
    ['absent → create', deviceObject('d', {}), undefined, 'create', true],
    ['equal → unchanged', deviceObject('d', {owner: 1}, {a: 'b'}), live('d', {owner_user_id: 1, labels: {a: 'b'}}), 'unchanged', false],
    ['a label differs → update', deviceObject('d', {}, {a: 'c'}), live('d', {labels: {a: 'b'}}), 'update', true],
    ['owner removed → update', deviceObject('d', {}), live('d', {owner_user_id: 7}), 'update', true],
    ['firmware omitted is not managed → unchanged', deviceObject('d', {}), live('d', {firmware_version: '2.4.0'}), 'unchanged', false],
    ['firmware given and different → update', deviceObject('d', {firmware: '2.5.0'}), live('d', {firmware_version: '2.4.0'}), 'update', true],
    ['empty metadata equals none → unchanged', deviceObject('d', {metadata: {}}), live('d'), 'unchanged', false],
    ['certificate missing → update without a spec change', deviceObject('d', {certificate: {issue: true, out: 'c'}}), live('d'), 'update', false],
  ] as const)('%s', (_name, object, current, action, specChanged) => {
    const entries = planApply([object], new Map([['Device', new Map(current ? [['d', current]] : [])]]), [], ctx([object]))
    expect(entries).toHaveLength(1)
    expect(entries[0]).toMatchObject({kind: 'Device', name: 'd', action, specChanged})
  })

  it('prunes only live names, after the objects, and a deprovisioned device is a conflict (exit 5)', () => {
    const object = deviceObject('keep', {})
    const lives = new Map([['Device', new Map<string, unknown>([['keep', live('keep')], ['old', live('old')], ['gone', live('gone', {status: 'deprovisioned'})]])]])
    const entries = planApply([object], lives, [{kind: 'Device', name: 'old'}, {kind: 'Device', name: 'gone'}, {kind: 'Device', name: 'never'}], ctx([object]))
    expect(entries.map((e) => [e.name, e.action])).toEqual([['keep', 'unchanged'], ['old', 'delete']])
    expect(summarize(entries)).toEqual({created: 0, configured: 0, unchanged: 1, deleted: 1})
    expect(() => planApply([deviceObject('gone', {})], lives, [], ctx([]))).toThrow(expect.objectContaining({exitCode: 5, code: 'E_MANIFEST_CONFLICT'}))
  })

  it('delete: live objects are deleted, absent or deprovisioned ones are not found', () => {
    const lives = new Map([['Device', new Map<string, unknown>([['a', live('a')], ['b', live('b', {status: 'deprovisioned'})]])]])
    expect(planDelete([deviceObject('a', {}), deviceObject('b', {}), deviceObject('c', {})], lives).map((e) => [e.name, e.action]))
      .toEqual([['a', 'delete'], ['b', 'unchanged'], ['c', 'unchanged']])
  })

  it('checkObjects: the same object twice and a missing reference are exit 4 with positions', () => {
    const twice = [deviceObject('d', {}), deviceObject('d', {})]
    expect(() => checkObjects(twice, {has: () => true})).toThrow(/f\.yaml:3:1: metadata\.name: device\/d is declared twice/)
    const ds: ManifestObject = {kind: 'DesiredState', name: 's', labels: {}, spec: {group: 'g', desired: {a: 1}}, source}
    expect(() => checkObjects([ds], {has: () => false})).toThrow(/f\.yaml:3:1: spec\.group: devicegroup\/g does not exist/)
    expect(() => checkObjects([ds], {has: (kind, name) => kind === 'DeviceGroup' && name === 'g'})).not.toThrow()
  })
})
