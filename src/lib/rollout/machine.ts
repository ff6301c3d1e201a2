/**
 * The rollout state machine, pure: given a rollout's state and the counts of its targets, what
 * happens next. The controller (controller.ts) gathers the inputs in a transaction and applies the
 * decision in the same transaction; nothing here touches a clock, a database or a broker.
 */

export const ROLLOUT_STATES = ['pending', 'running', 'soaking', 'paused', 'completed', 'aborted', 'rolled-back'] as const
export type RolloutState = (typeof ROLLOUT_STATES)[number]
export const FINAL_ROLLOUT_STATES: readonly RolloutState[] = ['completed', 'aborted', 'rolled-back']

export const TARGET_STATES = ['pending', 'dispatched', 'downloading', 'installing', 'succeeded', 'failed', 'timed-out',
  'rolled-back', 'already-installed', 'rejected', 'unreached'] as const
export type TargetState = (typeof TARGET_STATES)[number]
export type Counts = Record<TargetState, number>

/** What a device may report on ota/progress (docs/PROTOCOL.md). */
export const REPORTED_STATES = ['downloading', 'installing', 'succeeded', 'failed', 'rejected', 'already-installed', 'rolled-back'] as const
export type ReportedState = (typeof REPORTED_STATES)[number]
export type TargetEvent = ReportedState | 'dispatch' | 'timeout' | 'unreached' | 'health-breach'

export const IN_FLIGHT: readonly TargetState[] = ['dispatched', 'downloading', 'installing']

/**
 * Target transitions. A late or repeated report never moves a target backwards (QoS 1 may
 * redeliver; a device may report `downloading` after the controller timed it out). Late news of an
 * outcome is accepted: a timed-out or unreached device that later installs did install. A health
 * gate breached during the soak turns a success into a failure.
 */
const TARGET_TRANSITIONS: Record<TargetState, Partial<Record<TargetEvent, TargetState>>> = {
  'pending': {dispatch: 'dispatched'},
  'dispatched': {'downloading': 'downloading', 'installing': 'installing', 'succeeded': 'succeeded', 'failed': 'failed', 'rejected': 'rejected',
    'already-installed': 'already-installed', 'timeout': 'timed-out', 'unreached': 'unreached'},
  'downloading': {installing: 'installing', succeeded: 'succeeded', failed: 'failed', timeout: 'timed-out'},
  'installing': {succeeded: 'succeeded', failed: 'failed', timeout: 'timed-out'},
  'unreached': {'downloading': 'downloading', 'installing': 'installing', 'succeeded': 'succeeded', 'failed': 'failed', 'rejected': 'rejected', 'already-installed': 'already-installed'},
  'timed-out': {succeeded: 'succeeded', failed: 'failed'},
  'succeeded': {'rolled-back': 'rolled-back', 'health-breach': 'failed'},
  'failed': {},
  'rolled-back': {},
  'already-installed': {},
  'rejected': {},
}

export function nextTargetState(current: TargetState, event: TargetEvent): TargetState | undefined {
  return TARGET_TRANSITIONS[current][event]
}

/** The states from which `event` moves a target: the controller's `WHERE state = ANY(…)`. */
export function statesAccepting(event: TargetEvent): TargetState[] {
  return TARGET_STATES.filter((s) => TARGET_TRANSITIONS[s][event] !== undefined)
}

export const emptyCounts = (): Counts => Object.fromEntries(TARGET_STATES.map((s) => [s, 0])) as Counts

/** Failures are failed and timed-out targets; decided ones also count successes (rolled-back ones had succeeded). */
export function failureStats(c: Counts): {failures: number; decided: number; rate: number} {
  const failures = c.failed + c['timed-out']
  const decided = failures + c.succeeded + c['rolled-back']
  return {failures, decided, rate: decided === 0 ? 0 : failures / decided}
}

/** Reached: the device answered (or was online and silent: timed-out). Not: pending, in the post, unreached. */
export function reachedCount(c: Counts): number {
  return c.downloading + c.installing + c.succeeded + c.failed + c['timed-out'] + c['rolled-back'] + c['already-installed'] + c.rejected
}

export interface RolloutPolicy {
  stageCount: number
  soakMs: number
  maxFailureRate: number
  minDecided: number
  minCoverage: number
}

export interface RolloutSnapshot {
  state: RolloutState
  /** 0-based index of the current stage. */
  stage: number
  soakStartedAt?: number
  /** Counts over every target of stages 0..stage (the decision is cumulative, as in AWS IoT Jobs). */
  counts: Counts
  /** Number of targets in stages 0..stage. */
  size: number
}

