// The Abacus UI: a hash-routed single page over the admin JSON API (/api/v1/). Log in, list and
// edit experiments, start/pause/stop them, read results, manage metrics, layers, API keys and
// users, read the audit log and the snapshots. Controls that the role may not use are hidden; the
// API refuses them anyway (403).
import { api, ApiError, enc, get, setCsrf } from './api.js';
import { clear, fmtTime, h } from './dom.js';
import { decisionLabel, renderResults } from './results-view.js';

const main = document.getElementById('main');
const ROLES = { viewer: 1, editor: 2, admin: 3 };
let session = null;

const can = (role) => session && ROLES[session.role] >= ROLES[role];

function flash(text, kind = 'info') {
  const f = document.getElementById('flash');
  clear(f).appendChild(h('div', { class: `banner ${kind}` }, text));
  if (kind !== 'danger') setTimeout(() => { if (f.firstChild && f.firstChild.textContent === text) clear(f); }, 5000);
}

function errorBox(e) {
  const where = e instanceof ApiError && e.field ? ` (${e.field})` : '';
  return h('div', { class: 'banner danger', 'data-error': e.status || '' }, `${e.message}${where}`);
}

// An in-page confirmation (no window.confirm: pages never open browser dialogs).
function confirmBox(text, okLabel) {
  return new Promise((resolve) => {
    const close = (v) => { overlay.remove(); resolve(v); };
    const overlay = h('div', { class: 'overlay', 'data-confirm': '' },
      h('div', { class: 'modal', role: 'alertdialog' },
        h('p', {}, text),
        h('div', { class: 'actions' },
          h('button', { class: 'primary', 'data-confirm-ok': '', onclick: () => close(true) }, okLabel),
          h('button', { onclick: () => close(false) }, 'Cancel'))));
    document.body.appendChild(overlay);
  });
}

function page(title, ...children) {
  clear(main);
  document.title = `${title} · Abacus`;
  main.appendChild(h('h1', {}, title));
  for (const c of children) if (c) main.appendChild(c);
}

function statusBadge(s) { return h('span', { class: `badge s-${s}`, 'data-status': s }, s); }

function field(label, input, help) {
  return h('label', { class: 'field' }, h('span', { class: 'label' }, label), input, help ? h('small', { class: 'muted' }, help) : null);
}

// ---------------------------------------------------------------- session

async function loadSession() {
  try {
    session = await get('/api/v1/session');
    setCsrf(session.csrf_token);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    session = null;
    setCsrf(null);
  }
  const nav = document.getElementById('nav');
  nav.hidden = !session;
  for (const a of nav.querySelectorAll('[data-role]')) a.hidden = !can(a.dataset.role);
  const who = clear(document.getElementById('who'));
  if (session) {
    who.append(h('span', { 'data-user': session.email }, `${session.email} (${session.role})`), ' ',
      h('button', { class: 'link', id: 'logout', onclick: logout }, 'Log out'));
  }
}

async function logout() {
  try { await api('DELETE', '/api/v1/session'); } catch (e) { flash(e.message, 'danger'); }
  await loadSession();
  location.hash = '#/login';
}

function loginPage() {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const out = h('div');
  const form = h('form', { class: 'card narrow', id: 'login-form' }, field('Email', email), field('Password', password),
    h('button', { type: 'submit', class: 'primary' }, 'Log in'), out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(out);
    try {
      await api('POST', '/api/v1/session', { email: email.value, password: password.value });
      await loadSession();
      location.hash = '#/experiments';
    } catch (e) { out.appendChild(errorBox(e)); }
  });
  page('Log in', form, h('p', { class: 'muted' }, 'The first start of abacus printed the admin login; the password is also in DATA_DIR/admin.password.'));
}

// ---------------------------------------------------------------- experiments: list

async function resultsOf(key) {
  try { return await get(`/api/v1/experiments/${enc(key)}/results`); } catch { return null; }
}

function overallDecision(r) {
  if (!r) return null;
  if (r.srm && r.srm.mismatch) return 'srm_blocked';
  const goal = (r.metrics || []).find((m) => m.role === 'goal') || (r.metrics || [])[0];
  if (!goal || !goal.comparisons || goal.comparisons.length === 0) return null;
  const ds = goal.comparisons.map((c) => c.decision);
  for (const d of ['significant_positive', 'significant_negative', 'inconclusive', 'insufficient_data']) if (ds.includes(d)) return d;
  return ds[0];
}

