import {describe, expect, it} from 'vitest'

import {
  applyUpdate, deltaMessage, emptyDocument, oldestPending, parseUpdate, patchFromAssignments,
  type JsonObject, type Metadata, type ShadowDocument, type ShadowLimits, type ShadowUpdate,
} from '../../src/lib/shadow/document.js'

// Clock readings in milliseconds and, by hand, the epoch seconds the metadata should carry.
const T0 = 1_700_000_000_999 // -> 1_700_000_000
const T1 = 1_700_000_060_500 // -> 1_700_000_060
const T2 = 1_700_000_120_000 // -> 1_700_000_120
const S0 = 1_700_000_000
const S1 = 1_700_000_060
const S2 = 1_700_000_120

type Step = [now: number, state: ShadowUpdate['state']]

/** Set-up only: apply accepted updates in order (expected values are never computed this way). */
function run(steps: Step[], start: ShadowDocument = emptyDocument()): ShadowDocument {
  let document = start
  for (const [now, state] of steps) {
    const result = applyUpdate(document, {state}, now)
    if (!result.ok) throw new Error(`set-up update rejected: ${result.message}`)
    document = result.document
  }
  return document
}

const ts = (timestamp: number) => ({timestamp})

describe('applyUpdate: merging into desired', () => {
  const cases: Array<{name: string; before: JsonObject; patch: JsonObject; after: JsonObject}> = [
    {name: 'nested merge keeps untouched siblings', before: {light: {color: 'red', level: 5}}, patch: {light: {level: 7}}, after: {light: {color: 'red', level: 7}}},
    {name: 'merge three levels deep', before: {a: {b: {c: 1, d: 2}}}, patch: {a: {b: {d: 3, e: 4}}}, after: {a: {b: {c: 1, d: 3, e: 4}}}},
    {name: 'a new top-level key is added', before: {a: 1}, patch: {b: 2}, after: {a: 1, b: 2}},
    {name: 'null deletes a leaf', before: {a: 1, b: 2}, patch: {a: null}, after: {b: 2}},
    {name: 'null deletes a nested leaf', before: {light: {color: 'red', level: 5}}, patch: {light: {color: null}}, after: {light: {level: 5}}},
    {name: 'null deletes a whole object', before: {light: {color: 'red'}, fan: 'on'}, patch: {light: null}, after: {fan: 'on'}},
    {name: 'null on an absent key changes nothing', before: {a: 1}, patch: {missing: null}, after: {a: 1}},
    {name: 'nulls inside a new object are dropped', before: {}, patch: {a: {b: 1, c: null}}, after: {a: {b: 1}}},
    {name: 'false, 0 and "" are values, not deletions', before: {on: true, n: 5, s: 'x'}, patch: {on: false, n: 0, s: ''}, after: {on: false, n: 0, s: ''}},
    {name: 'an array is replaced whole', before: {list: [1, 2, 3]}, patch: {list: [4]}, after: {list: [4]}},
    {name: 'arrays of objects are not merged by index', before: {list: [{a: 1}, {b: 2}]}, patch: {list: [{c: 3}]}, after: {list: [{c: 3}]}},
    {name: 'an empty array replaces a full one', before: {list: [1]}, patch: {list: []}, after: {list: []}},
    {name: 'type change: value -> object', before: {mode: 'auto'}, patch: {mode: {name: 'cool', fan: 2}}, after: {mode: {name: 'cool', fan: 2}}},
    {name: 'type change: object -> value', before: {mode: {name: 'cool'}}, patch: {mode: 'off'}, after: {mode: 'off'}},
    {name: 'type change: object -> array', before: {a: {b: 1}}, patch: {a: [1]}, after: {a: [1]}},
    {name: 'type change: number -> string', before: {t: 72}, patch: {t: '72'}, after: {t: '72'}},
  ]
  it.each(cases)('$name', ({before, patch, after}) => {
    const start = run([[T0, {desired: before}]])
    const result = applyUpdate(start, {state: {desired: patch}}, T1)
    expect(result.ok).toBe(true)
    if (!result.ok) return
    expect(result.document.state.desired).toEqual(after)
    expect(result.document.version).toBe(2)
  })

  it('`desired: null` clears the whole section and its metadata, reported untouched', () => {
    const start = run([[T0, {desired: {t: 72, mode: 'cool'}, reported: {t: 68}}]])
    const result = applyUpdate(start, {state: {desired: null}}, T1)
    if (!result.ok) throw new Error(result.message)
    expect(result.document.state).toEqual({desired: {}, reported: {t: 68}})
    expect(result.document.metadata).toEqual({desired: {}, reported: {t: ts(S0)}})
    expect(result.applied.state).toEqual({desired: null})
  })

  it('never mutates the document or the update it is given (accepted or rejected)', () => {
    const start = run([[T0, {desired: {light: {color: 'red', level: 5}, list: [1, 2]}, reported: {light: {color: 'blue'}}}]])
    const updates: ShadowUpdate[] = [
      {state: {desired: {light: {level: 7, color: null}, list: [3]}, reported: {light: {color: 'red'}}}},
      {state: {desired: null, reported: {extra: {deep: 1}}}},
      {state: {desired: {x: 1}}, version: 99},
      {state: {reported: {s: 'x'.repeat(9000)}}},
    ]
    for (const update of updates) {
      const documentCopy = structuredClone(start)
      const updateCopy = structuredClone(update)
      applyUpdate(start, update, T1)
      expect(start).toEqual(documentCopy)
      expect(update).toEqual(updateCopy)
    }
  })
})

