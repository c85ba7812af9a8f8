// Renders one experiment's results (the JSON of GET /api/v1/experiments/{key}/results, see
// tests/data/results.schema.json) as DOM and SVG: SRM banner, units per variant, one table per
// metric (means, absolute and relative lift, the sequential interval as a bar against zero,
// fixed-horizon and always-valid p-values, decision) and a chart of the relative lift's
// sequential interval over the days of the phase. It depends on nothing but the DOM: no fetch, no
// page state, so the nightly report can inline this module into a self-contained HTML file.
// Data goes in as text nodes only. Numeric cells carry their exact value in data-value.

const SVG_NS = 'http://www.w3.org/2000/svg';

function el(doc, tag, attrs, ...children) {
  const e = doc.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === 'object' ? c : doc.createTextNode(String(c)));
  }
  return e;
}

function sv(doc, tag, attrs, ...children) {
  const e = doc.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  for (const c of children) e.appendChild(typeof c === 'object' ? c : doc.createTextNode(String(c)));
  return e;
}

const isNum = (x) => typeof x === 'number' && Number.isFinite(x);

// The display rules (the e2e test applies the same ones to the API's numbers).
export const format = {
  count: (x) => (isNum(x) ? String(Math.round(x)) : '–'),
  number: (x) => (isNum(x) ? Number(x.toPrecision(4)).toString() : '–'),
  percent: (x) => (isNum(x) ? `${(x * 100).toFixed(2)}%` : '–'),
  pvalue: (x) => (isNum(x) ? (x < 0.0001 ? '<0.0001' : x.toFixed(4)) : '–'),
};

const DECISIONS = {
  significant_positive: 'Significant increase',
  significant_negative: 'Significant decrease',
  inconclusive: 'Inconclusive',
  insufficient_data: 'Insufficient data',
  srm_blocked: 'Blocked by SRM',
};

export function decisionLabel(d) { return DECISIONS[d] || String(d); }

function cell(doc, field, value, text) {
  return el(doc, 'td', { 'data-field': field, 'data-value': isNum(value) ? String(value) : '', class: 'num' }, text);
}

