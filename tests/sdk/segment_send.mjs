// Sends events to an Abacus collector with the real Segment library (@segment/analytics-node,
// pinned in package.json), pointed at the collector with its host option. Prints the messageIds
// of the events it delivered, one per line; exits non-zero when the library reports an error.
// Usage: node segment_send.mjs BASE_URL WRITE_KEY COUNT
import { Analytics } from '@segment/analytics-node'

const [base, writeKey, countText] = process.argv.slice(2)
const count = Number(countText)
const analytics = new Analytics({ writeKey, host: base, maxEventsInBatch: 50, flushInterval: 200 })
const errors = []
analytics.on('error', (err) => errors.push(err))
const delivered = []
const sends = []
for (let i = 0; i < count; i++) {
  const userId = `user-${i % 10}`
  const event = i % 2 === 0
    ? { userId, event: 'Experiment Viewed',
        properties: { experiment_id: 'checkout', variation_id: i % 4 === 0 ? 'control' : 'treatment' } }
    : { userId, event: 'Order Completed', properties: { revenue: i + 0.5 } }
  sends.push(new Promise((resolve) => {
    analytics.track(event, (err, ctx) => {
      if (err) errors.push(err)
      else delivered.push(ctx.event.messageId)
      resolve()
    })
  }))
}
await Promise.all(sends)
await analytics.closeAndFlush()
if (errors.length > 0) {
  console.error('segment library errors:', errors.map(String).join('; '))
  process.exit(1)
}
console.log(delivered.join('\n'))
