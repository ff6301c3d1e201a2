import {describe, expect, it} from 'vitest'

import {
  commandTransition, decide, dispatchBudget, emptyCounts, rateWindowMs, failureStats, nextTargetState, reachedCount,
  ROLLOUT_STATES, statesAccepting, TARGET_STATES, timeoutVerdict,
  type Counts, type Decision, type RolloutPolicy, type RolloutSnapshot, type RolloutState, type TargetEvent, type TargetState,
} from '../../src/lib/rollout/machine.js'

const EVENTS: TargetEvent[] = ['dispatch', 'downloading', 'installing', 'succeeded', 'failed', 'rejected', 'already-installed',
  'rolled-back', 'timeout', 'unreached', 'health-breach']

/**
 * The allowed transitions, written out by hand from the issue and the doc comments: forward only,
 * late news of an outcome accepted after timed-out / unreached, succeeded leaves only by a rollback or
 * a health breach. Every (state, event) pair not listed here must be refused (undefined).
 */
const ALLOWED: Record<TargetState, Partial<Record<TargetEvent, TargetState>>> = {
  'pending': {dispatch: 'dispatched'},
  'dispatched': {
    'downloading': 'downloading', 'installing': 'installing', 'succeeded': 'succeeded', 'failed': 'failed',
    'rejected': 'rejected', 'already-installed': 'already-installed', 'timeout': 'timed-out', 'unreached': 'unreached',
  },
  'downloading': {installing: 'installing', succeeded: 'succeeded', failed: 'failed', timeout: 'timed-out'},
  'installing': {succeeded: 'succeeded', failed: 'failed', timeout: 'timed-out'},
  'unreached': {
    'downloading': 'downloading', 'installing': 'installing', 'succeeded': 'succeeded', 'failed': 'failed',
    'rejected': 'rejected', 'already-installed': 'already-installed',
  },
  'timed-out': {succeeded: 'succeeded', failed: 'failed'},
  'succeeded': {'rolled-back': 'rolled-back', 'health-breach': 'failed'},
  'failed': {},
  'rolled-back': {},
  'already-installed': {},
  'rejected': {},
}

const counts = (partial: Partial<Counts> = {}): Counts => ({...emptyCounts(), ...partial})

describe('nextTargetState: every (target state × event) pair', () => {
  const pairs = TARGET_STATES.flatMap((state) => EVENTS.map((event) => ({state, event, expected: ALLOWED[state][event]})))

  it('covers all 11 states × 11 events', () => {
    expect(TARGET_STATES).toHaveLength(11)
    expect(pairs).toHaveLength(121)
  })

  it.each(pairs.filter((p) => p.expected !== undefined))('$state --$event--> $expected', ({state, event, expected}) => {
    expect(nextTargetState(state, event)).toBe(expected)
  })

  it.each(pairs.filter((p) => p.expected === undefined))('$state ignores $event', ({state, event}) => {
    expect(nextTargetState(state, event)).toBeUndefined()
  })
})

