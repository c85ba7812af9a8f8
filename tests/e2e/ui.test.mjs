// The web UI end to end, in headless Chromium (Debian's chromium through playwright-core), against
// the real `abacus up` that run_e2e.sh started (ABACUS_URL, ABACUS_DATA). Each step asserts what a
// user would see; screenshots of the main pages go to E2E_ARTIFACTS. Any browser dialog (alert,
// confirm) fails the run: the UI never opens one, so a dialog means injected script ran.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.ABACUS_URL;
const DATA = process.env.ABACUS_DATA;
const ART = process.env.E2E_ARTIFACTS;
const ADMIN_KEY = readFileSync(join(DATA, 'admin.key'), 'utf8').trim();
const ADMIN_PW = readFileSync(join(DATA, 'admin.password'), 'utf8').trim();
const dialogs = [];
let step = '';

function check(cond, msg) {
  if (!cond) throw new Error(`${step}: ${msg}`);
}
function eq(got, want, msg) {
  if (got !== want) throw new Error(`${step}: ${msg}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

// The admin API from node with the admin key (for reading back what the UI did).
async function adminApi(method, path, body) {
  const res = await fetch(BASE + path, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_KEY}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, data: text ? JSON.parse(text) : null };
}

async function newPage(context) {
  const page = await context.newPage();
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  page.on('pageerror', (e) => { console.error(`page error: ${e.message}`); });
  if (process.env.E2E_DEBUG) page.on('framenavigated', (f) => console.log('navigated', f.url()));
  if (process.env.E2E_DEBUG) page.on('request', (r) => console.log('request', r.method(), r.url(), r.postData() || ''));
  if (process.env.E2E_DEBUG) page.on('response', (r) => console.log('response', r.status(), r.url()));
  page.on('console', (m) => { if (m.type() === 'error' || process.env.E2E_DEBUG) console.error(`console: ${m.text()}`); });
  return page;
}

async function shot(page, name) {
  if (process.env.E2E_DEBUG) console.log(name, page.url());
  // fullPage screenshots leave Debian's newer Chromium with a viewport that later clicks miss
  await page.screenshot({ path: join(ART, `${name}.png`) });
}

async function login(page, email, password) {
  await page.goto(`${BASE}/`);
  await page.waitForSelector('#login-form');
  await page.fill('#login-form input[name=email]', email);
  await page.fill('#login-form input[name=password]', password);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#experiment-list');
}

// Clicks Save and waits for the experiment page, or fails with the form's error.
async function save(page, then = '#actions') {
  await page.click('#save');
  await page.waitForSelector(`${then}, #save-result .banner, main > .banner.danger`);
  const err = await page.$('#save-result .banner, main > .banner.danger');
  if (err) throw new Error(`${step}: save refused: ${await err.textContent()}`);
}

async function confirmAction(page, action) {
  await page.click(`button[data-action=${action}]`);
  await page.click('[data-confirm-ok]');
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    await run(browser);
  } finally {
    await browser.close();
  }
}

