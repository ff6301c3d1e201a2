import {Flags} from '../../lib/cli/oclif.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {parseDuration} from '../../lib/cli/duration.js'
import {notice} from '../../lib/cli/progress.js'
import {canAnimate} from '../../lib/cli/terminal.js'
import {telemetrySinkFlags} from '../../lib/cli/telemetry-sink-flags.js'
import {checkSinkSelection} from '../../lib/telemetry/index.js'
import {maskUrl} from '../../lib/core/url.js'
import type {StackRecord} from '../../lib/config/stack-record.js'
import {isDetachedChild, startDetached, startDevStack, type RunningStack} from '../../lib/stack/index.js'
import type {DemoResult} from '../../lib/stack/demo.js'
import {ExitCode, IotctlError} from '../../lib/core/errors.js'

export default class DevUp extends BaseCommand<typeof DevUp> {
  static override description = `Start the local development stack: an embedded PostgreSQL with its data under $IOTCTL_HOME/dev/

In the foreground it runs until Ctrl-C, printing every service's log lines and, at a terminal, a live summary
line (connections, messages/s, ingest lag, errors); without a terminal a plain summary line every
--summary-interval. With --detach it starts in the background and returns when ready; the summary lines go
to its log (\`iotctl dev logs stack\`). While it runs, every other command finds it without flags.`
  static override examples = ['<%= config.bin %> dev up --detach', '<%= config.bin %> dev up   # foreground, Ctrl-C stops it',
    '<%= config.bin %> dev up --detach --summary-interval 1m',
    'IOTCTL_INFLUX_TOKEN=… <%= config.bin %> dev up --telemetry-sink postgres,influx --influx-url http://127.0.0.1:8086 --influx-org dev --influx-bucket iot']
  static override flags = {
    ...telemetrySinkFlags,
    detach: Flags.boolean({char: 'd', description: 'run in the background and return once ready'}),
    'db-port': Flags.integer({description: 'PostgreSQL port on 127.0.0.1 (0: reuse the last one, else any free port)', default: 0, min: 0, max: 65_535}),
    'mqtt-port': Flags.integer({description: 'MQTT over TLS port for devices on 127.0.0.1 (0: any free port)', default: 8883, min: 0, max: 65_535}),
    'service-port': Flags.integer({description: 'MQTT over TLS port for services and the CLI (0: any free port)', default: 8884, min: 0, max: 65_535}),
    'max-packet-size': Flags.integer({description: 'largest MQTT packet accepted, in bytes; larger ones close the connection', default: 65_536, min: 128, max: 268_435_455}),
    'summary-interval': Flags.string({description: 'how often a plain summary line is logged when no terminal shows the live one (0s: never)', default: '10s'}),
    demo: Flags.boolean({description: 'run the demo: apply manifests/demo/ (200 devices, groups, desired state, a good and a bad firmware with staged rollouts), start 200 simulated devices, show it live, end with a summary'}),
    'demo-timeout': Flags.string({description: 'with --demo: give up after this long', default: '3m'}),
  }

  async run(): Promise<void> {
    const summaryEveryMs = parseDuration(this.flags['summary-interval'], '--summary-interval')
    if (this.flags.demo) return this.demo(summaryEveryMs)
    const sinks = await this.ctx.sinkSelection(this.flags)
    checkSinkSelection(sinks)
    if (this.flags.detach) {
      // The background process gets the resolved choice; the token goes through its environment.
      const influx = sinks.influx
      const record = await startDetached(['--db-port', String(this.flags['db-port']), '--mqtt-port', String(this.flags['mqtt-port']),
        '--service-port', String(this.flags['service-port']), '--max-packet-size', String(this.flags['max-packet-size']),
        '--summary-interval', this.flags['summary-interval'], '--telemetry-sink', sinks.kinds.join(','),
        ...(influx ? ['--influx-url', influx.url, '--influx-org', influx.org, '--influx-bucket', influx.bucket] : []),
        ...(influx && influx.labels.length > 0 ? ['--influx-labels', influx.labels.join(',')] : [])],
      {env: influx ? {IOTCTL_INFLUX_TOKEN: influx.token} : {}})
      await this.render(summary(record, true), view)
      if (!this.machineOutput) notice(record.alreadyRunning ? 'the dev stack was already running' : 'stop it with `iotctl dev down`')
      return
    }
    // The background process of --detach: its stderr is the stack's log file, which the stack writes itself.
    const background = isDetachedChild()
    const stack = await startDevStack({dbPort: this.flags['db-port'], mqttPort: this.flags['mqtt-port'], servicePort: this.flags['service-port'],
      maxPacketBytes: this.flags['max-packet-size'], summaryEveryMs, echo: background ? undefined : notice, sinks,
      live: !background && canAnimate() ? {write: (text) => process.stderr.write(text), columns: () => process.stderr.columns} : undefined})
    if (!background) {
      await this.render(summary(stack.record, false), view)
      notice('press Ctrl-C to stop')
    }
    const failure = await waitForSignal(stack)
    if (failure) throw failure
  }

