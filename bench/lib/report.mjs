// Readable blocks on stdout while the benchmark runs, and a Markdown table at the end.
import {loadavg} from 'node:os'

export const verdict = (pass) => (pass === null || pass === undefined ? 'info' : pass ? 'PASS' : 'MISS')

export class Report {
  rows = []

  heading(text) {
    process.stdout.write(`\n=== ${text} ${'='.repeat(Math.max(3, 92 - text.length))}\n`)
    process.stdout.write(`  (load average ${loadavg().map((l) => l.toFixed(2)).join(' ')})\n`)
  }

  line(label, value = '') {
    process.stdout.write(value === '' ? `${label}\n` : `  ${label.padEnd(30)} ${value}\n`)
  }

  command(text) {
    process.stdout.write(`  reproduce: ${text}\n`)
  }

  /** One graded figure: printed now, and kept for the table. `pass` null = information only. */
  goal({id, what, measured, target, pass}) {
    this.rows.push({id, what, measured, target, pass})
    process.stdout.write(`  ${`[${verdict(pass)}]`.padEnd(7)} ${what}: ${measured}${target ? `  (goal ${target})` : ''}\n`)
  }

  markdownTable() {
    const esc = (s) => String(s).replace(/\|/g, '\\|')
    const lines = ['| # | Measurement | Result | Goal | Verdict |', '|---|---|---|---|---|']
    for (const r of this.rows) lines.push(`| ${r.id} | ${esc(r.what)} | ${esc(r.measured)} | ${esc(r.target ?? '—')} | ${r.pass === null ? 'info' : `**${verdict(r.pass)}**`} |`)
    return lines.join('\n')
  }
}

/** Wrap a shell argument in single quotes when it needs it. */
export const shq = (arg) => (/^[\w./:=@%+,-]+$/.test(arg) ? arg : `'${String(arg).replace(/'/g, `'\\''`)}'`)
export const shellLine = (args) => args.map(shq).join(' ')
