// What-if experiments for the ingest benchmark (--group-commit): change the BEHAVIOUR of a running
// TelemetryIngest (dist/lib/telemetry/ingest.js) at runtime, to measure a proposed src change before
// anyone makes it. Figures taken with these are NOT those of iotctl as built.

/**
 * Group commit: never cut a batch while a write is in flight. TelemetryIngest today cuts a batch
 * every `maxDelayMs` (20 ms) or `maxPoints` (2,000) and queues it behind the running write, so under
 * a backlog the writer commits many small batches one after the other. Here, while a write runs,
 * messages keep collecting; when it commits, everything waiting (up to `capPoints`) goes in the next
 * transaction. Same transaction per batch, same "resolve after commit", same retries (write() is the
 * original). Relies on the compiled class's field names (waiting, waitingPoints, timer, flushing,
 * waitingSince, writingSince, write): checked below, so a renamed field fails loudly.
 */
export function groupCommit(ingest, capPoints = 20_000) {
  for (const field of ['waiting', 'waitingPoints', 'flushing', 'writingSince']) {
    if (!(field in ingest)) throw new Error(`--group-commit: TelemetryIngest has no field ${field}; the what-if no longer matches dist/`)
  }
  let writing = false
  ingest.flush = function flush() {
    clearTimeout(this.timer)
    this.timer = undefined
    if (writing || this.waiting.length === 0) return this.flushing
    let points = 0
    let n = 0
    while (n < this.waiting.length && (n === 0 || points + this.waiting[n].points.length <= capPoints)) points += this.waiting[n++].points.length
    const batch = this.waiting.splice(0, n)
    this.waitingPoints -= points
    this.writingSince.push(this.waitingSince ?? Date.now())
    this.waitingSince = this.waiting.length > 0 ? Date.now() : undefined
    writing = true
    this.flushing = this.write(batch).then(() => {
      writing = false
      return this.waiting.length > 0 ? this.flush() : undefined
    })
    return this.flushing
  }
  return ingest
}
