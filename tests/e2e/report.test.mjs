// The nightly report's HTML in headless Chromium (Debian's chromium through playwright-core),
// opened from file:// with the network blocked, as a stakeholder opens an e-mail attachment.
// It must make no request besides its own file, run no injected script (any dialog fails), show
// the summary (the decision, the guardrail regression, the data-quality problems of report.json
// next to it), one results table and interval chart per metric, and the experiment's name exactly
// as stored (HTML in it shown as text). A full-page PNG goes to ARTIFACT_DIR/report.png.
// usage: node report.test.mjs REPORT_DIR ARTIFACT_DIR   (it_report writes BUILD/report-e2e)
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const dir = resolve(process.argv[2]);
const art = resolve(process.argv[3]);
mkdirSync(art, { recursive: true });
const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
const url = pathToFileURL(join(dir, 'report.html')).href;

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  await context.setOffline(true);
  const requests = [], blocked = [], dialogs = [], errors = [];
  await context.route('**/*', (route) => {
    const u = route.request().url();
    if (u === url) return route.continue();
    blocked.push(u);
    return route.abort();
  });
  const page = await context.newPage();
  page.on('request', (r) => requests.push(r.url()));
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(url);
  await page.waitForSelector('body[data-rendered=true]', { timeout: 30000 });

  check(errors.length === 0, `page errors: ${errors.join('; ')}`);
  check(dialogs.length === 0, `a dialog opened (injected script ran): ${dialogs.join('; ')}`);
  check(blocked.length === 0, `requests beyond the file: ${blocked.join(', ')}`);
  check(requests.length === 1 && requests[0] === url, `requests: ${JSON.stringify(requests)}`);

  const s = report.summary;
  const summary = await page.locator('#summary').innerText();
  check(summary.includes(`Decisions (${s.decisions.length})`), `summary: ${summary}`);
  check(summary.includes(`Guardrail regressions (${s.guardrail_regressions.length})`), 'regressions heading');
  check(summary.includes(`Data quality (${s.data_quality.length})`), 'data quality heading');
  check(s.decisions.length > 0 && s.guardrail_regressions.length > 0 && s.data_quality.length > 0,
    'the seeded report has a decision, a regression and problems');
  for (const d of s.decisions) {
    const row = page.locator(`[data-summary=decisions] tr[data-experiment="${d.experiment}"][data-metric="${d.metric}"]`);
    check(await row.count() === 1, `decision row for ${d.experiment}/${d.metric}`);
    const outcome = await row.locator('[data-field=outcome]').innerText();
    check(outcome === `${d.variant} ${d.outcome === 'winner' ? 'wins' : 'loses'}`, `outcome ${outcome}`);
    const lift = await row.locator('[data-field=lift]').getAttribute('data-value');
    check(Number(lift) === d.lift, `lift ${lift} != ${d.lift}`);
  }
  const problems = await page.locator('[data-summary=data-quality] li').evaluateAll(
    (els) => els.map((e) => e.getAttribute('data-problem')));
  check(JSON.stringify(problems) === JSON.stringify(s.data_quality.map((q) => q.problem)), `problems ${problems}`);

  let metrics = 0;
  for (const exp of report.experiments) {
    const section = page.locator(`section.experiment[data-experiment="${exp.key}"]`);
    check(await section.count() === 1, `section for ${exp.key}`);
    const name = await section.locator('h2.experiment-name').textContent();
    check(name === exp.name, `name shown as ${JSON.stringify(name)}, stored ${JSON.stringify(exp.name)}`);
    check(await section.locator('h2.experiment-name *').count() === 0, 'markup in the name became elements');
    for (const m of exp.results.metrics) {
      metrics++;
      check(await section.locator(`table.results-table[data-metric="${m.metric}"]`).count() === 1, `table ${m.metric}`);
      check(await section.locator(`svg.series-chart[data-metric="${m.metric}"]`).count() === 1, `chart ${m.metric}`);
      const n = await section.locator(`table.results-table[data-metric="${m.metric}"] tr[data-variant="${m.variants[0].variant}"] [data-field=n]`).getAttribute('data-value');
      check(Number(n) === m.variants[0].n, `n of ${exp.key}/${m.metric}`);
    }
  }
  check(await page.locator('script').count() === 2, 'only the report\'s own two script elements');
  const png = join(art, 'report.png');
  await page.screenshot({ path: png, fullPage: true });
  check(statSync(png).size > 20000, 'the screenshot is not empty');
  console.log(`ok: ${report.experiments.length} experiments, ${metrics} metric tables and charts, ` +
    `no request beyond ${url}; screenshot ${png}`);
} catch (e) {
  console.error(`report e2e: ${e.message}`);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