async function listPage(params) {
  const q = h('input', { type: 'search', placeholder: 'Search key or name', value: params.get('q') || '', id: 'search' });
  const status = h('select', { id: 'status-filter' }, ['', 'draft', 'running', 'paused', 'stopped', 'archived']
    .map((s) => h('option', { value: s }, s || 'any status')));
  status.value = params.get('status') || '';
  const apply = () => {
    const p = new URLSearchParams();
    if (q.value) p.set('q', q.value);
    if (status.value) p.set('status', status.value);
    location.hash = `#/experiments?${p}`;
  };
  q.addEventListener('change', apply);
  status.addEventListener('change', apply);
  const tbody = h('tbody');
  page('Experiments',
    h('div', { class: 'toolbar' }, q, status, can('editor') ? h('a', { class: 'button primary', href: '#/experiments/new', id: 'new-experiment' }, 'New experiment') : null),
    h('table', { class: 'list', id: 'experiment-list' },
      h('thead', {}, h('tr', {}, ['Key', 'Name', 'Status', 'Phase', 'Traffic', 'Variants', 'Decision'].map((t) => h('th', {}, t)))), tbody));
  const p = new URLSearchParams();
  if (params.get('q')) p.set('q', params.get('q'));
  if (params.get('status')) p.set('status', params.get('status'));
  const data = await get(`/api/v1/experiments?${p}`);
  if (data.experiments.length === 0) tbody.appendChild(h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No experiments match. Create one with “New experiment”.')));
  for (const e of data.experiments) {
    const badge = h('td', { 'data-field': 'decision' }, '…');
    tbody.appendChild(h('tr', { 'data-key': e.key },
      h('td', {}, h('a', { href: `#/experiments/${enc(e.key)}` }, e.key)),
      h('td', { 'data-field': 'name' }, e.name),
      h('td', {}, statusBadge(e.status)),
      h('td', {}, String(e.phase)),
      h('td', {}, `${(e.coverage * 100).toFixed(0)}%` + (e.layer ? ` of layer ${e.layer.key} [${e.layer.range[0]}, ${e.layer.range[1]})` : '')),
      h('td', {}, e.variants.map((v) => `${v.key} ${(v.weight * 100).toFixed(0)}%`).join(' / ')),
      badge));
    resultsOf(e.key).then((r) => {
      const d = overallDecision(r);
      clear(badge).appendChild(d ? h('span', { class: `badge d-${d}` }, decisionLabel(d)) : h('span', { class: 'muted' }, 'no results'));
    });
  }
}

// ---------------------------------------------------------------- experiments: detail

async function detailPage(key) {
  const r = await api('GET', `/api/v1/experiments/${enc(key)}`);
  const e = r.data;
  const actions = h('div', { class: 'toolbar', id: 'actions' });
  if (can('editor')) {
    actions.appendChild(h('a', { class: 'button', href: `#/experiments/${enc(key)}/edit`, id: 'edit' }, 'Edit'));
    const act = (action, label, warn) => h('button', { 'data-action': action, onclick: async () => {
      if (!(await confirmBox(warn, label))) return;
      try { await api('POST', `/api/v1/experiments/${enc(key)}/${action}`); flash(`${label}: done`); route(); } catch (err) { flash(err.message, 'danger'); }
    } }, label);
    if (e.status === 'draft' || e.status === 'paused') actions.appendChild(act('start', 'Start', `Start ${e.key}? Units will be assigned as soon as the next snapshot is published.`));
    if (e.status === 'running') actions.appendChild(act('pause', 'Pause', `Pause ${e.key}? New units stop entering; assigned ones keep their variant.`));
    if (e.status === 'running' || e.status === 'paused') actions.appendChild(act('stop', 'Stop', `Stop ${e.key}? This ends the experiment; it cannot be restarted.`));
  }
  const info = h('dl', { class: 'facts' },
    h('dt', {}, 'Name'), h('dd', { 'data-field': 'name' }, e.name),
    h('dt', {}, 'Description'), h('dd', { 'data-field': 'description', class: 'pre' }, e.description || '–'),
    h('dt', {}, 'Status'), h('dd', {}, statusBadge(e.status), ` · version ${e.version} · phase ${e.phase}`),
    h('dt', {}, 'Traffic'), h('dd', {}, `coverage ${(e.coverage * 100).toFixed(1)}%, hashed on “${e.hash_attribute}” (v${e.hash_version}, seed ${e.seed})` +
      (e.layer ? `, layer ${e.layer.key} [${e.layer.range[0]}, ${e.layer.range[1]})` : '')),
    h('dt', {}, 'Variants'), h('dd', {}, e.variants.map((v) => `${v.key} ${(v.weight * 100).toFixed(1)}%`).join(' · ')),
    h('dt', {}, 'Condition'), h('dd', { class: 'pre' }, e.condition ? JSON.stringify(e.condition, null, 1) : 'everyone'),
    h('dt', {}, 'Metrics'), h('dd', {}, e.metrics.map((m) => `${m.key} (${m.role})`).join(', ') || '–'),
    h('dt', {}, 'Planned sample size'), h('dd', {}, e.planned_sample_size === null ? '–' : String(e.planned_sample_size)),
    h('dt', {}, 'Overrides'), h('dd', {}, Object.keys(e.overrides || {}).length ? Object.entries(e.overrides).map(([u, v]) => `${u} → ${v}`).join(', ') : '–'));
  const resultsBox = h('div', { id: 'results' }, h('p', { class: 'muted' }, 'Loading results…'));
  const path = `/api/v1/experiments/${enc(key)}/results`;
  const history = h('select', { id: 'results-history', 'aria-label': 'Results as of', hidden: true,
    onchange: async () => {
      try {
        showResults(resultsBox, await get(history.value ? `${path}?as_of=${history.value}` : path), null);
      } catch (err) { showResults(resultsBox, null, err); }
    } });
  const loadHistory = async () => {
    try {
      const hist = (await get(`${path}/history`)).history;
      clear(history).appendChild(h('option', { value: '' }, 'latest'));
      for (const c of hist.slice(1)) history.appendChild(h('option', { value: String(c.computed_at_ms) }, `as of ${fmtTime(c.computed_at_ms)}`));
      history.hidden = hist.length < 2;
    } catch (err) { history.hidden = true; }
  };
  const update = can('editor') ? h('button', { id: 'update-results', onclick: async () => {
    update.disabled = true;
    try {
      const res = await api('POST', `/api/v1/experiments/${enc(key)}/analyze`);
      showResults(resultsBox, res.data, null);
    } catch (err) {
      // the analysis failed (the events store may be unreachable): the stored results stay
      let stored = null;
      try { stored = await get(path); } catch (e2) { /* none stored */ }
      showResults(resultsBox, stored, err);
    }
    history.value = '';
    await loadHistory();
    update.disabled = false;
  } }, 'Update results') : null;
  page(`Experiment ${e.key}`, actions, info,
    h('h2', {}, 'Results ', update, ' ', history),
    resultsBox,
    h('p', {}, h('a', { href: `#/audit?entity_type=experiment&entity_key=${enc(key)}` }, 'History of this experiment')));
  try {
    showResults(resultsBox, await get(path), null);
  } catch (err) { showResults(resultsBox, null, err); }
  await loadHistory();
}

// When the shown results were computed, when they refresh next, and whether they are stale.
function refreshInfo(r) {
  if (!r) return null;
  const parts = [];
  if (r.computed_at) parts.push(`computed ${fmtTime(r.computed_at)}`);
  if (r.running) parts.push('an update is running');
  else if (r.next_at) parts.push(`next update ${fmtTime(r.next_at)}`);
  else parts.push('not updated automatically');
  const line = h('p', { class: 'muted', 'data-field': 'refresh' }, parts.join(' · '));
  if (!r.stale) return line;
  const err = r.error || {};
  return h('div', {}, line, h('div', { class: 'banner warning', 'data-banner': 'stale' },
    h('strong', {}, 'These results are stale. '),
    `The last update${r.attempted_at ? ` (${fmtTime(r.attempted_at)})` : ''} failed: ${err.message || err.code || 'unknown error'}. ` +
    'They are the last results computed; the update is retried automatically.'));
}

function showResults(box, results, err) {
  clear(box);
  if (err && err.status === 404 && !results) {
    box.appendChild(h('p', { class: 'empty', 'data-empty': 'no-results' },
      'No results yet: the analysis has not run for this experiment (it needs the experiment to have started and events to be collected). “Update results” runs it now.'));
    if (err.message && err.message.includes('failed')) box.appendChild(errorBox(err));
    return;
  }
  if (err) box.appendChild(errorBox(err));
  if (results) {
    const info = refreshInfo(results.refresh);
    if (info) box.appendChild(info);
    box.appendChild(renderResults(results));
  }
}

// ---------------------------------------------------------------- experiments: create / edit

function variantRow(v, onChange) {
  const key = h('input', { class: 'v-key', value: v.key, required: true, size: 12 });
  const weight = h('input', { class: 'v-weight', type: 'number', min: 0, max: 100, step: 'any', value: +(v.weight * 100).toFixed(4) });
  const payload = h('input', { class: 'v-payload', value: JSON.stringify(v.payload || {}), size: 24 });
  const row = h('tr', { class: 'variant' }, h('td', {}, key), h('td', {}, weight, ' %'), h('td', {}, payload),
    h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => { row.remove(); onChange(); } }, 'remove')));
  for (const i of [key, weight, payload]) i.addEventListener('input', onChange);
  return row;
}

