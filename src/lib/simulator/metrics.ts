import {invalidInput} from '../core/errors.js'

/** `temperature:18..26` — a metric that wanders between bounds. */
export interface MetricSpec {
  name: string
  min: number
  max: number
}

export const DEFAULT_METRICS = 'temperature:18..26,humidity:40..60'

const NUMBER = String.raw`-?\d+(?:\.\d+)?`
const SPEC = new RegExp(`^([A-Za-z_][A-Za-z0-9_.-]{0,63}):(${NUMBER})\\.\\.(${NUMBER})$`)

/** Parse `--metrics temperature:18..26,humidity:40..60` (exit 4 on anything else). */
export function parseMetrics(text: string): MetricSpec[] {
  const specs = text.split(',').map((part) => part.trim()).filter(Boolean).map((part) => {
    const m = SPEC.exec(part)
    const min = m ? Number(m[2]) : NaN
    const max = m ? Number(m[3]) : NaN
    if (!m || !(min < max)) {
      throw invalidInput('E_METRICS', `invalid metric ${JSON.stringify(part)}: expected name:min..max with min < max`, {hint: `e.g. --metrics ${DEFAULT_METRICS}`})
    }
    return {name: m[1]!, min, max}
  })
  if (specs.length === 0) throw invalidInput('E_METRICS', 'no metrics given', {hint: `e.g. --metrics ${DEFAULT_METRICS}`})
  const names = new Set(specs.map((s) => s.name))
  if (names.size !== specs.length) throw invalidInput('E_METRICS', 'a metric is named twice', {hint: 'name each metric once'})
  return specs
}

/**
 * A bounded random walk per metric: each step moves by up to 5% of the range and reflects at the
 * bounds, so values look like a sensor's, not like noise. With probability `anomalyRate` a reading
 * is a spike well outside the range (what anomaly detection should catch).
 */
export class MetricWalk {
  private readonly values: number[]

  constructor(private readonly specs: MetricSpec[], private readonly anomalyRate = 0, private readonly random: () => number = Math.random) {
    this.values = specs.map((s) => s.min + (s.max - s.min) * (0.25 + 0.5 * random()))
  }

  next(): {metrics: Record<string, number>; anomaly: boolean} {
    const metrics: Record<string, number> = {}
    let anomaly = false
    this.specs.forEach((spec, i) => {
      const range = spec.max - spec.min
      let v = this.values[i]! + (this.random() - 0.5) * 0.1 * range
      if (v > spec.max) v = 2 * spec.max - v
      if (v < spec.min) v = 2 * spec.min - v
      this.values[i] = v
      if (this.anomalyRate > 0 && this.random() < this.anomalyRate) {
        anomaly = true
        metrics[spec.name] = round(spec.max + range * (1 + this.random()))
      } else {
        metrics[spec.name] = round(v)
      }
    })
    return {metrics, anomaly}
  }
}

const round = (v: number) => Math.round(v * 100) / 100
