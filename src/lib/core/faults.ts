/**
 * Named fault points for crash-safety tests: `IOTCTL_FAULTS=rollout.after_dispatch:crash` makes
 * the process die (SIGKILL, no cleanup, as a power cut would) when it reaches that point;
 * `name:throw` throws instead, so an in-process test can interrupt a step at the same place.
 * Several points are separated by commas. Unset, a fault point costs one Map lookup.
 */
export class FaultInjected extends Error {
  constructor(readonly point: string) {
    super(`fault injected at ${point}`)
    this.name = 'FaultInjected'
  }
}

let parsed: {source: string | undefined; points: Map<string, string>} | undefined

function points(): Map<string, string> {
  const source = process.env.IOTCTL_FAULTS
  if (!parsed || parsed.source !== source) {
    const map = new Map<string, string>()
    for (const item of (source ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
      const [name, action = 'crash'] = item.split(':')
      map.set(name!, action)
    }
    parsed = {source, points: map}
    return map
  }
  return parsed!.points
}

export function faultPoint(name: string): void {
  const action = points().get(name)
  if (action === undefined) return
  if (action === 'throw') throw new FaultInjected(name)
  process.stderr.write(`fault injected at ${name}: crashing\n`)
  process.kill(process.pid, 'SIGKILL')
}