describe('applyUpdate: delta', () => {
  const cases: Array<{name: string; desired: JsonObject; reported: JsonObject; delta: JsonObject | undefined}> = [
    {name: 'equal states: no delta', desired: {t: 72}, reported: {t: 72}, delta: undefined},
    {name: 'a different value', desired: {t: 72}, reported: {t: 68}, delta: {t: 72}},
    {name: 'a key reported lacks', desired: {t: 72}, reported: {}, delta: {t: 72}},
    {name: 'reported-only keys are not in the delta', desired: {t: 72}, reported: {t: 72, humidity: 40}, delta: undefined},
    {name: 'nested objects compared leaf by leaf', desired: {light: {color: 'red', level: 5}}, reported: {light: {color: 'red', level: 3}}, delta: {light: {level: 5}}},
    {name: 'a nested object reported lacks', desired: {light: {color: 'red'}}, reported: {}, delta: {light: {color: 'red'}}},
    {name: 'three levels deep', desired: {a: {b: {c: 1, d: 2}}}, reported: {a: {b: {c: 1, d: 3}}}, delta: {a: {b: {d: 2}}}},
    {name: 'equal arrays', desired: {list: [1, 2]}, reported: {list: [1, 2]}, delta: undefined},
    {name: 'arrays differing in order are whole in the delta', desired: {list: [1, 2]}, reported: {list: [2, 1]}, delta: {list: [1, 2]}},
    {name: 'an array that is a prefix differs', desired: {list: [1, 2]}, reported: {list: [1, 2, 3]}, delta: {list: [1, 2]}},
    {name: 'type change: number vs string', desired: {t: 72}, reported: {t: '72'}, delta: {t: 72}},
    {name: 'type change: boolean vs number', desired: {on: true}, reported: {on: 1}, delta: {on: true}},
    {name: 'type change: object vs value', desired: {mode: {name: 'cool'}}, reported: {mode: 'cool'}, delta: {mode: {name: 'cool'}}},
    {name: 'type change: value vs object', desired: {mode: 'cool'}, reported: {mode: {name: 'cool'}}, delta: {mode: 'cool'}},
    {name: 'type change: array vs object', desired: {a: [1]}, reported: {a: {x: 1}}, delta: {a: [1]}},
  ]
  it.each(cases)('$name', ({desired, reported, delta}) => {
    const document = run([[T0, {desired, reported}]])
    if (delta === undefined) expect(document.state).not.toHaveProperty('delta')
    else expect(document.state.delta).toEqual(delta)
  })

  const clearing: Array<{name: string; steps: Step[]; delta: JsonObject | undefined}> = [
    {name: 'reported catches up', steps: [[T0, {desired: {t: 72}}], [T1, {reported: {t: 72}}]], delta: undefined},
    {name: 'reported catches up one of two leaves', steps: [[T0, {desired: {a: 1, b: 2}}], [T1, {reported: {a: 1}}]], delta: {b: 2}},
    {name: 'nested leaf catches up last', steps: [[T0, {desired: {light: {color: 'red', level: 5}}, reported: {light: {color: 'red'}}}], [T1, {reported: {light: {level: 5}}}]], delta: undefined},
    {name: 'desired key deleted', steps: [[T0, {desired: {t: 72}}], [T1, {desired: {t: null}}]], delta: undefined},
    {name: 'desired section cleared', steps: [[T0, {desired: {t: 72, mode: 'cool'}}], [T1, {desired: null}]], delta: undefined},
    {name: 'reported drifts away again', steps: [[T0, {desired: {t: 72}, reported: {t: 72}}], [T1, {reported: {t: 70}}]], delta: {t: 72}},
  ]
  it.each(clearing)('delta after updates: $name', ({steps, delta}) => {
    const document = run(steps)
    if (delta === undefined) expect(document.state).not.toHaveProperty('delta')
    else expect(document.state.delta).toEqual(delta)
  })
})

