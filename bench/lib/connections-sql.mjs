// What the broker asks PostgreSQL per connection: the queries recorded in the broker child
// (connections-broker.mjs), shown with their plans. EXPLAIN ANALYZE runs each one with the last
// values the broker used, inside a transaction that is rolled back (the supersede UPDATE changes
// nothing either way, but a benchmark must not write).

/** "SELECT c.status, d.status … FROM certificates c …" → a one-line label of at most `max` characters. */
export const sqlLabel = (text, max = 90) => {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat
}

function planNodes(node, out = []) {
  const on = node['Relation Name'] ? ` on ${node['Relation Name']}` : ''
  const via = node['Index Name'] ? ` using ${node['Index Name']}` : ''
  const removed = node['Rows Removed by Filter'] ? ` (${node['Rows Removed by Filter']} rows removed by filter)` : ''
  out.push(`${node['Node Type']}${via}${on}${removed}`)
  for (const child of node.Plans ?? []) planNodes(child, out)
  return out
}

/** [{text, plan: 'Seq Scan on certificates (…) → …', executionMs}] for every recorded query. */
export async function explainQueries(pool, queries) {
  const client = await pool.connect()
  const explained = []
  try {
    for (const q of queries) {
      await client.query('BEGIN')
      try {
        const {rows} = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${q.text}`, q.values)
        const [top] = rows[0]['QUERY PLAN']
        explained.push({text: q.text, plan: planNodes(top.Plan).join(' → '), executionMs: top['Execution Time']})
      } catch (error) {
        explained.push({text: q.text, plan: `EXPLAIN failed: ${error.message}`, executionMs: NaN})
      } finally {
        await client.query('ROLLBACK')
      }
    }
  } finally {
    client.release()
  }
  return explained
}