async function run(browser) {
  step = 'security headers';
  const root = await fetch(`${BASE}/`);
  eq(root.status, 200, 'GET /');
  const csp = root.headers.get('content-security-policy') || '';
  check(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline') && csp.includes("frame-ancestors 'none'"), `CSP ${csp}`);
  eq(root.headers.get('x-content-type-options'), 'nosniff', 'nosniff');
  check((root.headers.get('content-type') || '').startsWith('text/html'), 'HTML content type');
  const js = await fetch(`${BASE}/static/js/results-view.js`);
  check((js.headers.get('content-type') || '').startsWith('text/javascript'), 'JS content type');

  step = 'logged out';
  eq((await fetch(`${BASE}/api/v1/experiments`)).status, 401, 'admin API without credentials');

  const ctxA = await browser.newContext({ viewport: { width: 1280, height: 1400 } });
  const a = await newPage(ctxA);
  step = 'log in';
  await a.goto(`${BASE}/`);
  await a.waitForSelector('#login-form');
  await shot(a, '01-login');
  await a.fill('#login-form input[name=email]', 'admin@localhost');
  await a.fill('#login-form input[name=password]', 'wrong password');
  await a.click('#login-form button[type=submit]');
  await a.waitForSelector('#login-form [data-error="401"]');
  await login(a, 'admin@localhost', ADMIN_PW);
  check((await a.textContent('#who')).includes('admin@localhost (admin)'), 'logged-in user shown');
  const cookies = await ctxA.cookies();
  const sc = cookies.find((c) => c.name === 'abacus_session');
  check(sc && sc.httpOnly && sc.sameSite === 'Strict' && sc.path === '/', `session cookie flags ${JSON.stringify(sc)}`);

  step = 'create a metric';
  await a.goto(`${BASE}/#/metrics`);
  await a.waitForSelector('#metric-form');
  await a.fill('#metric-form input[name=key]', 'purchase');
  await a.fill('#metric-form input[name=name]', 'Purchase');
  await a.fill('#metric-form input[name=event]', 'purchase');
  await a.click('#metric-form button[type=submit]');
  await a.waitForSelector('tr[data-key=purchase]');

  step = 'create an experiment with three variants';
  await a.goto(`${BASE}/#/experiments/new`);
  await a.waitForSelector('#experiment-form');
  await a.fill('#experiment-form input[name=key]', 'checkout-e2e');
  await a.fill('#experiment-form input[name=name]', 'Checkout button');
  await a.click('#add-variant');
  const w = a.locator('#experiment-form .v-weight');
  eq(await w.count(), 3, 'variant rows');
  await a.locator('#experiment-form .v-key').nth(2).fill('treatment-b');
  await w.nth(0).fill('50');
  await w.nth(1).fill('30');
  await w.nth(2).fill('30');
  eq(await a.getAttribute('#weight-sum', 'data-ok'), '0', 'sum 110% flagged');
  check((await a.textContent('#weight-sum')).includes('110.00%'), 'sum shown');
  await w.nth(2).fill('20');
  eq(await a.getAttribute('#weight-sum', 'data-ok'), '1', 'sum 100% accepted');
  await a.fill('#experiment-form textarea[name=condition]', '{"country": ');
  check((await a.textContent('#condition-check')).startsWith('not valid'), 'broken condition flagged');
  await a.fill('#experiment-form textarea[name=condition]', '{"country": {"$in": ["DE", "FR"]}}');
  check((await a.textContent('#condition-check')).startsWith('valid'), 'condition accepted');
  await a.click('#add-metric');
  await a.selectOption('#experiment-form select.m-key', 'purchase');
  await a.fill('#experiment-form input[name=planned_sample_size]', '30000');
  await shot(a, '02-experiment-form');
  await save(a, '#actions [data-action=start]');
  let exp = (await adminApi('GET', '/api/v1/experiments/checkout-e2e')).data;
  eq(exp.variants.map((v) => `${v.key}:${v.weight}`).join(','), 'control:0.5,treatment:0.3,treatment-b:0.2', 'stored weights');
  eq(JSON.stringify(exp.condition), '{"country":{"$in":["DE","FR"]}}', 'stored condition');
  eq(exp.metrics[0].key, 'purchase', 'stored metric');

  step = 'start and publish';
  await confirmAction(a, 'start');
  await a.waitForSelector('[data-status=running]');
  await a.goto(`${BASE}/#/snapshots`);
  await a.waitForSelector('#publish');
  const before = Number(await a.textContent('#current-snapshot [data-field=version]'));
  await a.click('#publish');
  await a.waitForFunction((v) => {
    const e = document.querySelector('#current-snapshot [data-field=version]');
    return e && Number(e.textContent) > v;
  }, before);
  await shot(a, '03-snapshots');

  step = 'GET /v1/assign serves it';
  let assigned = null;
  for (let i = 0; i < 100 && !assigned; i++) {
    const r = await fetch(`${BASE}/v1/assign?experiment=checkout-e2e&unit=u-1&attr.country=DE`);
    if (r.status === 200) assigned = await r.json();
    else await new Promise((res) => setTimeout(res, 50));
  }
  check(assigned, 'the node never served checkout-e2e');
  const text = JSON.stringify(assigned);
  check(/"(control|treatment|treatment-b)"/.test(text), `assignment names a variant: ${text}`);

  step = 'two tabs: the second save conflicts';
  const b = await newPage(ctxA);
  await a.goto(`${BASE}/#/experiments/checkout-e2e/edit`);
  await b.goto(`${BASE}/#/experiments/checkout-e2e/edit`);
  await a.waitForSelector('#experiment-form');
  await b.waitForSelector('#experiment-form');
  await a.fill('#experiment-form input[name=name]', 'Checkout button (tab A)');
  await save(a);
  await b.fill('#experiment-form input[name=name]', 'Checkout button (tab B)');
  await b.click('#save');
  await b.waitForSelector('#conflict');
  const conflict = await b.textContent('#conflict');
  check(conflict.includes('Checkout button (tab A)') && conflict.includes('name'), `conflict shows the change: ${conflict}`);
  await shot(b, '04-conflict');
  await b.click('#reload');
  await b.waitForFunction(() => document.querySelector('#experiment-form input[name=name]')?.value === 'Checkout button (tab A)');
  eq((await adminApi('GET', '/api/v1/experiments/checkout-e2e')).data.name, 'Checkout button (tab A)', 'stored name is tab A\'s');
  await b.close();

  step = 'weights of a running experiment warn of a new phase';
  await a.goto(`${BASE}/#/experiments/checkout-e2e/edit`);
  await a.waitForSelector('#experiment-form');
  check(await a.isHidden('#phase-warning'), 'no warning before a change');
  await a.locator('#experiment-form .v-weight').nth(0).fill('40');
  await a.locator('#experiment-form .v-weight').nth(1).fill('40');
  check(await a.isVisible('#phase-warning'), 'warning after a weight change');

  step = 'stop';
  await a.goto(`${BASE}/#/experiments/checkout-e2e`);
  await confirmAction(a, 'stop');
  await a.waitForSelector('[data-status=stopped]');
  await shot(a, '05-experiment-detail');

  step = 'audit log';
  await a.goto(`${BASE}/#/audit?entity_type=experiment&entity_key=checkout-e2e`);
  await a.waitForSelector('#audit-log');
  const actions = await a.$$eval('#audit-log > tbody > tr', (rows) => rows.map((r) => `${r.dataset.action}|${r.querySelector('[data-field=actor]').textContent}`));
  for (const want of ['experiment.create', 'experiment.start', 'experiment.update', 'experiment.stop']) {
    check(actions.includes(`${want}|user:admin@localhost`), `audit has ${want} by the user: ${actions.join(', ')}`);
  }
  check((await a.textContent('#audit-log')).includes('Checkout button (tab A)'), 'audit shows the diff');
  await shot(a, '06-audit');
  await a.goto(`${BASE}/#/audit?entity_type=snapshot`);
  await a.waitForSelector('#audit-log tr[data-action="snapshot.publish"]');

  step = 'XSS: data shows as text';
  const evil = '<img src=x onerror=alert(1)>';
  const evilDesc = '<script>alert(2)</script> and <b>bold</b>';
  await a.goto(`${BASE}/#/experiments/new`);
  await a.waitForSelector('#experiment-form');
  await a.fill('#experiment-form input[name=key]', 'xss-test');
  await a.fill('#experiment-form input[name=name]', evil);
  await a.fill('#experiment-form textarea[name=description]', evilDesc);
  await save(a);
  eq(await a.textContent('[data-field=name]'), evil, 'name shown literally');
  eq(await a.textContent('[data-field=description]'), evilDesc, 'description shown literally');
  eq(await a.locator('main img').count(), 0, 'no img element');
  eq(await a.locator('main script, main b').count(), 0, 'no script or b element');
  await a.goto(`${BASE}/#/experiments`);
  await a.waitForSelector('tr[data-key=xss-test]');
  eq(await a.textContent('tr[data-key=xss-test] [data-field=name]'), evil, 'list shows the name literally');
  await a.goto(`${BASE}/#/audit`);
  await a.waitForSelector('#audit-log');
  eq(await a.locator('main img').count(), 0, 'no img element in the audit log');
  await shot(a, '07-experiment-list');

  step = 'CSRF';
  const noCsrf = await a.evaluate(async () => {
    const r = await fetch('/api/v1/metrics', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ key: 'csrf-probe', type: 'binomial', event: 'x' }) });
    return r.status;
  });
  eq(noCsrf, 403, 'POST without X-CSRF-Token');
  const badCsrf = await a.evaluate(async () => {
    const r = await fetch('/api/v1/metrics', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': '0'.repeat(64) },
      body: JSON.stringify({ key: 'csrf-probe', type: 'binomial', event: 'x' }) });
    return r.status;
  });
  eq(badCsrf, 403, 'POST with a wrong X-CSRF-Token');
  eq((await adminApi('GET', '/api/v1/metrics/csrf-probe')).status, 404, 'nothing created without CSRF');

  step = 'a viewer';
  await a.goto(`${BASE}/#/users`);
  await a.waitForSelector('#user-form');
  await a.fill('#user-form input[name=email]', 'viewer@example.com');
  await a.fill('#user-form input[name=password]', 'viewer-password-1');
  await a.selectOption('#user-form select[name=role]', 'viewer');
  await a.click('#user-form button[type=submit]');
  await a.waitForSelector('tr[data-email="viewer@example.com"]');
  await shot(a, '08-users');
  const ctxV = await browser.newContext({ viewport: { width: 1280, height: 1400 } });
  const v = await newPage(ctxV);
  await login(v, 'viewer@example.com', 'viewer-password-1');
  check(await v.isHidden('nav a[href="#/users"]'), 'users link hidden for a viewer');
  eq(await v.locator('#new-experiment').count(), 0, 'no New experiment button');
  await v.goto(`${BASE}/#/experiments/xss-test`);
  await v.waitForSelector('[data-field=name]');
  eq(await v.locator('#actions a, #actions button').count(), 0, 'no edit or start controls for a viewer');
  eq(await v.locator('#update-results').count(), 0, 'no update results for a viewer');
  const viewerPut = await v.evaluate(async () => {
    const s = await (await fetch('/api/v1/session')).json();
    const r = await fetch('/api/v1/experiments/xss-test', { method: 'PUT',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf_token, 'If-Match': '"1"' },
      body: JSON.stringify({ name: 'changed by a viewer' }) });
    return r.status;
  });
  eq(viewerPut, 403, 'a viewer\'s PUT');
  eq((await adminApi('GET', '/api/v1/experiments/xss-test')).data.name, evil, 'the viewer changed nothing');
  step = 'log out';
  await v.click('#logout');
  await v.waitForSelector('#login-form');
  eq(await v.evaluate(async () => (await fetch('/api/v1/experiments')).status), 401, 'after logout');
  await ctxV.close();

  await demoResults(a);
  await reportsList(a);

  step = 'dialogs';
  eq(dialogs.length, 0, `browser dialogs opened: ${dialogs.join(' | ')}`);
  await ctxA.close();
}