// The sequential interval [lo, hi] (a fraction) as a horizontal bar on a scale with zero marked.
function intervalBar(doc, ci, estimate, scale) {
  const W = 160, H = 22, mid = W / 2;
  const x = (v) => mid + (v / scale) * (W / 2 - 6);
  const svg = sv(doc, 'svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: 'ci-bar', role: 'img' });
  const lo = ci && isNum(ci[0]) ? ci[0] : null, hi = ci && isNum(ci[1]) ? ci[1] : null;
  svg.appendChild(sv(doc, 'title', {}, lo === null || hi === null
    ? 'no interval yet'
    : `sequential interval of the relative lift: ${format.percent(lo)} to ${format.percent(hi)}`));
  svg.appendChild(sv(doc, 'line', { x1: mid, x2: mid, y1: 1, y2: H - 1, class: 'zero' }));
  if (lo !== null && hi !== null) {
    const cls = lo > 0 ? 'pos' : hi < 0 ? 'neg' : 'neutral';
    svg.appendChild(sv(doc, 'rect', { x: x(lo), y: 6, width: Math.max(1, x(hi) - x(lo)), height: H - 12, class: `bar ${cls}` }));
    if (isNum(estimate)) svg.appendChild(sv(doc, 'line', { x1: x(estimate), x2: x(estimate), y1: 3, y2: H - 3, class: 'est' }));
  }
  return svg;
}

function niceStep(range) {
  const raw = range / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

// Chart of the relative lift's sequential interval per day (one band and line per variant).
export function renderSeriesChart(metric, doc = globalThis.document) {
  const series = (metric.series || []).filter((p) => isNum(p.estimate));
  if (series.length === 0) {
    return el(doc, 'p', { class: 'empty', 'data-empty': 'series' },
      'No daily series yet: the chart needs at least one day with enough units in every variant.');
  }
  const dates = [...new Set(series.map((p) => p.date))].sort();
  const variants = [...new Set(series.map((p) => p.variant))];
  let lo = 0, hi = 0;
  for (const p of series) {
    for (const v of [p.estimate, ...(p.ci_sequential || [])]) if (isNum(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  }
  if (hi - lo < 1e-9) { lo -= 0.01; hi += 0.01; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  const W = 640, H = 280, L = 64, R = 16, T = 16, B = 52;
  const xOf = (i) => L + (dates.length === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (dates.length - 1));
  const yOf = (v) => T + ((hi - v) * (H - T - B)) / (hi - lo);
  const svg = sv(doc, 'svg', { viewBox: `0 0 ${W} ${H}`, class: 'series-chart', role: 'img', 'data-metric': metric.metric });
  svg.appendChild(sv(doc, 'title', {}, `Relative lift of ${metric.metric} with its sequential interval, by day of the phase`));
  const step = niceStep(hi - lo);
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) {
    svg.appendChild(sv(doc, 'line', { x1: L, x2: W - R, y1: yOf(v), y2: yOf(v), class: 'grid' }));
    svg.appendChild(sv(doc, 'text', { x: L - 6, y: yOf(v) + 4, class: 'tick', 'text-anchor': 'end' }, `${(v * 100).toFixed(1)}%`));
  }
  svg.appendChild(sv(doc, 'line', { x1: L, x2: W - R, y1: yOf(0), y2: yOf(0), class: 'zero' }));
  svg.appendChild(sv(doc, 'line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axis' }));
  svg.appendChild(sv(doc, 'line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
  const every = Math.max(1, Math.ceil(dates.length / 8));
  dates.forEach((d, i) => {
    if (i % every === 0 || i === dates.length - 1) {
      svg.appendChild(sv(doc, 'text', { x: xOf(i), y: H - B + 16, class: 'tick', 'text-anchor': 'middle' }, d.slice(5)));
    }
  });
  svg.appendChild(sv(doc, 'text', { x: (L + W - R) / 2, y: H - 8, class: 'label', 'text-anchor': 'middle' }, 'Day of the phase (UTC date, cumulative)'));
  svg.appendChild(sv(doc, 'text', { x: 14, y: (T + H - B) / 2, class: 'label', 'text-anchor': 'middle', transform: `rotate(-90 14 ${(T + H - B) / 2})` }, 'Relative lift (%)'));
  variants.forEach((v, k) => {
    const pts = series.filter((p) => p.variant === v).sort((a, b) => (a.date < b.date ? -1 : 1));
    const withCi = pts.filter((p) => p.ci_sequential && isNum(p.ci_sequential[0]) && isNum(p.ci_sequential[1]));
    if (withCi.length > 0) {
      const up = withCi.map((p) => `${xOf(dates.indexOf(p.date))},${yOf(p.ci_sequential[1])}`);
      const down = withCi.slice().reverse().map((p) => `${xOf(dates.indexOf(p.date))},${yOf(p.ci_sequential[0])}`);
      svg.appendChild(sv(doc, 'polygon', { points: [...up, ...down].join(' '), class: `band c${k % 4}` }));
    }
    svg.appendChild(sv(doc, 'polyline', { points: pts.map((p) => `${xOf(dates.indexOf(p.date))},${yOf(p.estimate)}`).join(' '), class: `line c${k % 4}` }));
    for (const p of pts) {
      const c = sv(doc, 'circle', { cx: xOf(dates.indexOf(p.date)), cy: yOf(p.estimate), r: 3, class: `dot c${k % 4}`, 'data-date': p.date, 'data-variant': v, 'data-value': String(p.estimate) });
      c.appendChild(sv(doc, 'title', {}, `${v} ${p.date}: ${format.percent(p.estimate)}`));
      svg.appendChild(c);
    }
    svg.appendChild(sv(doc, 'text', { x: L + 8 + k * 120, y: T + 12, class: `legend c${k % 4}` }, `■ ${v}`));
  });
  return el(doc, 'figure', { class: 'chart' }, svg,
    el(doc, 'figcaption', {}, `Relative lift of ${metric.metric} against the baseline, with its always-valid (sequential) interval; 0% = no difference.`));
}

function metricSection(doc, m) {
  const comps = new Map((m.comparisons || []).map((c) => [c.variant, c]));
  const baseline = (m.comparisons && m.comparisons[0] && m.comparisons[0].baseline) || (m.variants[0] && m.variants[0].variant);
  let scale = 0.05;
  for (const c of m.comparisons || []) {
    const ci = c.relative && c.relative.ci_sequential;
    if (ci) for (const v of ci) if (isNum(v)) scale = Math.max(scale, Math.abs(v) * 1.1);
  }
  const rows = (m.variants || []).map((v) => {
    const c = comps.get(v.variant);
    const a = c && c.absolute, r = c && c.relative;
    const tr = el(doc, 'tr', { 'data-variant': v.variant },
      el(doc, 'th', { scope: 'row' }, v.variant, v.variant === baseline ? el(doc, 'span', { class: 'muted' }, ' (baseline)') : null),
      cell(doc, 'n', v.n, format.count(v.n)),
      cell(doc, 'mean', v.mean, format.number(v.mean)));
    if (!c) {
      tr.appendChild(el(doc, 'td', { colspan: 6, class: 'muted' }, '—'));
      return tr;
    }
    tr.append(
      cell(doc, 'absolute', a && a.estimate, format.number(a && a.estimate)),
      cell(doc, 'relative', r && r.estimate, format.percent(r && r.estimate)),
      el(doc, 'td', { 'data-field': 'ci_sequential', 'data-value': r && r.ci_sequential ? JSON.stringify(r.ci_sequential) : '' },
        intervalBar(doc, r && r.ci_sequential, r && r.estimate, scale),
        el(doc, 'div', { class: 'ci-text' }, r && r.ci_sequential && isNum(r.ci_sequential[0])
          ? `[${format.percent(r.ci_sequential[0])}, ${format.percent(r.ci_sequential[1])}]` : '–')),
      cell(doc, 'p_value_fixed', r && r.p_value_fixed, format.pvalue(r && r.p_value_fixed)),
      cell(doc, 'p_value_sequential', r && r.p_value_sequential, format.pvalue(r && r.p_value_sequential)),
      el(doc, 'td', { 'data-field': 'decision', 'data-value': c.decision }, el(doc, 'span', { class: `badge d-${c.decision}` }, decisionLabel(c.decision))));
    return tr;
  });
  const table = el(doc, 'table', { class: 'results-table', 'data-metric': m.metric },
    el(doc, 'thead', {}, el(doc, 'tr', {},
      ['Variant', 'Units', 'Mean', 'Absolute lift', 'Relative lift', 'Sequential interval (relative)', 'p (fixed horizon)', 'p (always valid)', 'Decision']
        .map((t) => el(doc, 'th', { scope: 'col' }, t)))),
    el(doc, 'tbody', {}, rows));
  const notes = [];
  if ((m.comparisons || []).some((c) => c.decision === 'insufficient_data')) {
    notes.push(el(doc, 'p', { class: 'empty', 'data-empty': 'insufficient' },
      'Insufficient data: some variants do not have enough units (or conversions) yet for an estimate. Let the experiment run longer.'));
  }
  return el(doc, 'section', { class: 'metric-results', 'data-metric': m.metric },
    el(doc, 'h3', {}, m.metric, ' ', el(doc, 'span', { class: `role r-${m.role}` }, m.role), ' ',
      el(doc, 'span', { class: 'muted' }, `${m.type}${m.cuped ? ', CUPED' : ''}`)),
    table, notes, renderSeriesChart(m, doc));
}

// The whole results view: returns a <div class="results">.
export function renderResults(results, doc = globalThis.document) {
  const root = el(doc, 'div', { class: 'results', 'data-experiment': results.experiment });
  const byVariant = (results.units && results.units.by_variant) || {};
  const total = Object.values(byVariant).reduce((a, b) => a + b, 0);
  const multi = (results.units && results.units.multiple_exposures) || 0;
  root.appendChild(el(doc, 'p', { class: 'muted' },
    `Phase ${results.phase} · computed ${results.computed_at}` +
    (results.data_through ? ` · data through ${results.data_through}` : '') +
    ` · α = ${results.alpha}` + (results.correction ? ` · correction: ${results.correction}` : '')));
  if (results.srm && results.srm.mismatch) {
    root.appendChild(el(doc, 'div', { class: 'banner danger', 'data-banner': 'srm' },
      el(doc, 'strong', {}, 'Sample ratio mismatch. '),
      `The units per variant do not match the configured weights (χ² p = ${format.pvalue(results.srm.p_value)}). ` +
      'Assignment or exposure logging is likely broken; decisions are blocked until it is fixed.'));
  }
  const shareText = total + multi > 0 ? format.percent(multi / (total + multi)) : '–';
  root.appendChild(el(doc, 'table', { class: 'units-table' },
    el(doc, 'thead', {}, el(doc, 'tr', {}, el(doc, 'th', {}, 'Variant'), el(doc, 'th', {}, 'Units'), el(doc, 'th', {}, 'Expected weight'))),
    el(doc, 'tbody', {}, Object.entries(byVariant).map(([v, n]) => el(doc, 'tr', { 'data-variant': v },
      el(doc, 'th', { scope: 'row' }, v), cell(doc, 'units', n, format.count(n)),
      cell(doc, 'expected_weight', results.srm && results.srm.expected_weights ? results.srm.expected_weights[v] : null,
        format.percent(results.srm && results.srm.expected_weights ? results.srm.expected_weights[v] : null)))))));
  root.appendChild(el(doc, 'p', { 'data-field': 'multiple_exposures', 'data-value': String(multi) },
    `Units exposed to more than one variant (excluded): ${multi} (${shareText} of all exposed units)` +
    (results.srm ? ` · SRM check p = ${format.pvalue(results.srm.p_value)}` : '')));
  if (total === 0) {
    root.appendChild(el(doc, 'p', { class: 'empty', 'data-empty': 'no-units' },
      'No exposures yet: no unit has been assigned and logged an exposure in this phase. Check that the SDK sends exposure events to the collector.'));
  }
  if (!results.metrics || results.metrics.length === 0) {
    root.appendChild(el(doc, 'p', { class: 'empty', 'data-empty': 'no-metrics' }, 'No metrics: attach a goal metric to the experiment to get results.'));
  }
  for (const m of results.metrics || []) root.appendChild(metricSection(doc, m));
  return root;
}