export type Decision =
  | {action: 'none'; waiting?: string}
  | {action: 'dispatch'}
  | {action: 'soak'}
  | {action: 'advance'; toStage: number}
  | {action: 'complete'}
  | {action: 'abort'; reason: string}

export function decide(s: RolloutSnapshot, p: RolloutPolicy, now: number): Decision {
  if (s.state !== 'running' && s.state !== 'soaking') return {action: 'none'}
  const {failures, decided, rate} = failureStats(s.counts)
  if (decided >= p.minDecided && failures > 0 && rate >= p.maxFailureRate) {
    return {action: 'abort', reason: `failure rate ${percent(rate)} (${failures} of ${decided} decided) reached the threshold ${percent(p.maxFailureRate)}`}
  }
  const inFlight = IN_FLIGHT.reduce((n, state) => n + s.counts[state], 0)
  const updating = {action: 'none', waiting: `${inFlight} device${inFlight === 1 ? '' : 's'} updating`} as const
  if (s.state === 'running') {
    if (s.counts.pending > 0) return {action: 'dispatch'}
    if (inFlight > 0) return updating
    return {action: 'soak'}
  }
  // A device that was unreached may wake up during the soak: the stage never ends while one is updating.
  if (inFlight > 0) return updating
  const soakLeft = (s.soakStartedAt ?? now) + p.soakMs - now
  if (soakLeft > 0) return {action: 'none', waiting: `soaking, ${Math.ceil(soakLeft / 1000)} s left`}
  const coverage = s.size === 0 ? 1 : reachedCount(s.counts) / s.size
  if (coverage < p.minCoverage) return {action: 'none', waiting: `coverage ${percent(coverage)} below ${percent(p.minCoverage)}: waiting for unreached devices`}
  return s.stage + 1 >= p.stageCount ? {action: 'complete'} : {action: 'advance', toStage: s.stage + 1}
}

/** The sliding window --rate is enforced over: a minute, or longer for rates below one a minute (30/h: two minutes). */
export const rateWindowMs = (ratePerMinute: number) => Math.max(60_000, Math.ceil(60_000 / ratePerMinute))

/**
 * How many may be dispatched now: at most --rate's share of any sliding window (rateWindowMs), and
 * within a stage's first window no faster than the rate itself (60/min is one a second, not sixty at
 * once); capped per step to keep transactions short.
 */
export function dispatchBudget(pending: number, ratePerMinute: number | undefined, dispatchedInWindow: number, perStepCap = 5000, msSinceStageStart = Number.POSITIVE_INFINITY, dispatchedLastSecond = 0): number {
  if (ratePerMinute === undefined) return Math.min(pending, perStepCap)
  const windowMs = rateWindowMs(ratePerMinute)
  const perWindow = Math.max(1, Math.floor((ratePerMinute * windowMs) / 60_000))
  const ramp = Math.floor((ratePerMinute * Math.min(windowMs, msSinceStageStart)) / 60_000) + 1
  const allowed = Math.max(0, Math.min(perWindow, ramp) - dispatchedInWindow)
  // At most one second's worth in any second: a step that comes late does not catch up in a burst.
  const burst = Math.max(0, Math.max(1, Math.ceil(ratePerMinute / 60)) - dispatchedLastSecond)
  return Math.min(pending, allowed, burst, perStepCap)
}

/** A target in flight too long: `unreached` when it never answered and its device is offline, else `timed-out`. */
export function timeoutVerdict(state: TargetState, sinceMs: number, stepTimeoutMs: number, deviceOnline: boolean): 'timed-out' | 'unreached' | undefined {
  if (!IN_FLIGHT.includes(state) || sinceMs < stepTimeoutMs) return undefined
  return state === 'dispatched' && !deviceOnline ? 'unreached' : 'timed-out'
}

/** Commands an operator gives; undefined: not allowed from that state. */
export function commandTransition(state: RolloutState, command: 'start' | 'pause' | 'resume' | 'abort', pausedFrom?: RolloutState): RolloutState | undefined {
  switch (command) {
    case 'start': return state === 'pending' ? 'running' : undefined
    case 'pause': return state === 'running' || state === 'soaking' ? 'paused' : undefined
    case 'resume': return state === 'paused' ? (pausedFrom === 'soaking' ? 'soaking' : 'running') : undefined
    case 'abort': return FINAL_ROLLOUT_STATES.includes(state) ? undefined : 'aborted'
  }
}

const percent = (x: number) => `${Math.round(x * 1000) / 10}%`