// The Reports page lists what GET /api/v1/reports lists (abacus up catches up yesterday's report at
// start), and its link serves the report to the logged-in browser.
async function reportsList(page) {
  step = 'reports page';
  let reports = [];
  for (let i = 0; i < 100 && reports.length === 0; i++) {
    reports = (await adminApi('GET', '/api/v1/reports')).data.reports;
    if (reports.length === 0) await new Promise((res) => setTimeout(res, 200));
  }
  check(reports.length > 0, 'abacus up wrote no report at start');
  await page.goto(`${BASE}/#/reports`);
  await page.waitForSelector('#reports');
  eq(await page.locator('#reports tbody tr').count(), reports.length, 'report rows');
  const first = page.locator(`#reports tr[data-date="${reports[0].date}"] a`).first();
  eq(await first.getAttribute('href'), reports[0].html, 'link to the report');
  const served = await page.request.get(`${BASE}${reports[0].html}`);
  eq(served.status(), 200, 'the report, for the logged-in browser');
  check((served.headers()['content-type'] || '').startsWith('text/html'), 'served as HTML');
  await shot(page, '11-reports');
}

// The demo's results as the UI shows them, against GET /api/v1/experiments/{key}/results.
async function demoResults(page) {
  step = 'demo results';
  const list = (await adminApi('GET', '/api/v1/experiments?q=demo-')).data.experiments;
  check(list.length >= 3, `demo experiments: ${list.map((e) => e.key).join(', ')}`);
  let results = null, key = null;
  for (let i = 0; i < 600 && !results; i++) {
    for (const e of list) {
      const r = await adminApi('GET', `/api/v1/experiments/${encodeURIComponent(e.key)}/results`);
      if (r.status === 200 && r.data.metrics.some((m) => m.series && m.series.length > 0)) { results = r.data; key = e.key; break; }
    }
    if (!results) await new Promise((res) => setTimeout(res, 200));
  }
  check(results, 'no demo experiment has results with a daily series');
  await page.goto(`${BASE}/#/experiments/${encodeURIComponent(key)}`);
  await page.waitForSelector('.results .results-table');
  for (const m of results.metrics) {
    const table = page.locator(`.results-table[data-metric="${m.metric}"]`);
    for (const v of m.variants) {
      const row = table.locator(`tr[data-variant="${v.variant}"]`);
      eq(await row.locator('[data-field=n]').getAttribute('data-value'), String(v.n), `${m.metric} ${v.variant} n`);
      eq(await row.locator('[data-field=mean]').getAttribute('data-value'), String(v.mean), `${m.metric} ${v.variant} mean`);
      eq(await row.locator('[data-field=mean]').textContent(), Number(v.mean.toPrecision(4)).toString(), `${m.metric} ${v.variant} mean text`);
    }
    for (const c of m.comparisons) {
      const row = table.locator(`tr[data-variant="${c.variant}"]`);
      const num = (x) => (typeof x === 'number' ? String(x) : '');
      eq(await row.locator('[data-field=absolute]').getAttribute('data-value'), num(c.absolute.estimate), `${m.metric} ${c.variant} absolute`);
      eq(await row.locator('[data-field=relative]').getAttribute('data-value'), num(c.relative.estimate), `${m.metric} ${c.variant} relative`);
      if (typeof c.relative.estimate === 'number') {
        eq(await row.locator('[data-field=relative]').textContent(), `${(c.relative.estimate * 100).toFixed(2)}%`, `${m.metric} ${c.variant} relative text`);
      }
      eq(await row.locator('[data-field=p_value_fixed]').getAttribute('data-value'), num(c.relative.p_value_fixed), `${m.metric} ${c.variant} p fixed`);
      eq(await row.locator('[data-field=p_value_sequential]').getAttribute('data-value'), num(c.relative.p_value_sequential), `${m.metric} ${c.variant} p sequential`);
      eq(await row.locator('[data-field=ci_sequential]').getAttribute('data-value'), c.relative.ci_sequential ? JSON.stringify(c.relative.ci_sequential) : '', `${m.metric} ${c.variant} interval`);
      eq(await row.locator('[data-field=decision]').getAttribute('data-value'), c.decision, `${m.metric} ${c.variant} decision`);
      eq(await row.locator('svg.ci-bar').count(), 1, 'interval bar drawn');
    }
    const points = (m.series || []).filter((p) => typeof p.estimate === 'number');
    if (points.length > 0) {
      const chart = page.locator(`svg.series-chart[data-metric="${m.metric}"]`);
      eq(await chart.count(), 1, `${m.metric} chart`);
      eq(await chart.locator('circle.dot').count(), points.length, `${m.metric} chart points`);
      const labels = await chart.locator('text.label').allTextContents();
      check(labels.some((t) => t.includes('%')) && labels.some((t) => t.includes('Day')), `axis labels ${labels}`);
      for (const p of points) {
        eq(await chart.locator(`circle[data-date="${p.date}"][data-variant="${p.variant}"]`).getAttribute('data-value'), String(p.estimate), `${m.metric} ${p.date} ${p.variant}`);
      }
    }
  }
  await shot(page, '09-results');
  await page.goto(`${BASE}/#/experiments`);
  await page.waitForSelector(`tr[data-key="${key}"] [data-field=decision] .badge`);
  await shot(page, '10-experiment-list-with-decisions');
}

main().then(() => { console.log('e2e: all steps passed'); }, (e) => { console.error(`e2e FAILED: ${e.stack || e}`); process.exit(1); });