function metricRow(m, metrics) {
  const sel = h('select', { class: 'm-key' }, metrics.map((x) => h('option', { value: x.key }, `${x.key} (${x.type})`)));
  sel.value = m.key;
  const role = h('select', { class: 'm-role' }, ['goal', 'guardrail', 'secondary'].map((r) => h('option', { value: r }, r)));
  role.value = m.role || 'goal';
  const row = h('tr', { class: 'metric' }, h('td', {}, sel), h('td', {}, role),
    h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => row.remove() }, 'remove')));
  return row;
}

function diffFields(a, b) {
  const keys = new Set([...Object.keys(a || {}), ...Object.keys(b || {})]);
  const out = [];
  for (const k of keys) if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push({ field: k, before: a[k], after: b[k] });
  return out;
}

async function editPage(key) {
  const [metrics, layers] = await Promise.all([get('/api/v1/metrics'), get('/api/v1/layers')]);
  let base = null;
  if (key) base = (await api('GET', `/api/v1/experiments/${enc(key)}`)).data;
  const e = base || { key: '', name: '', description: '', hash_attribute: 'id', fallback_attribute: null, coverage: 1,
    variants: [{ key: 'control', weight: 0.5, payload: {} }, { key: 'treatment', weight: 0.5, payload: {} }],
    condition: null, layer: null, overrides: {}, metrics: [], planned_sample_size: null };
  const keyIn = h('input', { name: 'key', value: e.key, required: true, disabled: !!base, pattern: '[A-Za-z0-9_.\\-]+' });
  const name = h('input', { name: 'name', value: e.name });
  const desc = h('textarea', { name: 'description', rows: 3 });
  desc.value = e.description;
  const hashAttr = h('input', { name: 'hash_attribute', value: e.hash_attribute });
  const fallback = h('input', { name: 'fallback_attribute', value: e.fallback_attribute || '' });
  const coverage = h('input', { name: 'coverage', type: 'number', min: 0, max: 100, step: 'any', value: +(e.coverage * 100).toFixed(4) });
  const sumOut = h('span', { id: 'weight-sum' });
  const phaseWarn = h('div', { class: 'banner warning', id: 'phase-warning', hidden: true },
    'Changing the weights of a running experiment starts a new phase: results restart from zero and the units seen so far are analysed no more.');
  const vbody = h('tbody');
  const origWeights = JSON.stringify(e.variants.map((v) => v.weight));
  const readWeights = () => [...vbody.querySelectorAll('.v-weight')].map((i) => Number(i.value) / 100);
  const checkSum = () => {
    const ws = readWeights();
    const sum = ws.reduce((a, b) => a + b, 0) * 100;
    const ok = Math.abs(sum - 100) < 0.01;
    sumOut.textContent = `Sum of weights: ${sum.toFixed(2)}% ${ok ? '✓' : '— must be 100%'}`;
    sumOut.className = ok ? 'ok' : 'bad';
    sumOut.dataset.ok = ok ? '1' : '0';
    const changed = base && JSON.stringify(ws.map((w) => +w.toFixed(6))) !== JSON.stringify(JSON.parse(origWeights).map((w) => +w.toFixed(6)));
    phaseWarn.hidden = !(base && (base.status === 'running' || base.status === 'paused') && changed);
    return ok;
  };
  for (const v of e.variants) vbody.appendChild(variantRow(v, checkSum));
  const addVariant = h('button', { type: 'button', id: 'add-variant', onclick: () => { vbody.appendChild(variantRow({ key: `v${vbody.children.length}`, weight: 0, payload: {} }, checkSum)); checkSum(); } }, 'Add variant');
  const equal = h('button', { type: 'button', id: 'equal-weights', onclick: () => {
    const inputs = [...vbody.querySelectorAll('.v-weight')];
    inputs.forEach((i) => { i.value = +(100 / inputs.length).toFixed(4); });
    checkSum();
  } }, 'Equal weights');
  const cond = h('textarea', { name: 'condition', rows: 4, class: 'code', placeholder: '{"country": {"$in": ["DE", "FR"]}}  (empty: everyone)' });
  cond.value = e.condition ? JSON.stringify(e.condition, null, 2) : '';
  const condOut = h('small', { id: 'condition-check' });
  const checkCond = () => {
    const t = cond.value.trim();
    if (!t) { condOut.textContent = 'everyone'; condOut.className = 'ok'; return { ok: true, value: null }; }
    try {
      const v = JSON.parse(t);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('a condition is a JSON object');
      condOut.textContent = 'valid JSON object (operators are checked by the server on save)';
      condOut.className = 'ok';
      return { ok: true, value: v };
    } catch (err) {
      condOut.textContent = `not valid: ${err.message}`;
      condOut.className = 'bad';
      return { ok: false };
    }
  };
  cond.addEventListener('input', checkCond);
  const layerSel = h('select', { name: 'layer' }, h('option', { value: '' }, 'none'), layers.layers.map((l) => h('option', { value: l.key }, l.key)));
  layerSel.value = e.layer ? e.layer.key : '';
  const rangeA = h('input', { name: 'range_start', type: 'number', min: 0, max: 1, step: 'any', value: e.layer ? e.layer.range[0] : 0 });
  const rangeB = h('input', { name: 'range_end', type: 'number', min: 0, max: 1, step: 'any', value: e.layer ? e.layer.range[1] : 1 });
  const overrides = h('textarea', { name: 'overrides', rows: 3, class: 'code', placeholder: 'one per line: unit-id = variant-key' });
  overrides.value = Object.entries(e.overrides || {}).map(([u, v]) => `${u} = ${v}`).join('\n');
  const mbody = h('tbody');
  for (const m of e.metrics) mbody.appendChild(metricRow(m, metrics.metrics));
  const addMetric = h('button', { type: 'button', id: 'add-metric', disabled: metrics.metrics.length === 0,
    onclick: () => mbody.appendChild(metricRow({ key: metrics.metrics[0].key, role: 'goal' }, metrics.metrics)) }, 'Add metric');
  const planned = h('input', { name: 'planned_sample_size', type: 'number', min: 1, step: 1, value: e.planned_sample_size === null ? '' : e.planned_sample_size });
  const out = h('div', { id: 'save-result' });
  const form = h('form', { class: 'card', id: 'experiment-form', novalidate: true },
    field('Key', keyIn, base ? 'The key cannot change.' : 'Letters, digits, “-”, “_”, “.”; used by the SDKs.'),
    field('Name', name), field('Description', desc),
    h('fieldset', {}, h('legend', {}, 'Variants'),
      h('table', { class: 'variants' }, h('thead', {}, h('tr', {}, h('th', {}, 'Key'), h('th', {}, 'Weight'), h('th', {}, 'Payload (JSON)'), h('th'))), vbody),
      h('div', { class: 'toolbar' }, addVariant, equal, sumOut), phaseWarn),
    h('fieldset', {}, h('legend', {}, 'Traffic'),
      field('Coverage (%)', coverage, 'Share of eligible units that enter the experiment.'),
      field('Hash attribute', hashAttr), field('Fallback attribute', fallback, 'Used when the hash attribute is missing (optional).'),
      field('Layer', layerSel, 'Experiments in one layer take disjoint ranges of it.'),
      h('div', { class: 'row' }, field('Range start', rangeA), field('Range end', rangeB))),
    h('fieldset', {}, h('legend', {}, 'Targeting condition'), cond, condOut),
    h('fieldset', {}, h('legend', {}, 'Overrides'), overrides),
    h('fieldset', {}, h('legend', {}, 'Metrics'),
      h('table', { class: 'metrics' }, h('thead', {}, h('tr', {}, h('th', {}, 'Metric'), h('th', {}, 'Role'), h('th'))), mbody), addMetric),
    field('Planned sample size', planned, 'Units in total (optional).'),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'primary', id: 'save' }, base ? 'Save' : 'Create'),
      h('a', { href: base ? `#/experiments/${enc(base.key)}` : '#/experiments' }, 'Cancel')),
    out);
  checkSum();
  checkCond();
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(out);
    if (!checkSum()) { out.appendChild(h('div', { class: 'banner danger' }, 'The weights must sum to 100%.')); return; }
    const c = checkCond();
    if (!c.ok) { out.appendChild(h('div', { class: 'banner danger' }, 'The condition is not a valid JSON object.')); return; }
    const variants = [];
    for (const row of vbody.querySelectorAll('tr.variant')) {
      let payload;
      try { payload = JSON.parse(row.querySelector('.v-payload').value || '{}'); } catch {
        out.appendChild(h('div', { class: 'banner danger' }, `The payload of variant ${row.querySelector('.v-key').value} is not valid JSON.`));
        return;
      }
      variants.push({ key: row.querySelector('.v-key').value.trim(), weight: Number(row.querySelector('.v-weight').value) / 100, payload });
    }
    const ov = {};
    for (const line of overrides.value.split('\n')) {
      if (!line.trim()) continue;
      const i = line.indexOf('=');
      if (i < 0) { out.appendChild(h('div', { class: 'banner danger' }, `Override “${line}” is not “unit = variant”.`)); return; }
      ov[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    const body = {
      name: name.value, description: desc.value, hash_attribute: hashAttr.value || 'id',
      fallback_attribute: fallback.value ? fallback.value : null, coverage: Number(coverage.value) / 100, variants,
      condition: c.value, layer: layerSel.value ? { key: layerSel.value, range: [Number(rangeA.value), Number(rangeB.value)] } : null,
      overrides: ov, metrics: [...mbody.querySelectorAll('tr.metric')].map((r) => ({ key: r.querySelector('.m-key').value, role: r.querySelector('.m-role').value })),
      planned_sample_size: planned.value ? Number(planned.value) : null,
    };
    if (base && !phaseWarn.hidden && !(await confirmBox('The weights changed on a running experiment: saving starts a new phase and its results restart. Save anyway?', 'Save and start a new phase'))) return;
    try {
      if (base) {
        await api('PUT', `/api/v1/experiments/${enc(base.key)}`, body, { 'If-Match': `"${base.version}"` });
      } else {
        await api('POST', '/api/v1/experiments', { key: keyIn.value.trim(), ...body });
      }
      flash('Saved');
      location.hash = `#/experiments/${enc(base ? base.key : keyIn.value.trim())}`;
    } catch (err) {
      if (err.status === 409 && base) {
        const cur = (await api('GET', `/api/v1/experiments/${enc(base.key)}`)).data;
        const changes = diffFields(base, cur).filter((d) => d.field !== 'version');
        out.appendChild(h('div', { class: 'banner danger', id: 'conflict' },
          h('strong', {}, 'Someone else changed this experiment meanwhile '),
          `(you edited version ${base.version}, it is now version ${cur.version}). Your changes were not saved. What changed:`,
          h('table', { class: 'diff' }, h('thead', {}, h('tr', {}, h('th', {}, 'Field'), h('th', {}, 'Your version'), h('th', {}, 'Now'))),
            h('tbody', {}, changes.map((d) => h('tr', {}, h('td', {}, d.field), h('td', { class: 'pre' }, JSON.stringify(d.before)), h('td', { class: 'pre' }, JSON.stringify(d.after)))))),
          h('button', { type: 'button', id: 'reload', onclick: () => route() }, 'Reload the current version (discards your edits)')));
      } else {
        out.appendChild(errorBox(err));
      }
    }
  });
  page(base ? `Edit ${base.key}` : 'New experiment', form);
}

