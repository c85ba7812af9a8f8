// DOM helpers. Text from data only ever goes in as text nodes (createTextNode / textContent):
// nothing here parses HTML, so a name like <img src=x onerror=...> shows as itself.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, children, doc) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'object' ? c : doc.createTextNode(String(c)));
  }
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  return el;
}

// h('div', {class: 'x'}, 'text', child...) -> HTMLElement
export function h(tag, attrs, ...children) {
  const doc = globalThis.document;
  return append(setAttrs(doc.createElement(tag), attrs), children, doc);
}

// s('line', {x1: 0, ...}) -> SVGElement (same rules as h)
export function s(tag, attrs, ...children) {
  const doc = globalThis.document;
  return append(setAttrs(doc.createElementNS(SVG_NS, tag), attrs), children, doc);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '–';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}
