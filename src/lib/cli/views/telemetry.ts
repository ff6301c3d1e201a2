import type {Column, View} from '../output.js'
import type {QueryPoint, QueryResult} from '../../telemetry/query.js'
import type {TierRetention} from '../../telemetry/retention.js'

/** Columns follow the result: raw points (TS, VALUE), buckets (+COUNT), fleet (+DEVICES or DEVICE_ID). */
export function queryView(result: QueryResult): View<QueryPoint> {
  const columns: Column<QueryPoint>[] = []
  if (result.selector !== null && result.every === null) columns.push({header: 'DEVICE_ID', get: (p) => p.device_id})
  columns.push({header: 'TS', get: (p) => p.ts}, {header: 'VALUE', get: (p) => p.value})
  if (result.every !== null) columns.push({header: 'COUNT', get: (p) => p.count})
  if (result.selector !== null && result.every !== null) columns.push({header: 'DEVICES', get: (p) => p.devices})
  return {rows: (r) => (r as QueryResult).points, columns, name: (p) => `point/${p.ts}`}
}

export const retentionView: View<TierRetention> = {
  rows: (r) => r as TierRetention[],
  name: (t) => `retention/${t.tier}`,
  columns: [
    {header: 'TIER', get: (t) => t.tier},
    {header: 'TABLE', get: (t) => t.table},
    {header: 'KEEP', get: (t) => t.keep},
    {header: 'PARTITIONED_BY', get: (t) => t.partitioned_by ?? '-', key: 'partitioned_by'},
    {header: 'PARTITIONS', get: (t) => t.partitions},
    {header: 'OLDEST', get: (t) => t.oldest ?? '-', key: 'oldest'},
    {header: 'EXPIRED', get: (t) => t.expired},
  ],
}

const PLOT_HEIGHT = 10
const PLOT_MAX_WIDTH = 100
const label = (x: number) => String(Number(x.toPrecision(6)))

/**
 * One column per point: the mean of neighbouring points when there are more points than columns,
 * each point repeated when there are few (display only; the numbers are in -o json/csv).
 */
export function fitToWidth(values: number[], width: number): number[] {
  if (values.length <= width) {
    const repeat = Math.max(1, Math.floor(Math.min(width, 60) / values.length))
    return values.flatMap((v) => Array.from({length: repeat}, () => v))
  }
  return Array.from({length: width}, (_, i) => {
    const slice = values.slice(Math.floor((i * values.length) / width), Math.floor(((i + 1) * values.length) / width))
    return slice.reduce((a, b) => a + b, 0) / slice.length
  })
}

/** Axis labels with as many decimals as the range needs (a range of 50 → 1 decimal, of 0.02 → 4). */
function axisFormat(min: number, max: number): (x: number) => string {
  const range = max - min
  const decimals = range === 0 ? 2 : Math.min(6, Math.max(0, 2 - Math.floor(Math.log10(range))))
  return (x) => String(Number(x.toFixed(decimals)))
}

/**
 * A line chart (asciichart, loaded only here) with a title naming the metric, the aggregate and the
 * min/max values, y-axis labels, the first and last timestamps under the x axis, and the time range.
 */
export async function renderPlot(result: QueryResult, columns = 80): Promise<string> {
  if (result.points.length === 0) return ''
  const mod = (await import('asciichart')) as unknown as {plot?: typeof import('asciichart').plot; default?: {plot: typeof import('asciichart').plot}}
  const plot = mod.plot ?? mod.default!.plot
  const values = result.points.map((p) => p.value)
  const [min, max] = [Math.min(...values), Math.max(...values)]
  const format = axisFormat(min, max)
  const pad = Math.max(format(min).length, format(max).length) + 1
  const series = fitToWidth(values, Math.max(10, Math.min(PLOT_MAX_WIDTH, columns) - pad - 2))
  const chart = plot(series, {height: min === max ? 1 : PLOT_HEIGHT, offset: 2, format: (x) => format(x).padStart(pad)})
  const what = result.every === null ? 'raw points' : `${result.agg} per ${result.every}`
  const whose = result.device ?? `devices matching ${result.selector}`
  const first = result.points[0]!.ts
  const last = result.points.at(-1)!.ts
  const xAxis = first === last ? first : `${first}${' '.repeat(Math.max(1, series.length + 1 - first.length - last.length))}${last}`
  const lines = [
    `${result.metric} · ${what} · ${whose} · min ${label(min)} · max ${label(max)}`,
    chart.split('\n').map((line) => line.trimEnd()).join('\n'),
    `${' '.repeat(pad)}${xAxis}`,
    `from ${result.from} to ${result.until} · ${result.points.length} points from ${result.source}` +
      (series.length < values.length ? ` (averaged into ${series.length} columns)` : ''),
  ]
  return lines.join('\n') + '\n'
}
