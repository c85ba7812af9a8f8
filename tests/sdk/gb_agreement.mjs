// The real GrowthBook JavaScript SDK against a running `abacus assign` node:
// 1. local evaluation: the SDK loads /api/features/{clientKey} and, for N generated users,
//    must assign exactly what POST /v1/assign answers, experiment by experiment;
// 2. remote evaluation: for a subset, the SDK in remoteEval mode (POST /api/eval/{clientKey})
//    must agree too.
// Usage: node gb_agreement.mjs BASE_URL CLIENT_KEY EXPERIMENT_KEYS_JSON USERS REMOTE_USERS
// Prints "N passed, N failed" (one check per user and experiment) and exits non-zero on any
// disagreement.
import { GrowthBook } from "@growthbook/growthbook";

const [base, clientKey, keysJson, usersArg, remoteArg] = process.argv.slice(2);
const keys = JSON.parse(keysJson);
const users = Number(usersArg);
const remoteUsers = Number(remoteArg);

// Deterministic attributes: countries, ages, devices; company missing for some (fallback).
function attributesOf(i) {
  const countries = ["FR", "BE", "DE", "US", "JP"];
  const devices = ["ios", "android-14", "android", "web", "androidtv"];
  const a = { id: `user-${i}`, country: countries[i % 5], age: 10 + (i * 7) % 60,
              device: devices[(i * 3) % 5] };
  if (i % 4 !== 0) a.company = `company-${i % 97}`;
  return a;
}

async function served(attrs) {
  const res = await fetch(`${base}/v1/assign`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ unit: attrs.id, attributes: attrs, experiments: keys }),
  });
  if (res.status !== 200) throw new Error(`POST /v1/assign: ${res.status} ${await res.text()}`);
  const body = await res.json();
  return Object.fromEntries(body.assignments.map((a) => [a.experiment, a.variant]));
}

let passed = 0, failed = 0;
function compare(mode, attrs, key, sdkValue, abacusValue) {
  if (sdkValue === abacusValue) { passed++; return; }
  failed++;
  if (failed <= 20)
    console.error(`DISAGREE ${mode} ${key} ${JSON.stringify(attrs)}: sdk=${sdkValue} abacus=${abacusValue}`);
}

const gb = new GrowthBook({ apiHost: base, clientKey });
const init = await gb.init({ timeout: 5000 });
if (!init.success) throw new Error(`SDK could not load features: ${JSON.stringify(init)}`);
for (const key of keys)
  if (!gb.getFeatures()[key]) throw new Error(`feature ${key} missing from the payload`);

let inExperiment = 0;
for (let i = 0; i < users; i++) {
  const attrs = attributesOf(i);
  await gb.setAttributes(attrs);
  const answers = await served(attrs);
  for (const key of keys) {
    const r = gb.evalFeature(key);
    if (r.source === "experiment") inExperiment++;
    compare("local", attrs, key, r.value, answers[key]);
  }
}
gb.destroy();

for (let i = 0; i < remoteUsers; i++) {
  const attrs = attributesOf(i * 37 + 5);
  const remote = new GrowthBook({ apiHost: base, clientKey, remoteEval: true, attributes: attrs,
                                   cacheKeyAttributes: Object.keys(attrs) });
  const r = await remote.init({ timeout: 5000, skipCache: true });
  if (!r.success) throw new Error(`remote eval failed: ${JSON.stringify(r)}`);
  const answers = await served(attrs);
  for (const key of keys) compare("remote", attrs, key, remote.evalFeature(key).value, answers[key]);
  remote.destroy();
}

console.log(`users: ${users} local, ${remoteUsers} remote; sdk experiment assignments: ${inExperiment}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed === (users + remoteUsers) * keys.length ? 0 : 1);