describe('applyUpdate: versions', () => {
  const at3: ShadowDocument = {state: {desired: {t: 72}, reported: {t: 72}}, metadata: {desired: {t: ts(S0)}, reported: {t: ts(S0)}}, version: 3, timestamp: S0}
  const cases: Array<{name: string; version: number | undefined; outcome: {version: number} | {code: 409; currentVersion: number}}> = [
    {name: 'no version: accepted', version: undefined, outcome: {version: 4}},
    {name: 'matching version: accepted', version: 3, outcome: {version: 4}},
    {name: 'older version: conflict', version: 2, outcome: {code: 409, currentVersion: 3}},
    {name: 'newer version: conflict', version: 4, outcome: {code: 409, currentVersion: 3}},
    {name: 'version 0 against version 3: conflict', version: 0, outcome: {code: 409, currentVersion: 3}},
  ]
  it.each(cases)('$name', ({version, outcome}) => {
    const result = applyUpdate(at3, {state: {desired: {t: 70}}, ...(version === undefined ? {} : {version})}, T1)
    if ('code' in outcome) expect(result).toMatchObject({ok: false, code: 409, path: 'version', currentVersion: outcome.currentVersion})
    else expect(result).toMatchObject({ok: true, document: {version: outcome.version, state: {desired: {t: 70}, delta: {t: 70}}}})
  })

  it('every accepted update increments the version, even one that changes nothing', () => {
    let document = emptyDocument()
    const versions: number[] = []
    for (const state of [{desired: {t: 72}}, {desired: {t: 72}}, {reported: {t: 72}}, {desired: null}]) {
      document = run([[T0, state]], document)
      versions.push(document.version)
    }
    expect(versions).toEqual([1, 2, 3, 4])
  })
})

describe('applyUpdate: metadata timestamps', () => {
  const cases: Array<{name: string; steps: Step[]; metadata: {desired: Metadata; reported: Metadata}; timestamp: number}> = [
    {name: 'epoch seconds from `now` in ms (rounded down)', steps: [[T0, {desired: {t: 72}}]], metadata: {desired: {t: ts(S0)}, reported: {}}, timestamp: S0},
    {name: 'a new object gets a timestamp per leaf', steps: [[T0, {desired: {light: {color: 'red', level: 5}}}]], metadata: {desired: {light: {color: ts(S0), level: ts(S0)}}, reported: {}}, timestamp: S0},
    {name: 'a leaf updated later gets the later time, its sibling keeps its own', steps: [[T0, {desired: {light: {color: 'red', level: 5}}}], [T1, {desired: {light: {level: 7}}}]], metadata: {desired: {light: {color: ts(S0), level: ts(S1)}}, reported: {}}, timestamp: S1},
    {name: 'setting the same value again refreshes the time', steps: [[T0, {desired: {t: 72, mode: 'cool'}}], [T1, {desired: {t: 72}}]], metadata: {desired: {t: ts(S1), mode: ts(S0)}, reported: {}}, timestamp: S1},
    {name: 'a deleted key loses its metadata', steps: [[T0, {desired: {light: {color: 'red', level: 5}, fan: 'on'}}], [T1, {desired: {light: {color: null}, fan: null}}]], metadata: {desired: {light: {level: ts(S0)}}, reported: {}}, timestamp: S1},
    {name: 'type change value -> object', steps: [[T0, {reported: {mode: 'cool'}}], [T1, {reported: {mode: {name: 'cool', fan: 2}}}]], metadata: {desired: {}, reported: {mode: {name: ts(S1), fan: ts(S1)}}}, timestamp: S1},
    {name: 'type change object -> value', steps: [[T0, {reported: {mode: {name: 'cool'}}}], [T1, {reported: {mode: 'off'}}]], metadata: {desired: {}, reported: {mode: ts(S1)}}, timestamp: S1},
    {name: 'desired and reported keep separate times', steps: [[T0, {desired: {t: 72}}], [T2, {reported: {t: 72}}]], metadata: {desired: {t: ts(S0)}, reported: {t: ts(S2)}}, timestamp: S2},
  ]
  it.each(cases)('$name', ({steps, metadata, timestamp}) => {
    const document = run(steps)
    expect(document.metadata).toEqual(metadata)
    expect(document.timestamp).toBe(timestamp)
  })

  it('update/accepted carries the update and the metadata of its leaves', () => {
    const start = run([[T0, {desired: {light: {color: 'red'}}}]])
    const result = applyUpdate(start, {state: {desired: {light: {level: 7}}, reported: {t: 68}}}, T1)
    expect(result).toMatchObject({ok: true, applied: {
      state: {desired: {light: {level: 7}}, reported: {t: 68}},
      metadata: {desired: {light: {level: ts(S1)}}, reported: {t: ts(S1)}},
    }})
  })
})