// ---------------------------------------------------------------- metrics, layers

async function metricsPage() {
  const data = await get('/api/v1/metrics');
  const out = h('div');
  const key = h('input', { name: 'key', required: true }), name = h('input', { name: 'name' });
  const type = h('select', { name: 'type' }, ['binomial', 'mean', 'ratio'].map((t) => h('option', { value: t }, t)));
  const event = h('input', { name: 'event', required: true }), den = h('input', { name: 'denominator_event' });
  const dir = h('select', { name: 'direction' }, ['increase', 'decrease'].map((t) => h('option', { value: t }, t)));
  const win = h('input', { name: 'conversion_window_hours', type: 'number', min: 0, step: 'any' });
  const form = can('editor') ? h('form', { class: 'card', id: 'metric-form' }, h('h2', {}, 'New metric'),
    field('Key', key), field('Name', name), field('Type', type), field('Event', event),
    field('Denominator event', den, 'Ratio metrics only.'), field('Direction', dir, 'Which way is better.'),
    field('Conversion window (hours)', win, 'Optional.'), h('button', { type: 'submit', class: 'primary' }, 'Create'), out) : null;
  if (form) form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(out);
    try {
      await api('POST', '/api/v1/metrics', { key: key.value, name: name.value, type: type.value, event: event.value,
        denominator_event: den.value || null, direction: dir.value, conversion_window_hours: win.value ? Number(win.value) : null });
      route();
    } catch (e) { out.appendChild(errorBox(e)); }
  });
  page('Metrics', h('table', { class: 'list' }, h('thead', {}, h('tr', {}, ['Key', 'Name', 'Type', 'Event', 'Direction', 'Window'].map((t) => h('th', {}, t)))),
    h('tbody', {}, data.metrics.map((m) => h('tr', { 'data-key': m.key }, h('td', {}, m.key), h('td', {}, m.name), h('td', {}, m.type),
      h('td', {}, m.event + (m.denominator_event ? ` / ${m.denominator_event}` : '')), h('td', {}, m.direction),
      h('td', {}, m.conversion_window_hours === null ? '–' : `${m.conversion_window_hours} h`))))), form);
}