describe('nextTargetState: the rules behind the table', () => {
  const cases: Array<[string, TargetState, TargetEvent, TargetState | undefined]> = [
    ['a late `downloading` after timed-out is ignored', 'timed-out', 'downloading', undefined],
    ['a late `installing` after timed-out is ignored', 'timed-out', 'installing', undefined],
    ['a timed-out device that later installs did install', 'timed-out', 'succeeded', 'succeeded'],
    ['a timed-out device that later fails did fail', 'timed-out', 'failed', 'failed'],
    ['succeeded never goes back to downloading', 'succeeded', 'downloading', undefined],
    ['succeeded never goes back to installing', 'succeeded', 'installing', undefined],
    ['a redelivered `succeeded` changes nothing', 'succeeded', 'succeeded', undefined],
    ['succeeded is not failed by a late `failed` report', 'succeeded', 'failed', undefined],
    ['succeeded -> rolled-back', 'succeeded', 'rolled-back', 'rolled-back'],
    ['a health breach turns a success into a failure', 'succeeded', 'health-breach', 'failed'],
    ['installing never goes back to downloading', 'installing', 'downloading', undefined],
    ['failed stays failed on a later success', 'failed', 'succeeded', undefined],
    ['rolled-back stays rolled-back on a health breach', 'rolled-back', 'health-breach', undefined],
    ['a health breach does not touch an in-flight target', 'installing', 'health-breach', undefined],
    ['a dispatched target is not dispatched twice', 'dispatched', 'dispatch', undefined],
    ['a finished target is never dispatched again', 'succeeded', 'dispatch', undefined],
    ['pending is not moved by a device report', 'pending', 'succeeded', undefined],
    ['pending does not time out', 'pending', 'timeout', undefined],
    ['an unreached device that comes online downloads', 'unreached', 'downloading', 'downloading'],
    ['only a silent dispatched target becomes unreached', 'downloading', 'unreached', undefined],
  ]
  it.each(cases)('%s', (_name, state, event, expected) => {
    expect(nextTargetState(state, event)).toBe(expected)
  })

  it('no event leads back to pending, and only `dispatch` leads to dispatched', () => {
    for (const state of TARGET_STATES) {
      for (const event of EVENTS) {
        const next = nextTargetState(state, event)
        expect(next).not.toBe('pending')
        if (next === 'dispatched') expect([state, event]).toEqual(['pending', 'dispatch'])
      }
    }
  })
})

describe('statesAccepting: the controller\'s WHERE state = ANY(…)', () => {
  const cases: Array<[TargetEvent, TargetState[]]> = [
    ['dispatch', ['pending']],
    ['downloading', ['dispatched', 'unreached']],
    ['installing', ['dispatched', 'downloading', 'unreached']],
    ['succeeded', ['dispatched', 'downloading', 'installing', 'unreached', 'timed-out']],
    ['failed', ['dispatched', 'downloading', 'installing', 'unreached', 'timed-out']],
    ['rejected', ['dispatched', 'unreached']],
    ['already-installed', ['dispatched', 'unreached']],
    ['rolled-back', ['succeeded']],
    ['timeout', ['dispatched', 'downloading', 'installing']],
    ['unreached', ['dispatched']],
    ['health-breach', ['succeeded']],
  ]
  it.each(cases)('%s <- %j', (event, expected) => {
    expect([...statesAccepting(event)].sort()).toEqual([...expected].sort())
  })
})

describe('failureStats', () => {
  const cases: Array<[string, Partial<Counts>, {failures: number; decided: number; rate: number}]> = [
    ['nothing decided: rate 0, not NaN', {}, {failures: 0, decided: 0, rate: 0}],
    ['only undecided states', {'pending': 3, 'dispatched': 2, 'downloading': 1, 'installing': 1, 'unreached': 4}, {failures: 0, decided: 0, rate: 0}],
    ['rejected and already-installed are neither failures nor decided', {'rejected': 5, 'already-installed': 7}, {failures: 0, decided: 0, rate: 0}],
    ['all succeeded', {succeeded: 8}, {failures: 0, decided: 8, rate: 0}],
    ['failed and timed-out are failures', {'failed': 1, 'timed-out': 1, 'succeeded': 2}, {failures: 2, decided: 4, rate: 0.5}],
    ['rolled-back targets had succeeded: decided, not failed', {'rolled-back': 3, 'failed': 1}, {failures: 1, decided: 4, rate: 0.25}],
    ['all failed', {'failed': 3, 'timed-out': 2}, {failures: 5, decided: 5, rate: 1}],
    ['1 of 20', {failed: 1, succeeded: 19, pending: 100}, {failures: 1, decided: 20, rate: 0.05}],
  ]
  it.each(cases)('%s', (_name, c, expected) => {
    expect(failureStats(counts(c))).toEqual(expected)
  })
})

