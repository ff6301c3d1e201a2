import type {KeyObject} from 'node:crypto'
import valid from 'semver/functions/valid.js'
import {openAssignment, type Assignment} from '../firmware/index.js'
import type {FleetCounters, OtaHook, OtaPublish} from './device.js'
import {downloadArtifact} from './ota-download.js'
import {decide, otaRoll, peekAssignmentId, progressMarks, shapeProblem, type OtaReason, type OtaState, type Slots} from './ota-policy.js'

export interface OtaOptions {
  /** The fleet's firmware signing public key; without one every assignment is refused (bad-signature). */
  trustedKey?: KeyObject
  /** PEM of the roots trusted for artifact downloads (the stack's root CA). */
  ca: string
  /** Share of installs whose new image fails to boot three times (then reverted: failed, boot-failed). */
  failureRate: number
  /** Share of assignments the device goes silent on: no report at all (the controller times it out). */
  hangRate: number
  chunkBytes?: number
  retries?: number
  backoffMs?: number
  timeoutMs?: number
  installMs?: number
  rebootMs?: number
}

const DEFAULTS = {chunkBytes: 64 * 1024, retries: 5, backoffMs: 500, timeoutMs: 15_000, installMs: 300, rebootMs: 500}
const BOOT_ATTEMPTS = 3
/**
 * A simulated image that begins with these bytes never boots: a deliberately bad firmware (the demo
 * uploads one) fails the way a real one would, after download and verification, on the device.
 */
export const UNBOOTABLE_IMAGE_MAGIC = Buffer.from('IOTCTL-SIM-UNBOOTABLE')
/** What a device without a recorded version runs: anything released is newer. */
const UNKNOWN_FIRMWARE = '0.0.0'

/** The OTA side of a simulated fleet: shared settings and counters, and one DeviceOta per device. */
export class OtaFleet {
  /** Completed installs per `device@version`: a rollout must install each device exactly once. */
  readonly installs = new Map<string, number>()
  readonly settings: Required<Omit<OtaOptions, 'trustedKey'>> & {trustedKey?: KeyObject}
  private readonly devices = new Map<string, DeviceOta>()

  constructor(options: OtaOptions, readonly counters: FleetCounters, readonly log: (line: string) => void) {
    this.settings = {...DEFAULTS, ...options}
  }

  device(d: {id: string; type: string; firmware?: string}): DeviceOta {
    const running = d.firmware && valid(d.firmware) !== null ? d.firmware : UNKNOWN_FIRMWARE
    const device = new DeviceOta(this, d.id, d.type, running)
    this.devices.set(d.id, device)
    return device
  }

  /** The version each device runs now. */
  firmware(): Map<string, string> {
    return new Map([...this.devices].map(([id, d]) => [id, d.firmware]))
  }
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  const timer = setTimeout(resolve, ms)
  signal.addEventListener('abort', () => {
    clearTimeout(timer)
    resolve()
  }, {once: true})
})

interface Report {
  state: OtaState
  reason?: OtaReason
  detail?: string
  bytes?: number
}

/**
 * One device's A/B firmware: checks an assignment (docs/PROTOCOL.md, in the protocol's order),
 * downloads, verifies, installs into the inactive slot, reboots, reports. Assignments run one at a
 * time; an id seen before is a duplicate (the controller republishes open assignments on connect).
 */
export class DeviceOta implements OtaHook {
  private slots: Slots
  private readonly seen = new Set<string>()
  private queue: Promise<void> = Promise.resolve()
  private readonly stopper = new AbortController()

  constructor(private readonly fleet: OtaFleet, readonly id: string, readonly type: string, running: string) {
    this.slots = {running}
  }

  get firmware(): string {
    return this.slots.running
  }

  onAssignment(raw: Buffer, publish: OtaPublish): void {
    if (this.stopper.signal.aborted) return
    const key = this.fleet.settings.trustedKey
    if (!key) return this.refuse(publish, peekAssignmentId(raw), {state: 'failed', reason: 'bad-signature', detail: 'no firmware signing key is trusted'})
    const opened = openAssignment(raw, key, {id: this.id, type: this.type})
    // Only a verified id is remembered: an unsigned message must not be able to block the real one.
    const verifiedId = opened.ok ? opened.assignment.id : opened.reason === 'malformed' || opened.reason === 'bad-signature' ? undefined : opened.id
    if (verifiedId !== undefined) {
      if (this.seen.has(verifiedId)) return // a duplicate: silently, as every reconnect of a large fleet brings one
      this.seen.add(verifiedId)
    }
    if (!opened.ok) return this.refuse(publish, opened.id, {state: 'failed', reason: opened.reason, detail: opened.detail})
    const problem = shapeProblem(opened.assignment)
    if (problem) return this.refuse(publish, opened.assignment.id, {state: 'failed', reason: 'malformed', detail: problem})
    const assignment = opened.assignment
    this.queue = this.queue.then(() => this.process(assignment, publish)).catch((error: Error) => {
      this.fleet.counters.errors++
      this.fleet.log(`${this.id}: assignment ${assignment.id} failed unexpectedly: ${error.message}`)
    })
  }

