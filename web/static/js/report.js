// The nightly report's page (web/static/report.html): reads the report's JSON from the
// <script type="application/json" id="report-data"> element, draws the summary (decisions,
// guardrail regressions, data-quality problems), then one section per experiment with the UI's
// own results view (results-view.js: tables and interval charts). At build time both modules are
// joined into one inline module (cmake/embed_report.cmake drops the import line). Every string
// from the data goes in as a text node.
import { renderResults, format } from './results-view.js';

function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
  return e;
}

const interval = (ci) => (ci && typeof ci[0] === 'number' && typeof ci[1] === 'number'
  ? `[${format.percent(ci[0])}, ${format.percent(ci[1])}]` : '–');

function findingsTable(rows, kind) {
  return h('table', { class: 'summary-table', 'data-summary': kind },
    h('thead', {}, h('tr', {}, ['Experiment', 'Metric', 'Variant', kind === 'decisions' ? 'Outcome' : 'Direction',
      'Relative lift', 'Sequential interval'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.map((d) => h('tr', { 'data-experiment': d.experiment, 'data-metric': d.metric, 'data-variant': d.variant },
      h('td', {}, h('a', { href: `#exp-${encodeURIComponent(d.experiment)}` }, d.name || d.experiment),
        h('span', { class: 'muted' }, ` (${d.experiment})`)),
      h('td', {}, d.metric),
      h('td', {}, `${d.variant} vs ${d.baseline}`),
      kind === 'decisions'
        ? h('td', { class: d.outcome === 'winner' ? 'ok' : 'bad', 'data-field': 'outcome' }, d.outcome === 'winner' ? `${d.variant} wins` : `${d.variant} loses`)
        : h('td', { class: 'bad' }, `${d.direction} is good; it moved the other way`),
      h('td', { class: 'num', 'data-field': 'lift', 'data-value': String(d.lift) }, format.percent(d.lift)),
      h('td', { class: 'num', 'data-field': 'ci' }, interval(d.ci_sequential))))));
}

function renderSummary(report, root) {
  const s = report.summary;
  root.append(h('h2', {}, 'Summary'),
    h('p', { 'data-field': 'experiments' }, `${s.experiments} experiment${s.experiments === 1 ? '' : 's'} ran on ${report.date}; results as of ${report.as_of}.`));
  root.append(h('h3', {}, `Decisions (${s.decisions.length})`));
  root.append(s.decisions.length ? findingsTable(s.decisions, 'decisions')
    : h('p', { class: 'empty', 'data-empty': 'decisions' }, 'No experiment reached a decision: every goal metric is still inconclusive.'));
  root.append(h('h3', {}, `Guardrail regressions (${s.guardrail_regressions.length})`));
  root.append(s.guardrail_regressions.length ? findingsTable(s.guardrail_regressions, 'guardrails')
    : h('p', { class: 'empty', 'data-empty': 'guardrails' }, 'No guardrail metric moved significantly in the bad direction.'));
  root.append(h('h3', {}, `Data quality (${s.data_quality.length})`));
  root.append(s.data_quality.length
    ? h('ul', { 'data-summary': 'data-quality' }, s.data_quality.map((q) => h('li', { class: 'warn', 'data-problem': q.problem },
      h('strong', {}, q.experiment ? `${q.experiment}: ` : 'Platform: '), q.message)))
    : h('p', { class: 'empty', 'data-empty': 'data-quality' }, 'No data-quality problems.'));
}

function renderExperiment(exp) {
  return h('section', { class: 'experiment', id: `exp-${encodeURIComponent(exp.key)}`, 'data-experiment': exp.key },
    h('h2', { class: 'experiment-name' }, exp.name || exp.key),
    h('p', { class: 'muted' }, `${exp.key} · ${exp.status}`),
    renderResults(exp.results, document));
}

const report = JSON.parse(document.getElementById('report-data').textContent);
document.title = `Abacus results report ${report.date}`;
document.getElementById('report-date').textContent = report.date;
document.getElementById('report-as-of').textContent = `Results as of ${report.as_of} (the end of the day, UTC).`;
renderSummary(report, document.getElementById('summary'));
const main = document.getElementById('experiments');
if (report.experiments.length === 0) main.append(h('p', { class: 'empty' }, 'No experiment ran on this day.'));
for (const exp of report.experiments) main.append(renderExperiment(exp));
document.body.setAttribute('data-rendered', 'true');