describe('reachedCount', () => {
  const cases: Array<[string, Partial<Counts>, number]> = [
    ['nobody', {}, 0],
    ['pending, dispatched and unreached are not reached', {pending: 5, dispatched: 4, unreached: 3}, 0],
    ['every answering state counts', {
      'downloading': 1, 'installing': 2, 'succeeded': 4, 'failed': 8, 'timed-out': 16, 'rolled-back': 32, 'already-installed': 64, 'rejected': 128,
    }, 255],
    ['a mix', {pending: 10, dispatched: 10, unreached: 10, succeeded: 7, rejected: 1}, 8],
  ]
  it.each(cases)('%s', (_name, c, expected) => {
    expect(reachedCount(counts(c))).toBe(expected)
  })

  it('each state on its own: reached or not', () => {
    const reached: TargetState[] = ['downloading', 'installing', 'succeeded', 'failed', 'timed-out', 'rolled-back', 'already-installed', 'rejected']
    for (const state of TARGET_STATES) {
      expect([state, reachedCount(counts({[state]: 1}))]).toEqual([state, reached.includes(state) ? 1 : 0])
    }
  })
})

describe('decide', () => {
  const NOW = 1_800_000_000_000
  const policy: RolloutPolicy = {stageCount: 3, soakMs: 60_000, maxFailureRate: 0.05, minDecided: 10, minCoverage: 0.9}
  const snap = (state: RolloutState, c: Partial<Counts>, extra: Partial<RolloutSnapshot> = {}): RolloutSnapshot => {
    const all = counts(c)
    const size = Object.values(all).reduce((a, b) => a + b, 0)
    return {state, stage: 0, counts: all, size, ...extra}
  }
  const soakDone = {soakStartedAt: NOW - 60_000}

  describe('states that decide nothing', () => {
    const terrible: Partial<Counts> = {failed: 50, pending: 10, dispatched: 5}
    it.each(['pending', 'paused', 'completed', 'aborted', 'rolled-back'] as RolloutState[])('%s -> none, even at a 100% failure rate', (state) => {
      expect(decide(snap(state, terrible, soakDone), policy, NOW)).toEqual({action: 'none'})
    })

    it('every rollout state is covered by this suite', () => {
      expect([...ROLLOUT_STATES].sort()).toEqual(['aborted', 'completed', 'paused', 'pending', 'rolled-back', 'running', 'soaking'])
    })
  })

  describe('abort', () => {
    const cases: Array<[string, RolloutState, Partial<Counts>, Partial<RolloutPolicy>, string]> = [
      ['exactly at the threshold (1 of 20 = 5%)', 'running', {failed: 1, succeeded: 19}, {}, 'failure rate 5% (1 of 20 decided) reached the threshold 5%'],
      ['timed-out counts as a failure', 'running', {'timed-out': 1, 'succeeded': 19}, {}, '(1 of 20 decided)'],
      ['above the threshold with pending targets left', 'running', {failed: 3, succeeded: 7, pending: 100}, {}, 'failure rate 30% (3 of 10 decided)'],
      ['above the threshold with targets in flight', 'running', {failed: 5, succeeded: 5, downloading: 3}, {}, '(5 of 10 decided)'],
      ['during the soak, before the soak time is over', 'soaking', {failed: 2, succeeded: 8}, {}, '(2 of 10 decided)'],
      ['exactly at minDecided', 'running', {failed: 10}, {}, '(10 of 10 decided)'],
      ['minDecided 0: the first failure aborts', 'running', {failed: 1, pending: 9}, {minDecided: 0}, '(1 of 1 decided)'],
      ['a 0% threshold: the first failure aborts', 'running', {failed: 1, succeeded: 9}, {maxFailureRate: 0, minDecided: 1}, 'threshold 0%'],
      ['rolled-back and health-failed targets are counted', 'soaking', {'rolled-back': 9, 'failed': 1}, {maxFailureRate: 0.1}, '(1 of 10 decided) reached the threshold 10%'],
    ]
    it.each(cases)('%s', (_name, state, c, p, reason) => {
      const d = decide(snap(state, c, {soakStartedAt: NOW}), {...policy, ...p}, NOW)
      expect(d.action).toBe('abort')
      if (d.action === 'abort') expect(d.reason).toContain(reason)
    })
  })

  describe('no abort', () => {
    const cases: Array<[string, RolloutSnapshot, Partial<RolloutPolicy>, Decision]> = [
      ['just under the threshold (1 of 21)', snap('running', {failed: 1, succeeded: 20}), {}, {action: 'soak'}],
      ['below minDecided, even at 100% failures', snap('running', {failed: 9}), {}, {action: 'soak'}],
      ['below minDecided with pending: keeps dispatching', snap('running', {failed: 5, succeeded: 4, pending: 10}), {}, {action: 'dispatch'}],
      ['nothing decided and minDecided 0', snap('running', {dispatched: 3}), {minDecided: 0}, {action: 'none', waiting: '3 devices updating'}],
      ['a 0% threshold does not abort while nothing failed', snap('running', {succeeded: 10}), {maxFailureRate: 0, minDecided: 1}, {action: 'soak'}],
      ['rejected and already-installed are not failures', snap('running', {'rejected': 10, 'already-installed': 10, 'succeeded': 10}), {}, {action: 'soak'}],
      ['unreached is not a failure', snap('running', {unreached: 30, succeeded: 10}), {}, {action: 'soak'}],
    ]
    it.each(cases)('%s', (_name, s, p, expected) => {
      expect(decide(s, {...policy, ...p}, NOW)).toEqual(expected)
    })
  })

  describe('running', () => {
    const cases: Array<[string, Partial<Counts>, Decision]> = [
      ['pending targets: dispatch', {pending: 5}, {action: 'dispatch'}],
      ['pending and in flight: dispatch more', {pending: 5, dispatched: 3, succeeded: 2}, {action: 'dispatch'}],
      ['one in flight: wait', {dispatched: 1, succeeded: 20}, {action: 'none', waiting: '1 device updating'}],
      ['several in flight: wait, counting dispatched + downloading + installing', {dispatched: 1, downloading: 2, installing: 3, succeeded: 20}, {action: 'none', waiting: '6 devices updating'}],
      ['all decided: soak', {succeeded: 20}, {action: 'soak'}],
      ['all settled, some unreached, rejected, already-installed, timed-out: soak', {
        'succeeded': 20, 'unreached': 3, 'rejected': 1, 'already-installed': 2, 'timed-out': 1,
      }, {action: 'soak'}],
      ['an empty stage: soak', {}, {action: 'soak'}],
    ]
    it.each(cases)('%s', (_name, c, expected) => {
      expect(decide(snap('running', c), policy, NOW)).toEqual(expected)
    })
  })

  describe('soaking', () => {
    const good: Partial<Counts> = {succeeded: 20}
    const cases: Array<[string, RolloutSnapshot, Partial<RolloutPolicy>, Decision]> = [
      ['just started', snap('soaking', good, {soakStartedAt: NOW}), {}, {action: 'none', waiting: 'soaking, 60 s left'}],
      ['half way', snap('soaking', good, {soakStartedAt: NOW - 30_000}), {}, {action: 'none', waiting: 'soaking, 30 s left'}],
      ['1 ms left rounds up to 1 s', snap('soaking', good, {soakStartedAt: NOW - 59_999}), {}, {action: 'none', waiting: 'soaking, 1 s left'}],
      ['exactly at the soak time: advance', snap('soaking', good, {soakStartedAt: NOW - 60_000}), {}, {action: 'advance', toStage: 1}],
      ['long after the soak time: advance', snap('soaking', good, {soakStartedAt: NOW - 3_600_000}), {}, {action: 'advance', toStage: 1}],
      ['zero soak: advance at once', snap('soaking', good, {soakStartedAt: NOW}), {soakMs: 0}, {action: 'advance', toStage: 1}],
      ['middle stage advances to the next', snap('soaking', good, {...soakDone, stage: 1}), {}, {action: 'advance', toStage: 2}],
      ['last stage: complete', snap('soaking', good, {...soakDone, stage: 2}), {}, {action: 'complete'}],
      ['a single-stage rollout completes', snap('soaking', good, soakDone), {stageCount: 1}, {action: 'complete'}],
      ['coverage below minCoverage waits', snap('soaking', {succeeded: 8, unreached: 2}, soakDone), {},
        {action: 'none', waiting: 'coverage 80% below 90%: waiting for unreached devices'}],
      ['dispatched targets hold the stage (they are updating)', snap('soaking', {succeeded: 17, dispatched: 3}, soakDone), {},
        {action: 'none', waiting: '3 devices updating'}],
      ['a device that woke up and installs during the soak holds even the last stage', snap('soaking', {succeeded: 19, installing: 1}, {...soakDone, stage: 2}), {},
        {action: 'none', waiting: '1 device updating'}],
      ['coverage exactly at minCoverage advances', snap('soaking', {succeeded: 9, unreached: 1}, soakDone), {}, {action: 'advance', toStage: 1}],
      ['rejected and already-installed count as reached', snap('soaking', {'succeeded': 5, 'rejected': 2, 'already-installed': 2, 'unreached': 1}, soakDone), {},
        {action: 'advance', toStage: 1}],
      ['coverage is checked after the soak time only', snap('soaking', {succeeded: 1, unreached: 9}, {soakStartedAt: NOW - 1000}), {},
        {action: 'none', waiting: 'soaking, 59 s left'}],
      ['coverage below minCoverage on the last stage does not complete', snap('soaking', {succeeded: 5, unreached: 5}, {...soakDone, stage: 2}), {},
        {action: 'none', waiting: 'coverage 50% below 90%: waiting for unreached devices'}],
      ['an empty stage has full coverage', {state: 'soaking', stage: 0, counts: counts(), size: 0, ...soakDone}, {}, {action: 'advance', toStage: 1}],
    ]
    it.each(cases)('%s', (_name, s, p, expected) => {
      expect(decide(s, {...policy, ...p}, NOW)).toEqual(expected)
    })
  })
})