async function layersPage() {
  const data = await get('/api/v1/layers');
  const out = h('div');
  const key = h('input', { name: 'key', required: true }), name = h('input', { name: 'name' }), desc = h('input', { name: 'description' });
  const form = can('editor') ? h('form', { class: 'card', id: 'layer-form' }, h('h2', {}, 'New layer'), field('Key', key), field('Name', name), field('Description', desc),
    h('button', { type: 'submit', class: 'primary' }, 'Create'), out) : null;
  if (form) form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(out);
    try { await api('POST', '/api/v1/layers', { key: key.value, name: name.value, description: desc.value }); route(); } catch (e) { out.appendChild(errorBox(e)); }
  });
  page('Layers', h('table', { class: 'list' }, h('thead', {}, h('tr', {}, ['Key', 'Name', 'Description', 'Ranges in use'].map((t) => h('th', {}, t)))),
    h('tbody', {}, data.layers.map((l) => h('tr', { 'data-key': l.key }, h('td', {}, l.key), h('td', {}, l.name), h('td', {}, l.description),
      h('td', {}, (l.experiments || l.ranges || []).map((x) => `${x.key} [${x.range[0]}, ${x.range[1]})`).join(', ') || '–'))))), form);
}

// ---------------------------------------------------------------- keys, users (admin)

