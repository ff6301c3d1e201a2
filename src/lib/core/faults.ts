/**
 * Fault points for crash tests: `IOTCTL_FAULTS=apply.after_commit:crash` makes `faultPoint('apply.after_commit')`
 * kill the process with SIGKILL (exit 137), the way a power cut or the OOM killer would: no finally
 * blocks, no exit hooks. Unset (always, outside tests), a fault point costs one environment lookup.
 */
export function faultPoint(name: string): void {
  const spec = process.env.IOTCTL_FAULTS
  if (!spec) return
  for (const entry of spec.split(',')) {
    const [point, action] = entry.trim().split(':')
    if (point === name && action === 'crash') process.kill(process.pid, 'SIGKILL')
  }
}