describe('applyUpdate: limits', () => {
  const levels = (n: number): JsonObject => {
    let value: JsonObject = {leaf: 1}
    for (let i = n - 1; i >= 1; i--) value = {[`l${i}`]: value}
    return value
  }
  const custom: ShadowLimits = {maxBytes: 64, maxDepth: 2}
  const cases: Array<{name: string; state: ShadowUpdate['state']; limits?: ShadowLimits; before?: Step[]; reject?: {code: number; path?: string}}> = [
    {name: '6 levels in desired: accepted', state: {desired: levels(6)}},
    {name: '7 levels in desired: 400', state: {desired: levels(7)}, reject: {code: 400, path: 'state.desired.l1.l2.l3.l4.l5.l6'}},
    {name: '7 levels in reported: 400', state: {reported: levels(7)}, reject: {code: 400, path: 'state.reported.l1.l2.l3.l4.l5.l6'}},
    // a > [] > b > c > d > e > f > g: 7 key levels (8 counting the array), however the path is reported
    {name: '7 levels through an array: 400', state: {desired: {a: [{b: {c: {d: {e: {f: {g: 1}}}}}}]}}, reject: {code: 400}},
    {name: 'invalid key name: 400', state: {desired: {$x: 1}}, reject: {code: 400, path: 'state.desired.$x'}},
    {name: 'invalid nested key name: 400', state: {reported: {a: {'b c': 1}}}, reject: {code: 400, path: 'state.reported.a.b c'}},
    {name: '8000 characters: under 8 KiB', state: {desired: {s: 'x'.repeat(8000)}}},
    {name: '8192 characters: over 8 KiB, 413', state: {desired: {s: 'x'.repeat(8192)}}, reject: {code: 413, path: 'state'}},
    {name: 'desired + reported together over 8 KiB in one update: 413', state: {desired: {s: 'x'.repeat(5000)}, reported: {s: 'y'.repeat(5000)}}, reject: {code: 413, path: 'state'}},
    {name: 'reported pushing a stored desired over 8 KiB: 413', before: [[T0, {desired: {s: 'x'.repeat(5000)}}]], state: {reported: {s: 'y'.repeat(5000)}}, reject: {code: 413, path: 'state'}},
    {name: 'deleting keeps an oversized update under: accepted', before: [[T0, {desired: {s: 'x'.repeat(5000)}}]], state: {desired: {s: null}, reported: {s: 'y'.repeat(5000)}}},
    {name: 'custom depth 2: 2 levels accepted', state: {desired: {a: {b: 1}}}, limits: custom},
    {name: 'custom depth 2: 3 levels rejected', state: {desired: {a: {b: {c: 1}}}}, limits: custom, reject: {code: 400, path: 'state.desired.a.b'}},
    {name: 'custom 64 bytes: 64 characters rejected', state: {desired: {s: 'x'.repeat(64)}}, limits: custom, reject: {code: 413, path: 'state'}},
    {name: 'custom 64 bytes: small desired + small reported over together', state: {desired: {s: 'x'.repeat(20)}, reported: {s: 'y'.repeat(20)}}, limits: custom, reject: {code: 413, path: 'state'}},
    {name: 'custom limits replace the defaults (8 KiB no longer applies)', state: {desired: {s: 'x'.repeat(9000)}}, limits: {maxBytes: 16 * 1024, maxDepth: 6}},
  ]
  it.each(cases)('$name', ({state, limits, before, reject}) => {
    const start = run(before ?? [])
    const result = applyUpdate(start, {state}, T1, limits)
    if (reject) expect(result).toMatchObject({ok: false, ...reject})
    else expect(result).toMatchObject({ok: true, document: {version: start.version + 1}})
  })
})

