// meshgate admin page: signs in, then reads and changes everything through
// the JSON API under /admin/api/. The credential lives in this variable
// only (no cookie, no storage) and goes as an Authorization header on each
// call. Data is put into the page as text, never as HTML.
'use strict';

let credential = null; // the Authorization header value while signed in
let previewed = null;  // { toml, version } of the last preview

const $ = (id) => document.getElementById(id);

function show(id, visible) { $(id).hidden = !visible; }

function setError(id, message) {
  $(id).textContent = message || '';
  show(id, Boolean(message));
}

async function api(method, path, body) {
  const options = {
    method,
    headers: { Authorization: credential },
    cache: 'no-store',
    credentials: 'omit',
  };
  if (body !== undefined) {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  const response = await fetch('/admin/api/' + path, options);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const error = new Error((data && data.error) || ('HTTP ' + response.status));
    error.status = response.status;
    throw error;
  }
  return data;
}

function fillTable(table, columns, rows, extra) {
  const head = table.tHead;
  const body = table.tBodies[0];
  head.replaceChildren();
  body.replaceChildren();
  const headRow = head.insertRow();
  for (const name of columns.concat(extra ? [extra.title] : [])) {
    const th = document.createElement('th');
    th.textContent = name;
    headRow.appendChild(th);
  }
  for (const row of rows) {
    const tr = body.insertRow();
    row.forEach((value, i) => {
      const td = tr.insertCell();
      td.textContent = value === null ? '' : value;
      if (columns[i] === 'sql') td.className = 'sql';
    });
    if (extra) extra.cell(tr.insertCell(), row);
  }
}

// --- sign-in ---------------------------------------------------------------

function basic(user, password) {
  const bytes = new TextEncoder().encode(user + ':' + password);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return 'Basic ' + btoa(binary);
}

async function signIn(event) {
  event.preventDefault();
  const token = $('sign-in-token').value.trim();
  const user = $('sign-in-user').value.trim();
  credential = token ? 'Bearer ' + token : basic(user, $('sign-in-password').value);
  $('sign-in-password').value = '';
  $('sign-in-token').value = '';
  setError('sign-in-error', '');
  try {
    const me = await api('GET', 'me');
    $('who-user').textContent = me.user + (me.impersonator ? ' (as ' + me.impersonator + ')' : '');
    show('who', true);
    show('sign-in', false);
    show('admin', true);
    show('audit-unavailable', !me.audit);
    $('audit-search').disabled = !me.audit;
    await Promise.all([loadQueries(), loadPolicy()]);
  } catch (e) {
    signOut();
    setError('sign-in-error', 'Sign-in failed: ' + e.message);
  }
}

function signOut() {
  credential = null;
  previewed = null;
  show('admin', false);
  show('who', false);
  show('sign-in', true);
  for (const id of ['queries-table', 'audit-table']) {
    $(id).tHead.replaceChildren();
    $(id).tBodies[0].replaceChildren();
  }
  $('policy-text').value = '';
  $('policy-diff').replaceChildren();
  show('policy-diff', false);
}

// --- queries ---------------------------------------------------------------

async function loadQueries() {
  setError('queries-error', '');
  try {
    const result = await api('GET', 'queries');
    const idColumn = result.columns.indexOf('id');
    const stateColumn = result.columns.indexOf('state');
    fillTable($('queries-table'), result.columns, result.rows, {
      title: 'kill',
      cell: (td, row) => {
        if (row[stateColumn] !== 'running' && row[stateColumn] !== 'queued') return;
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'kill';
        button.textContent = 'Kill';
        button.dataset.id = row[idColumn];
        button.addEventListener('click', () => kill(row[idColumn]));
        td.appendChild(button);
      },
    });
  } catch (e) {
    setError('queries-error', e.message);
  }
}

async function kill(id) {
  setError('queries-error', '');
  try {
    await api('POST', 'queries/kill', { id });
  } catch (e) {
    setError('queries-error', 'Kill ' + id + ': ' + e.message);
  }
  await loadQueries();
}

// --- policy ----------------------------------------------------------------

async function loadPolicy() {
  const policy = await api('GET', 'policy');
  $('policy-text').value = policy.toml;
  $('policy-version').textContent = String(policy.version);
  resetPreview('');
}

function resetPreview(status) {
  previewed = null;
  $('policy-apply').disabled = true;
  $('policy-apply-version').textContent = '';
  $('policy-problems').replaceChildren();
  $('policy-diff').replaceChildren();
  show('policy-diff', false);
  $('policy-status').textContent = status;
}

async function preview() {
  const toml = $('policy-text').value;
  resetPreview('Checking…');
  let result;
  try {
    result = await api('POST', 'policy/preview', { toml });
  } catch (e) {
    resetPreview('Preview failed: ' + e.message);
    return;
  }
  for (const problem of result.problems) {
    const li = document.createElement('li');
    li.textContent = problem;
    $('policy-problems').appendChild(li);
  }
  const diff = $('policy-diff');
  for (const line of result.diff.split('\n')) {
    const span = document.createElement('span');
    if (line.startsWith('+') && !line.startsWith('+++')) span.className = 'add';
    else if (line.startsWith('-') && !line.startsWith('---')) span.className = 'del';
    else if (line.startsWith('@@')) span.className = 'hunk';
    span.textContent = line + '\n';
    diff.appendChild(span);
  }
  show('policy-diff', result.diff !== '');
  if (result.problems.length > 0) {
    $('policy-status').textContent = 'The proposal has problems; fix them before applying.';
  } else if (result.diff === '') {
    $('policy-status').textContent = 'No change from version ' + result.version + '.';
  } else {
    previewed = { toml, version: result.version };
    $('policy-apply').disabled = false;
    $('policy-apply-version').textContent = String(result.version);
    $('policy-status').textContent = 'Change against version ' + result.version + ' (shown below). Apply it?';
  }
}

async function apply() {
  if (!previewed) return;
  if ($('policy-text').value !== previewed.toml) {
    resetPreview('The text changed since the preview: preview again.');
    return;
  }
  const change = previewed;
  $('policy-apply').disabled = true;
  try {
    const result = await api('POST', 'policy/apply', change);
    await loadPolicy();
    $('policy-status').textContent = 'Applied: the policy is now at version ' + result.version + '.';
  } catch (e) {
    $('policy-status').textContent = 'Not applied: ' + e.message;
  }
}

// --- audit -----------------------------------------------------------------

function isoTime(value) {
  return value ? new Date(value).toISOString() : '';
}

async function searchAudit(event) {
  event.preventDefault();
  setError('audit-error', '');
  $('audit-status').textContent = 'Searching…';
  try {
    const result = await api('POST', 'audit', {
      user: $('audit-user').value,
      table: $('audit-table-name').value,
      decision: $('audit-decision').value,
      from: isoTime($('audit-from').value),
      to: isoTime($('audit-to').value),
    });
    fillTable($('audit-table'), result.columns, result.rows);
    $('audit-status').textContent = result.rows.length + ' record(s), newest first.';
  } catch (e) {
    $('audit-status').textContent = '';
    setError('audit-error', e.message);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  $('queries-refresh').addEventListener('click', loadQueries);
  $('policy-reload').addEventListener('click', () => loadPolicy().catch((e) => resetPreview(e.message)));
  $('policy-preview').addEventListener('click', preview);
  $('policy-apply').addEventListener('click', apply);
  $('policy-text').addEventListener('input', () => {
    if (previewed) resetPreview('The text changed: preview again before applying.');
  });
  $('audit-form').addEventListener('submit', searchAudit);
});