async function keysPage() {
  const [client, ingest] = await Promise.all([get('/api/v1/client-keys'), get('/api/v1/ingest-keys')]);
  const shown = h('div', { id: 'new-key' });
  const section = (kind, title, list) => {
    const name = h('input', { name: 'name', placeholder: 'what it is for' });
    const form = h('form', { class: 'toolbar' }, name, h('button', { type: 'submit', class: 'primary' }, `Create ${kind} key`));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const r = await api('POST', `/api/v1/${kind}-keys`, { name: name.value });
        await keysPage();
        const box = document.getElementById('new-key');
        box.appendChild(h('div', { class: 'banner warning' }, h('strong', {}, `New ${kind} key (shown once, copy it now): `),
          h('code', { 'data-secret': '' }, r.data.key)));
      } catch (e) { flash(e.message, 'danger'); }
    });
    return h('section', {}, h('h2', {}, title), h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, ['Prefix', 'Name', 'Created', 'By', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, list.keys.map((k) => h('tr', {}, h('td', {}, h('code', {}, k.prefix)), h('td', {}, k.name), h('td', {}, fmtTime(k.created_at)), h('td', {}, k.created_by),
        h('td', {}, h('button', { class: 'link', onclick: async () => {
          if (!(await confirmBox(`Revoke ${kind} key ${k.prefix}? Clients using it stop working after the next snapshot.`, 'Revoke'))) return;
          try { await api('DELETE', `/api/v1/${kind}-keys/${k.id}`); route(); } catch (e) { flash(e.message, 'danger'); }
        } }, 'revoke')))))), form);
  };
  page('API keys', shown, section('client', 'SDK client keys', client), section('ingest', 'Ingest keys (collector)', ingest),
    h('p', { class: 'muted' }, 'Admin API keys are created on first start (DATA_DIR/admin.key). Secrets are stored hashed and shown only once.'));
}

