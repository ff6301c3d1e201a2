import type {Client} from 'pg'
import {maskUrl} from '../core/url.js'

export interface Listener {
  close(): Promise<void>
}

/**
 * LISTEN on a channel with a dedicated connection (a pooled one would be handed to others). A lost
 * connection is re-established with backoff; `onReconnect` runs after each new LISTEN, since
 * notifications sent meanwhile are gone (PostgreSQL queues them only for listening sessions).
 */
export async function listen(url: string, channel: string, onPayload: (payload: string) => void, options: {log?: (line: string) => void; onReconnect?: () => void} = {}): Promise<Listener> {
  const {default: pg} = await import('pg')
  const log = options.log ?? (() => undefined)
  let client: Client | undefined
  let closed = false
  let attempt = 0
  const open = async (): Promise<void> => {
    const c = new pg.Client({connectionString: url, application_name: 'iotctl-listen'})
    c.on('notification', (message) => {
      if (message.channel === channel && message.payload) onPayload(message.payload)
    })
    c.on('error', (error) => {
      log(`LISTEN ${channel} connection lost (${error.message}); reconnecting`)
      void reopen()
    })
    await c.connect()
    await c.query(`LISTEN ${channel}`)
    client = c
    attempt = 0
  }
  const reopen = async (): Promise<void> => {
    const old = client
    client = undefined
    await old?.end().catch(() => undefined)
    while (!closed) {
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(30_000, 500 * 2 ** attempt++)))
      if (closed) return
      try {
        await open()
        log(`LISTEN ${channel} re-established on ${maskUrl(url)}`)
        options.onReconnect?.()
        return
      } catch (error) {
        log(`LISTEN ${channel}: ${(error as Error).message}`)
      }
    }
  }
  await open()
  return {
    close: async () => {
      closed = true
      await client?.end().catch(() => undefined)
    },
  }
}