  private async demo(summaryEveryMs: number): Promise<void> {
    const stop = new AbortController()
    const onSignal = () => stop.abort()
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    const {runDemoCommand} = await import('../../lib/cli/demo-run.js')
    const result = await runDemoCommand({
      startStack: () => startDevStack({dbPort: this.flags['db-port'], mqttPort: this.flags['mqtt-port'], servicePort: this.flags['service-port'],
        maxPacketBytes: this.flags['max-packet-size'], summaryEveryMs, rolloutTickMs: 500}),
      timeoutMs: parseDuration(this.flags['demo-timeout'], '--demo-timeout'), live: canAnimate(), signal: stop.signal, write: (text) => process.stderr.write(text),
    }).finally(() => {
      process.removeListener('SIGINT', onSignal)
      process.removeListener('SIGTERM', onSignal)
    })
    if (!this.machineOutput) process.stderr.write(`\n${demoReport(result)}`)
    const failure = demoOutcome(result)
    if (failure) throw failure
    await this.render(result, demoView)
  }
}

function demoReport(r: DemoResult): string {
  const lines = [`demo ${r.success ? 'succeeded' : 'did not succeed'} in ${r.elapsed_s}s:`]
  for (const [check, ok] of Object.entries(r.checks)) lines.push(`  ${ok ? '✓' : '✗'} ${check}`)
  for (const ro of r.rollouts) lines.push(`  rollout ${ro.name} (${ro.firmware}): ${ro.state}, stage ${ro.stage}/${ro.stages.length}, ${ro.succeeded} succeeded, ${ro.failed} failed${ro.reason ? ` — ${ro.reason}` : ''}`)
  lines.push('explore (the data stays; `iotctl dev up --detach` brings the stack back):', ...r.explore.map((c) => `  ${c}`))
  return lines.join('\n') + '\n'
}

const demoView = {
  rows: (r: unknown) => [r as DemoResult],
  name: () => 'demo',
  columns: [
    {header: 'SUCCESS', get: (r: DemoResult) => String(r.success)},
    {header: 'SECONDS', get: (r: DemoResult) => r.elapsed_s},
    {header: 'ONLINE', get: (r: DemoResult) => `${r.devices.online}/${r.devices.total}`},
    {header: 'CONVERGED', get: (r: DemoResult) => `${r.shadows.converged}/${r.shadows.total}`},
    {header: 'ROLLOUTS', get: (r: DemoResult) => r.rollouts.map((x) => `${x.name}=${x.state}`).join(' ')},
  ],
}

/** The demo's exit: 0 when every check passed, 8 when it ran out of time, 130 on Ctrl-C, 7 when a check failed. */
function demoOutcome(result: DemoResult): IotctlError | undefined {
  if (result.success) return undefined
  const failed = Object.entries(result.checks).filter(([, ok]) => !ok).map(([name]) => name)
  const code = result.outcome === 'interrupted' ? ExitCode.interrupted : result.outcome === 'timed-out' ? ExitCode.timedOut : ExitCode.rolloutFailed
  return new IotctlError('E_DEMO', code, `the demo ${result.outcome === 'completed' ? 'finished' : result.outcome}${failed.length > 0 ? `; not met: ${failed.join(', ')}` : ''}`, {
    hint: 'see `iotctl dev logs` (the stack is stopped; `iotctl dev up --detach` brings it back with the data)', data: {result},
  })
}

function summary(record: StackRecord, detached: boolean) {
  return {status: 'running', pid: record.pid, detached, database_url: maskUrl(record.databaseUrl),
    mqtt_url: record.broker ? `mqtts://127.0.0.1:${record.broker.devicePort}` : null,
    service_url: record.broker ? `mqtts://127.0.0.1:${record.broker.servicePort}` : null, data_dir: record.dataDir}
}

const view = {
  rows: (r: unknown) => [r as ReturnType<typeof summary>],
  name: () => 'stack/dev',
  columns: [
    {header: 'STATUS', get: (r: ReturnType<typeof summary>) => r.status},
    {header: 'PID', get: (r: ReturnType<typeof summary>) => r.pid},
    {header: 'DATABASE', get: (r: ReturnType<typeof summary>) => r.database_url},
    {header: 'MQTT', get: (r: ReturnType<typeof summary>) => r.mqtt_url},
    {header: 'DATA_DIR', get: (r: ReturnType<typeof summary>) => r.data_dir},
  ],
}

/**
 * Stop cleanly on SIGINT/SIGTERM (PostgreSQL gets a fast shutdown, the record is removed), or when a
 * telemetry sink refused for good: then resolve its error, which the command ends with (exit 6).
 */
async function waitForSignal(stack: RunningStack): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const stop = (reason: string, error?: Error) => void stack.stop(reason).then(() => resolve(error))
    // A signal handler gets (signal, number): pass the name only, never the number as an "error".
    const onSignal = (signal: NodeJS.Signals) => stop(signal)
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    void stack.failed.then((error) => stop('telemetry sink failed', error))
  })
}