async function usersPage() {
  const data = await get('/api/v1/users');
  const out = h('div');
  const email = h('input', { name: 'email', type: 'email', required: true });
  const pw = h('input', { name: 'password', type: 'password', minlength: 12, required: true, autocomplete: 'new-password' });
  const role = h('select', { name: 'role' }, ['viewer', 'editor', 'admin'].map((r) => h('option', { value: r }, r)));
  const form = h('form', { class: 'card', id: 'user-form' }, h('h2', {}, 'New user'), field('Email', email), field('Password', pw, 'At least 12 characters.'), field('Role', role),
    h('button', { type: 'submit', class: 'primary' }, 'Create'), out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(out);
    try { await api('POST', '/api/v1/users', { email: email.value, password: pw.value, role: role.value }); route(); } catch (e) { out.appendChild(errorBox(e)); }
  });
  page('Users', h('table', { class: 'list' }, h('thead', {}, h('tr', {}, ['Email', 'Role', 'Created', 'Status', ''].map((t) => h('th', {}, t)))),
    h('tbody', {}, data.users.map((u) => h('tr', { 'data-email': u.email }, h('td', {}, u.email), h('td', {}, u.role), h('td', {}, fmtTime(u.created_at)),
      h('td', {}, u.disabled_at ? `disabled ${fmtTime(u.disabled_at)}` : 'active'),
      h('td', {}, u.disabled_at || u.email === session.email ? null : h('button', { class: 'link', onclick: async () => {
        if (!(await confirmBox(`Disable ${u.email}? Their sessions end at once.`, 'Disable'))) return;
        try { await api('DELETE', `/api/v1/users/${u.id}`); route(); } catch (e) { flash(e.message, 'danger'); }
      } }, 'disable')))))), form);
}

// ---------------------------------------------------------------- audit log, snapshots

function auditTable(entries) {
  return h('table', { class: 'list audit', id: 'audit-log' },
    h('thead', {}, h('tr', {}, ['When', 'Who', 'Action', 'Entity', 'Changes'].map((t) => h('th', {}, t)))),
    h('tbody', {}, entries.map((a) => h('tr', { 'data-action': a.action, 'data-entity': a.entity_key },
      h('td', {}, fmtTime(a.at)), h('td', { 'data-field': 'actor' }, a.actor), h('td', {}, a.action), h('td', {}, `${a.entity_type} ${a.entity_key}`),
      h('td', {}, a.changes && a.changes.length
        ? h('table', { class: 'diff' }, h('tbody', {}, a.changes.map((c) => h('tr', {}, h('th', {}, c.field),
          h('td', { class: 'pre before' }, JSON.stringify(c.before)), h('td', { class: 'pre after' }, JSON.stringify(c.after))))))
        : h('span', { class: 'muted' }, a.before === null ? 'created' : '–'))))));
}