describe('deltaMessage and oldestPending', () => {
  const cases: Array<{name: string; steps: Step[]; message: ReturnType<typeof deltaMessage>; oldest: number | undefined}> = [
    {name: 'empty shadow', steps: [], message: undefined, oldest: undefined},
    {name: 'converged', steps: [[T0, {desired: {t: 72}}], [T1, {reported: {t: 72, humidity: 40}}]], message: undefined, oldest: undefined},
    {name: 'one pending leaf', steps: [[T0, {desired: {t: 72}}]], message: {state: {t: 72}, metadata: {t: ts(S0)}, version: 1, timestamp: S0}, oldest: S0},
    {
      name: 'only the unmet leaves, with their own times',
      steps: [[T0, {desired: {light: {color: 'red', level: 5}, fan: 'on'}}], [T1, {desired: {light: {level: 7}}}], [T2, {reported: {light: {color: 'red'}, fan: 'on'}}]],
      message: {state: {light: {level: 7}}, metadata: {light: {level: ts(S1)}}, version: 3, timestamp: S2},
      oldest: S1,
    },
    {
      name: 'the oldest of several unmet leaves',
      steps: [[T0, {desired: {a: 1}}], [T1, {desired: {b: 2}}], [T2, {reported: {c: 3}}]],
      message: {state: {a: 1, b: 2}, metadata: {a: ts(S0), b: ts(S1)}, version: 3, timestamp: S2},
      oldest: S0,
    },
    {
      name: 'a met leaf no longer counts as pending',
      steps: [[T0, {desired: {a: 1}}], [T1, {desired: {b: 2}}], [T2, {reported: {a: 1}}]],
      message: {state: {b: 2}, metadata: {b: ts(S1)}, version: 3, timestamp: S2},
      oldest: S1,
    },
    {
      name: 'type change: desired object vs reported value',
      steps: [[T0, {desired: {mode: {name: 'cool'}}}], [T1, {reported: {mode: 'cool'}}]],
      message: {state: {mode: {name: 'cool'}}, metadata: {mode: {name: ts(S0)}}, version: 2, timestamp: S1},
      oldest: S0,
    },
    {
      name: 'a state key called "timestamp" is a leaf like any other',
      steps: [[T1, {desired: {clock: {timestamp: 5}}}], [T2, {reported: {clock: {timestamp: 4}}}]],
      message: {state: {clock: {timestamp: 5}}, metadata: {clock: {timestamp: ts(S1)}}, version: 2, timestamp: S2},
      oldest: S1,
    },
  ]
  it.each(cases)('$name', ({steps, message, oldest}) => {
    const document = run(steps)
    expect(deltaMessage(document)).toEqual(message)
    expect(oldestPending(document)).toBe(oldest)
  })
})

