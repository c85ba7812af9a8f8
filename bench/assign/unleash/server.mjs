// Peer for bench/assign: the Unleash proxy (@unleash/proxy) serving 20 feature toggles from a
// bootstrap, with no upstream Unleash server. Usage: node server.mjs PORT
// The toggles mirror bench/assign/twenty.json: enabled, flexibleRollout at 100%, variants
// control/treatment 50/50 sticky on userId, constraints country IN (FR,DE,US), age >= 18,
// plan NOT_IN (free). unleashUrl points at a closed loopback port (discard, 9) so nothing
// leaves the machine; refresh and metrics intervals are an hour so the failing upstream
// calls do not run during a measurement, and the logger is silent.
import { createApp } from '@unleash/proxy';

const port = Number(process.argv[2]);
if (!port) {
  console.error('usage: node server.mjs PORT');
  process.exit(2);
}

const features = Array.from({ length: 20 }, (_, i) => {
  const name = `experiment-${String(i).padStart(2, '0')}`;
  return {
    name,
    type: 'experiment',
    enabled: true,
    project: 'default',
    stale: false,
    impressionData: false,
    strategies: [
      {
        name: 'flexibleRollout',
        parameters: { rollout: '100', stickiness: 'default', groupId: name },
        constraints: [
          { contextName: 'country', operator: 'IN', values: ['FR', 'DE', 'US'] },
          { contextName: 'age', operator: 'NUM_GTE', value: '18' },
          { contextName: 'plan', operator: 'NOT_IN', values: ['free'] },
        ],
      },
    ],
    variants: [
      { name: 'control', weight: 500, weightType: 'variable', stickiness: 'default' },
      { name: 'treatment', weight: 500, weightType: 'variable', stickiness: 'default' },
    ],
  };
});

// In-memory backup store: the default one writes a backup file into the temp directory.
const store = new Map();
const storageProvider = {
  async get(key) { return store.get(key); },
  async set(key, data) { store.set(key, data); },
};
const silent = { debug() {}, info() {}, warn() {}, error() {}, fatal() {} };

const app = createApp({
  unleashUrl: 'http://127.0.0.1:9/api',
  unleashApiToken: 'bench-unused',
  clientKeys: ['bench-key'],
  enableAllEndpoint: true,
  expBootstrap: { data: features },
  storageProvider,
  refreshInterval: 3600 * 1000,
  metricsInterval: 3600 * 1000,
  logger: silent,
});
app.listen(port, '127.0.0.1');