describe('rateWindowMs', () => {
  it.each([[100, 60_000], [1, 60_000], [0.5, 120_000], [0.1, 600_000]])('%s/min → %s ms', (rate, ms) => expect(rateWindowMs(rate)).toBe(ms))
})

describe('dispatchBudget', () => {
  const cases: Array<[string, Parameters<typeof dispatchBudget>, number]> = [
    ['unlimited: every pending target', [120, undefined, 0], 120],
    ['unlimited ignores recent dispatches', [120, undefined, 10_000], 120],
    ['unlimited is capped per step (default 5000)', [100_000, undefined, 0], 5000],
    ['a custom per-step cap', [100, undefined, 0, 30], 30],
    ['nothing pending', [0, undefined, 0], 0],
    ['rate with nothing dispatched recently: one second\'s worth per step', [500, 100, 0], 2],
    ['6000/min: a hundred per step', [10_000, 6000, 0], 100],
    ['rate minus the last minute\'s dispatches', [500, 6000, 5950], 50],
    ['rate used up exactly', [500, 100, 100], 0],
    ['rate overrun is 0, never negative', [500, 100, 250], 0],
    ['fewer pending than the rate allows', [1, 100, 40], 1],
    ['rate above the per-step cap', [2_000_000, 600_000, 0], 5000],
    ['rate and a custom cap: the smallest wins', [50, 6000, 20, 10], 10],
    ['60/min at the stage start: one, not sixty at once', [500, 60, 0, 5000, 0], 1],
    ['600/min after 10 s of the stage with 98 sent: the ramp allows 3, a step 10', [500, 600, 98, 5000, 10_000], 3],
    ['6000/min after a whole minute with none sent: one second\'s worth', [50_000, 6000, 0, 5000, 120_000], 100],
    ['30/h: one per two-minute window', [10, 0.5, 0, 5000, 300_000], 1],
    ['120/min with two sent in the last second: none now', [100, 120, 2, 5000, 120_000, 2], 0],
    ['120/min with one sent in the last second: one more', [100, 120, 1, 5000, 120_000, 1], 1],
    ['30/h: none while the window holds one', [10, 0.5, 1, 5000, 300_000], 0],
  ]
  it.each(cases)('%s', (_name, args, expected) => {
    expect(dispatchBudget(...args)).toBe(expected)
  })
})

