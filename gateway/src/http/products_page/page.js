// meshgate data products page: signs in, then reads everything from the
// discovery API (/v1/products) and /v1/info. The credential lives in this
// variable only (no cookie, no storage) and goes as an Authorization
// header on each call. Data is put into the page as text, never as HTML.
'use strict';

let credential = null; // the Authorization header value while signed in
let user = '';
let info = null;       // /v1/info: listener ports, default catalog

const $ = (id) => document.getElementById(id);

function show(id, visible) { $(id).hidden = !visible; }

function setError(id, message) {
  $(id).textContent = message || '';
  show(id, Boolean(message));
}

async function api(path) {
  const response = await fetch(path, {
    headers: credential ? { Authorization: credential } : {},
    cache: 'no-store',
    credentials: 'omit',
  });
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const error = new Error((data && data.error) || ('HTTP ' + response.status));
    error.status = response.status;
    throw error;
  }
  return data;
}

function text(tag, value, className) {
  const el = document.createElement(tag);
  el.textContent = value === null || value === undefined ? '' : String(value);
  if (className) el.className = className;
  return el;
}

function tags(list) {
  const cell = document.createElement('span');
  for (const t of list || []) cell.appendChild(text('span', t, t === 'pii' ? 'tag pii' : 'tag'));
  return cell;
}

function row(tbody, cells) {
  const tr = tbody.insertRow();
  for (const c of cells) {
    const td = tr.insertCell();
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? '' : String(c);
  }
  return tr;
}

async function search() {
  setError('browse-error', '');
  const params = new URLSearchParams();
  for (const [key, id] of [['q', 'search-text'], ['domain', 'search-domain'], ['tag', 'search-tag']]) {
    const value = $(id).value.trim();
    if (value) params.set(key, value);
  }
  try {
    const data = await api('/v1/products' + (params.toString() ? '?' + params : ''));
    const tbody = $('products-table').tBodies[0];
    tbody.replaceChildren();
    for (const p of data.products) {
      const tr = row(tbody, [p.name, p.domain, p.owner, p.status, tags(p.tags), p.freshness_slo, p.description]);
      tr.className = 'product';
      tr.dataset.name = p.name;
      tr.addEventListener('click', () => open(p.name));
    }
    show('products-empty', data.products.length === 0);
  } catch (e) {
    setError('browse-error', e.message);
  }
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return 'unknown';
  const s = Math.round(seconds);
  if (s < 60) return s + 's ago';
  if (s < 3600) return Math.floor(s / 60) + 'min ago';
  if (s < 86400) return Math.floor(s / 3600) + 'h ago';
  return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h ago';
}

function connections(p) {
  const host = window.location.hostname;
  const pg = info && info.listeners && info.listeners.pgwire;
  const flight = info && info.listeners && info.listeners.flight_sql;
  const table = p.tables[0];
  const out = [];
  if (pg) {
    out.push(['psql', `psql "host=${host} port=${pg} user=${user} dbname=${p.catalog}" -c "SELECT * FROM ${table} LIMIT 10"`]);
  }
  if (flight) {
    out.push(['ADBC (Python)', `import adbc_driver_flightsql.dbapi as flightsql\nconn = flightsql.connect("grpc://${host}:${flight}",\n    db_kwargs={"username": "${user}", "password": "..."})\ncur = conn.cursor()\ncur.execute("SELECT * FROM ${table} LIMIT 10")\ntable = cur.fetch_arrow_table()`]);
    out.push(['polars', `import polars as pl\ndf = pl.read_database_uri("SELECT * FROM ${table} LIMIT 10",\n    uri="grpc://${user}:...@${host}:${flight}", engine="adbc")`]);
  }
  return out;
}

async function open(name) {
  setError('browse-error', '');
  try {
    const p = await api('/v1/products/' + encodeURIComponent(name));
    $('product-name').textContent = p.name;
    $('product-description').textContent = p.description || '';
    const facts = $('product-facts');
    facts.replaceChildren();
    for (const [k, v] of [['Domain', p.domain], ['Owner', p.owner], ['Contact', p.contact], ['Status', p.status],
      ['Freshness SLO', p.freshness_slo], ['Availability SLO', p.availability_slo], ['Tables', p.tables.join(', ')],
      ['Sample query', p.sample_query]]) {
      if (v === null || v === undefined) continue;
      facts.appendChild(text('dt', k));
      facts.appendChild(text('dd', v));
    }
    facts.appendChild(text('dt', 'Tags'));
    const dd = document.createElement('dd');
    dd.appendChild(tags(p.tags));
    facts.appendChild(dd);
    const fresh = $('freshness-table').tBodies[0];
    fresh.replaceChildren();
    for (const f of p.freshness) {
      const verdict = f.within_slo === null ? text('span', 'no SLO') :
        text('span', f.within_slo ? 'yes' : 'no: past its SLO', f.within_slo ? 'fresh' : 'stale');
      row(fresh, [f.table, f.error ? f.error : age(f.age_seconds), verdict, f.measured_by]);
    }
    const columns = $('columns-table').tBodies[0];
    columns.replaceChildren();
    for (const c of p.columns) {
      row(columns, [c.table, c.name, c.data_type, c.nullable ? 'yes' : 'no', c.unique ? 'yes' : 'no', tags(c.tags), c.description]);
    }
    const quality = $('quality-list');
    quality.replaceChildren();
    for (const q of p.quality) quality.appendChild(text('li', `${q.name}: ${q.query} (must be ${q.must_be})`));
    const box = $('connections');
    box.replaceChildren();
    for (const [title, value] of connections(p)) {
      box.appendChild(text('h4', title));
      box.appendChild(text('pre', value, 'connection'));
    }
    show('product', true);
  } catch (e) {
    setError('browse-error', e.message);
  }
}

async function signIn(event) {
  event.preventDefault();
  setError('sign-in-error', '');
  const token = $('sign-in-token').value.trim();
  const name = $('sign-in-user').value.trim();
  credential = token ? 'Bearer ' + token : 'Basic ' + btoa(name + ':' + $('sign-in-password').value);
  try {
    await api('/v1/products');
    info = await api('/v1/info');
  } catch (e) {
    credential = null;
    setError('sign-in-error', e.status === 401 ? 'Sign-in refused: ' + e.message : e.message);
    return;
  }
  user = token ? 'token' : name;
  $('sign-in-password').value = '';
  $('who-user').textContent = user;
  show('who', true);
  show('sign-in', false);
  show('catalog', true);
  await search();
}

function signOut() {
  credential = null;
  location.reload();
}

document.addEventListener('DOMContentLoaded', () => {
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  $('search-form').addEventListener('submit', (e) => { e.preventDefault(); search(); });
});