  /** Abort a download or reboot in progress; nothing is reported after this. */
  stop(): void {
    this.stopper.abort()
  }

  private async process(a: Assignment, publish: OtaPublish): Promise<void> {
    if (this.stopper.signal.aborted) return
    const decision = decide(a, this.slots)
    if (decision.action === 'report') return this.refuse(publish, a.id, decision)
    if (otaRoll('hang', this.id, a.id) < this.fleet.settings.hangRate) {
      this.fleet.counters.otaHangs++
      return this.fleet.log(`${this.id}: silent on ${a.id} (injected hang)`)
    }
    if (decision.action === 'rollback') {
      this.slots = {running: a.version, inactive: this.slots.running}
      this.fleet.counters.otaRollbacks++
      this.report(publish, a.id, {state: 'rolled-back'})
      return this.announce(publish)
    }
    await this.install(a, publish)
  }

  private async install(a: Assignment, publish: OtaPublish): Promise<void> {
    const s = this.fleet.settings
    const marks = progressMarks(a.size).slice(1)
    this.report(publish, a.id, {state: 'downloading', bytes: 0})
    const result = await downloadArtifact({
      url: a.url!, ca: s.ca, size: a.size, chunkBytes: s.chunkBytes, retries: s.retries, backoffMs: s.backoffMs, timeoutMs: s.timeoutMs,
      signal: this.stopper.signal, log: (line) => this.fleet.log(`${this.id}: ${a.id}: ${line}`),
      onBytes: (bytes) => {
        if (marks.length > 0 && bytes >= marks[0]!) {
          marks.shift()
          this.report(publish, a.id, {state: 'downloading', bytes})
        }
      },
    })
    if (this.stopper.signal.aborted) return
    if (!result.ok) return this.fail(publish, a.id, result.reason, result.detail)
    if (result.sha256 !== a.sha256) return this.fail(publish, a.id, 'checksum-mismatch', `downloaded ${result.sha256}, expected ${a.sha256}`)
    this.report(publish, a.id, {state: 'installing'})
    await sleep(s.installMs, this.stopper.signal)
    if (result.head.subarray(0, UNBOOTABLE_IMAGE_MAGIC.length).equals(UNBOOTABLE_IMAGE_MAGIC) || otaRoll('fail', this.id, a.id) < s.failureRate) {
      return this.bootFailure(a, publish)
    }
    await sleep(s.rebootMs, this.stopper.signal)
    if (this.stopper.signal.aborted) return
    this.slots = {running: a.version, inactive: this.slots.running}
    const key = `${this.id}@${a.version}`
    this.fleet.installs.set(key, (this.fleet.installs.get(key) ?? 0) + 1)
    this.fleet.counters.otaInstalls++
    this.report(publish, a.id, {state: 'succeeded'})
    this.announce(publish)
  }

  /** The new image fails to boot three times; the bootloader falls back to the running slot. */
  private async bootFailure(a: Assignment, publish: OtaPublish): Promise<void> {
    for (let attempt = 1; attempt <= BOOT_ATTEMPTS; attempt++) await sleep(this.fleet.settings.rebootMs, this.stopper.signal)
    if (this.stopper.signal.aborted) return
    this.slots = {running: this.slots.running} // the other slot holds an image that does not boot
    this.fail(publish, a.id, 'boot-failed', `${a.version} failed to boot ${BOOT_ATTEMPTS} times; reverted to ${this.slots.running}`)
  }

  private fail(publish: OtaPublish, id: string, reason: OtaReason, detail: string): void {
    this.fleet.counters.otaFailures++
    this.report(publish, id, {state: 'failed', reason, detail})
  }

  private refuse(publish: OtaPublish, id: string | undefined, r: Report): void {
    if (r.state !== 'already-installed') this.fleet.counters.otaRefusals++
    this.report(publish, id, r)
  }

  private report(publish: OtaPublish, id: string | undefined, r: Report): void {
    if (this.stopper.signal.aborted) return
    publish('ota/progress', {assignment: id ?? null, state: r.state, version: this.slots.running,
      ...(r.reason ? {reason: r.reason} : {}), ...(r.detail ? {detail: r.detail} : {}), ...(r.bytes !== undefined ? {bytes: r.bytes} : {}), ts: Date.now()})
  }

  /** After a new version runs: retained status and the shadow's reported firmware follow it. */
  private announce(publish: OtaPublish): void {
    if (this.stopper.signal.aborted) return
    const firmware = this.slots.running
    publish('status', {state: 'online', firmware, ts: Date.now()}, true)
    publish('shadow/update', {state: {reported: {firmware}}, clientToken: `ota-${Date.now()}`})
  }
}