describe('timeoutVerdict', () => {
  const STEP = 30 * 60_000
  const cases: Array<[TargetState, number, boolean, 'timed-out' | 'unreached' | undefined]> = [
    ['dispatched', STEP - 1, false, undefined],
    ['dispatched', STEP - 1, true, undefined],
    ['dispatched', STEP, false, 'unreached'],
    ['dispatched', STEP, true, 'timed-out'],
    ['dispatched', STEP * 10, false, 'unreached'],
    ['downloading', STEP - 1, true, undefined],
    ['downloading', STEP, true, 'timed-out'],
    ['downloading', STEP, false, 'timed-out'],
    ['installing', STEP - 1, false, undefined],
    ['installing', STEP, true, 'timed-out'],
    ['installing', STEP, false, 'timed-out'],
    ...(['pending', 'succeeded', 'failed', 'timed-out', 'rolled-back', 'already-installed', 'rejected', 'unreached'] as TargetState[])
      .flatMap((state): Array<[TargetState, number, boolean, undefined]> => [[state, STEP * 100, false, undefined], [state, STEP * 100, true, undefined]]),
  ]
  it.each(cases)('%s for %i ms, online %s -> %s', (state, since, online, expected) => {
    expect(timeoutVerdict(state, since, STEP, online)).toBe(expected)
  })

  it('every verdict is a transition the target accepts', () => {
    for (const state of TARGET_STATES) {
      for (const online of [true, false]) {
        const verdict = timeoutVerdict(state, STEP, STEP, online)
        if (verdict === undefined) continue
        expect(nextTargetState(state, verdict === 'timed-out' ? 'timeout' : 'unreached')).toBe(verdict)
      }
    }
  })
})