async function auditPage(params) {
  const p = new URLSearchParams();
  for (const k of ['entity_type', 'entity_key', 'before']) if (params.get(k)) p.set(k, params.get(k));
  const data = await get(`/api/v1/audit?${p}`);
  const last = data.entries[data.entries.length - 1];
  const more = last && data.entries.length >= 100 ? h('a', { href: `#/audit?${new URLSearchParams({ ...Object.fromEntries(p), before: last.id })}` }, 'Older entries') : null;
  page(params.get('entity_key') ? `Audit log: ${params.get('entity_key')}` : 'Audit log', auditTable(data.entries), more);
}

async function snapshotsPage() {
  const [snaps, audit] = await Promise.all([get('/api/v1/snapshots'), get('/api/v1/audit?limit=1000')]);
  const list = snaps.snapshots;
  const publish = can('editor') ? h('button', { id: 'publish', class: 'primary', onclick: async () => {
    try { const r = await api('POST', '/api/v1/snapshots'); flash(`Published version ${r.data.version}`); route(); } catch (e) { flash(e.message, 'danger'); }
  } }, 'Publish now') : null;
  const cur = list[0];
  const changes = cur ? audit.entries.filter((a) => a.at <= cur.created_at && (!list[1] || a.at > list[1].created_at) && a.action !== 'snapshot.publish') : [];
  page('Snapshots',
    h('div', { class: 'toolbar' }, publish),
    cur ? h('dl', { class: 'facts', id: 'current-snapshot' },
      h('dt', {}, 'Current version'), h('dd', { 'data-field': 'version' }, String(cur.version)),
      h('dt', {}, 'Published'), h('dd', {}, `${fmtTime(cur.created_at)} by ${cur.created_by}`),
      h('dt', {}, 'Contents'), h('dd', {}, `${cur.summary.experiments ?? '?'} running or paused experiments · ${cur.size} bytes · sha256 ${cur.sha256.slice(0, 16)}…`))
      : h('p', { class: 'empty' }, 'Nothing published yet.'),
    h('h2', {}, 'What changed in the current version'),
    changes.length ? auditTable(changes) : h('p', { class: 'muted' }, 'No configuration change since the previous version.'),
    h('h2', {}, 'History'),
    h('table', { class: 'list' }, h('thead', {}, h('tr', {}, ['Version', 'Published', 'By', 'Experiments', 'Size', 'File'].map((t) => h('th', {}, t)))),
      h('tbody', {}, list.map((s) => h('tr', {}, h('td', {}, String(s.version)), h('td', {}, fmtTime(s.created_at)), h('td', {}, s.created_by),
        h('td', {}, String(s.summary.experiments ?? '?')), h('td', {}, String(s.size)), h('td', {}, s.available ? s.url : 'pruned'))))));
}

// The nightly reports (GET /api/v1/reports), newest first; each file opens from this origin.
async function reportsPage() {
  const data = await get('/api/v1/reports');
  page('Reports',
    h('p', { class: 'muted' }, 'The results report written every night for the previous day (abacus report; docs/operations.md).'),
    data.reports.length
      ? h('table', { class: 'list', id: 'reports' },
        h('thead', {}, h('tr', {}, ['Day', 'Report', 'Data'].map((t) => h('th', {}, t)))),
        h('tbody', {}, data.reports.map((r) => h('tr', { 'data-date': r.date },
          h('td', {}, r.date),
          h('td', {}, h('a', { href: r.html, target: '_blank', rel: 'noopener' }, 'report.html')),
          h('td', {}, h('a', { href: r.json }, 'JSON'), ' · ', h('a', { href: r.csv }, 'CSV'))))))
      : h('p', { class: 'empty' }, 'No report yet: the first one is written at the next scheduled time (--report-at, 02:00 UTC by default).'));
}

// ---------------------------------------------------------------- routing

async function route() {
  const hash = location.hash || '#/experiments';
  const [path, query] = hash.slice(1).split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (!session && parts[0] !== 'login') { location.hash = '#/login'; return; }
  try {
    if (parts[0] === 'login') loginPage();
    else if (parts[0] === 'experiments' && parts.length === 1) await listPage(params);
    else if (parts[0] === 'experiments' && parts[1] === 'new') await editPage(null);
    else if (parts[0] === 'experiments' && parts[2] === 'edit') await editPage(parts[1]);
    else if (parts[0] === 'experiments') await detailPage(parts[1]);
    else if (parts[0] === 'metrics') await metricsPage();
    else if (parts[0] === 'layers') await layersPage();
    else if (parts[0] === 'keys') await keysPage();
    else if (parts[0] === 'users') await usersPage();
    else if (parts[0] === 'audit') await auditPage(params);
    else if (parts[0] === 'snapshots') await snapshotsPage();
    else if (parts[0] === 'reports') await reportsPage();
    else page('Not found', h('p', {}, 'No such page.'));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) { await loadSession(); location.hash = '#/login'; return; }
    page('Error', errorBox(e));
  }
}

window.addEventListener('hashchange', route);
loadSession().then(route, (e) => page('Error', errorBox(e)));