describe('parseUpdate', () => {
  const rejected: Array<{name: string; input: unknown; path: string | undefined}> = [
    {name: 'a string', input: 'state', path: undefined},
    {name: 'null', input: null, path: undefined},
    {name: 'an array', input: [{state: {}}], path: undefined},
    {name: 'no state', input: {desired: {t: 72}}, path: 'state'},
    {name: 'state is an array', input: {state: [{desired: {}}]}, path: 'state'},
    {name: 'state is a string', input: {state: 'desired'}, path: 'state'},
    {name: 'state names no section', input: {state: {}}, path: 'state'},
    {name: 'state.delta cannot be written', input: {state: {delta: {t: 72}}}, path: 'state.delta'},
    {name: 'unknown section', input: {state: {desired: {}, wanted: {}}}, path: 'state.wanted'},
    {name: 'desired is an array', input: {state: {desired: [1]}}, path: 'state.desired'},
    {name: 'reported is a number', input: {state: {reported: 5}}, path: 'state.reported'},
    {name: 'negative version', input: {state: {desired: {}}, version: -1}, path: 'version'},
    {name: 'fractional version', input: {state: {desired: {}}, version: 1.5}, path: 'version'},
    {name: 'version as a string', input: {state: {desired: {}}, version: '3'}, path: 'version'},
    {name: 'clientToken as a number', input: {state: {desired: {}}, clientToken: 42}, path: 'clientToken'},
    {name: 'clientToken over 64 characters', input: {state: {desired: {}}, clientToken: 'c'.repeat(65)}, path: 'clientToken'},
  ]
  it.each(rejected)('400 for $name (path $path)', ({input, path}) => {
    const result = parseUpdate(input)
    expect(result).toMatchObject({ok: false, code: 400})
    expect((result as {path?: string}).path).toBe(path)
  })

  const accepted: Array<{name: string; input: unknown; update: ShadowUpdate}> = [
    {name: 'desired only', input: {state: {desired: {t: 72}}}, update: {state: {desired: {t: 72}}}},
    {name: 'reported null, version 0, clientToken', input: {state: {reported: null}, version: 0, clientToken: 'abc'}, update: {state: {reported: null}, version: 0, clientToken: 'abc'}},
    {name: 'a 64-character clientToken', input: {state: {desired: {}}, clientToken: 'c'.repeat(64)}, update: {state: {desired: {}}, clientToken: 'c'.repeat(64)}},
    {name: 'fields outside state are ignored', input: {state: {desired: {a: 1}}, metadata: {x: 1}, timestamp: 5}, update: {state: {desired: {a: 1}}}},
  ]
  it.each(accepted)('accepts $name', ({input, update}) => {
    expect(parseUpdate(input)).toEqual(update)
  })
})

describe('patchFromAssignments', () => {
  const accepted: Array<[string[], JsonObject]> = [
    [['target_temperature=72'], {target_temperature: 72}],
    [['mode=cooling'], {mode: 'cooling'}],
    [['mode="cooling"'], {mode: 'cooling'}],
    [['label=hello world'], {label: 'hello world'}],
    [['offset=-3.5'], {offset: -3.5}],
    [['a.b=1'], {a: {b: 1}}],
    [['a.b=1', 'a.c=2', 'x.y.z=3'], {a: {b: 1, c: 2}, x: {y: {z: 3}}}],
    [['key=null'], {key: null}],
    [['on=true'], {on: true}],
    [['on=false'], {on: false}],
    [['list=[1,2]'], {list: [1, 2]}],
    [['target_temperature=72', 'mode=cooling'], {target_temperature: 72, mode: 'cooling'}],
  ]
  it.each(accepted)('%j -> %j', (assignments, patch) => {
    expect(patchFromAssignments(assignments)).toEqual(patch)
  })

  const rejected: Array<[string, string]> = [
    ['a..b=1', 'a..b'],
    ['$x=1', '$x'],
    ['a.$b=1', 'a.$b'],
    ['a b=1', 'a b'],
    ['=1', '=1'],
  ]
  it.each(rejected)('%j is rejected with path %j', (assignment, path) => {
    expect(patchFromAssignments(['ok=1', assignment])).toMatchObject({ok: false, code: 400, path})
  })

  it('an assignment without "=" is rejected', () => {
    expect(patchFromAssignments(['novalue'])).toMatchObject({ok: false, code: 400})
  })

  it('`key=null` deletes the key when applied', () => {
    const start = run([[T0, {desired: {key: 1, other: 2}}]])
    const result = applyUpdate(start, {state: {desired: patchFromAssignments(['key=null']) as JsonObject}}, T1)
    expect(result).toMatchObject({ok: true, document: {state: {desired: {other: 2}}, metadata: {desired: {other: ts(S0)}}}})
    if (result.ok) expect(result.document.state.desired).not.toHaveProperty('key')
  })
})