describe('commandTransition: every command × rollout state', () => {
  type Command = Parameters<typeof commandTransition>[1]
  const EXPECTED: Record<Command, Record<RolloutState, RolloutState | undefined>> = {
    start: {'pending': 'running', 'running': undefined, 'soaking': undefined, 'paused': undefined, 'completed': undefined, 'aborted': undefined, 'rolled-back': undefined},
    pause: {'pending': undefined, 'running': 'paused', 'soaking': 'paused', 'paused': undefined, 'completed': undefined, 'aborted': undefined, 'rolled-back': undefined},
    resume: {'pending': undefined, 'running': undefined, 'soaking': undefined, 'paused': 'running', 'completed': undefined, 'aborted': undefined, 'rolled-back': undefined},
    abort: {'pending': 'aborted', 'running': 'aborted', 'soaking': 'aborted', 'paused': 'aborted', 'completed': undefined, 'aborted': undefined, 'rolled-back': undefined},
  }
  const cases = (Object.keys(EXPECTED) as Command[]).flatMap((command) => ROLLOUT_STATES.map((state) => ({command, state, expected: EXPECTED[command][state]})))

  it.each(cases)('$command from $state -> $expected', ({command, state, expected}) => {
    expect(commandTransition(state, command)).toBe(expected)
  })

  const resumes: Array<[RolloutState | undefined, RolloutState]> = [['soaking', 'soaking'], ['running', 'running'], [undefined, 'running']]
  it.each(resumes)('resume of a rollout paused from %s -> %s', (pausedFrom, expected) => {
    expect(commandTransition('paused', 'resume', pausedFrom)).toBe(expected)
  })

  it('pausedFrom does not let resume leave a state other than paused', () => {
    for (const state of ROLLOUT_STATES.filter((s) => s !== 'paused')) {
      expect([state, commandTransition(state, 'resume', 'soaking')]).toEqual([state, undefined])
    }
  })
})
