// The admin page in a real headless Chromium against a running meshgate
// (run by the Rust e2e test admin_page, which starts the gateway and
// checks the effects afterwards over pgwire).
//
//   node admin_page.mjs <screenshot.png>
//
// Environment: MESHGATE_ADMIN_URL (http://host:port), MESHGATE_ADMIN_USER /
// MESHGATE_ADMIN_PASSWORD (a policy admin), MESHGATE_OTHER_USER /
// MESHGATE_OTHER_PASSWORD (signed in, not an admin), MESHGATE_GRANT_USER
// (the user the policy change grants MESHGATE_GRANT_TABLES to),
// MESHGATE_KILL_MARKER (text of a running statement to kill).
// Prints one `ok <step>` line per step and, at the end, `RESULT <json>`;
// exits non-zero at the first failure.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};
const screenshot = process.argv[2];
assert.ok(screenshot, 'usage: node admin_page.mjs <screenshot.png>');
const base = env('MESHGATE_ADMIN_URL');
const marker = env('MESHGATE_KILL_MARKER');
const grantUser = env('MESHGATE_GRANT_USER');
const grantTables = env('MESHGATE_GRANT_TABLES');

const result = {};
const ok = (step) => console.log(`ok ${step}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(20000);
  // The page must run under its content security policy without a violation.
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));

  const response = await page.goto(`${base}/admin`);
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'], /default-src 'self'/);
  ok('page loads');

  const signIn = async (user, password) => {
    await page.fill('#sign-in-user', user);
    await page.fill('#sign-in-password', password);
    await page.click('#sign-in-button');
  };
  const rowCount = (table) => page.locator(`#${table} tbody tr`).count();

  // A signed-in user who is not an admin sees an error and no data.
  await signIn(env('MESHGATE_OTHER_USER'), env('MESHGATE_OTHER_PASSWORD'));
  await page.waitForSelector('#sign-in-error:not([hidden])');
  result.non_admin_error = await page.textContent('#sign-in-error');
  assert.match(result.non_admin_error, /not a policy admin/);
  assert.equal(await page.isVisible('#admin'), false);
  assert.equal(await rowCount('queries-table'), 0);
  assert.equal(await page.inputValue('#policy-text'), '');
  ok('non-admin refused');
  // Console errors so far are the refused API call itself.
  problems.length = 0;

  await signIn(env('MESHGATE_ADMIN_USER'), env('MESHGATE_ADMIN_PASSWORD'));
  await page.waitForSelector('#admin:not([hidden])');
  await page.waitForSelector('#queries-table thead th');
  await page.waitForFunction(() => document.getElementById('policy-version').textContent !== '');
  result.signed_in_as = await page.textContent('#who-user');
  ok('admin signed in');

  // Running queries: find the marked statement and kill it.
  const columns = await page.locator('#queries-table thead th').allTextContents();
  for (const c of ['id', 'user', 'state', 'sql']) assert.ok(columns.includes(c), `column ${c}`);
  const marked = page.locator('#queries-table tbody tr', { hasText: marker });
  for (let i = 0; (await marked.locator('button.kill').count()) === 0; i++) {
    assert.ok(i < 40, `no running statement with ${marker} appeared`);
    await page.waitForTimeout(250);
    await page.click('#queries-refresh');
  }
  result.queries_rows = await rowCount('queries-table');
  result.killed_id = await marked.locator('button.kill').first().getAttribute('data-id');
  await marked.locator('button.kill').first().click();
  // The state of the statement whose id cell is the killed id.
  const stateOf = (id) => page.evaluate((id) => {
    const table = document.getElementById('queries-table');
    const names = Array.from(table.tHead.rows[0].cells, (c) => c.textContent);
    const row = Array.from(table.tBodies[0].rows).find((r) => r.cells[names.indexOf('id')].textContent === id);
    return row ? row.cells[names.indexOf('state')].textContent : '';
  }, id);
  for (let i = 0; ; i++) {
    const state = await stateOf(result.killed_id);
    if (state !== 'running' && state !== 'queued' && state !== '') { result.killed_state = state; break; }
    assert.ok(i < 40, `the killed statement did not stop: ${state}`);
    await page.waitForTimeout(250);
    await page.click('#queries-refresh');
  }
  assert.equal(await page.isVisible('#queries-error'), false);
  ok('query killed');

  // Policy: preview a change (diff visible), then apply it.
  result.version_before = Number(await page.textContent('#policy-version'));
  const current = await page.inputValue('#policy-text');
  assert.match(current, /\[\[grants\]\]/);
  const addition = `\n[[grants]]\neffect = "allow"\nprincipals = ["user:${grantUser}"]\ntables = ["${grantTables}"]\n`;
  await page.fill('#policy-text', current + addition);
  await page.click('#policy-preview');
  await page.waitForSelector('#policy-diff:not([hidden])');
  result.diff = await page.textContent('#policy-diff');
  assert.match(result.diff, new RegExp(`^\\+principals = \\["user:${grantUser}"\\]`, 'm'));
  assert.equal(await page.locator('#policy-diff .add').count() >= 4, true);
  assert.equal(await page.isEnabled('#policy-apply'), true);
  assert.equal(await page.textContent('#policy-apply-version'), String(result.version_before));
  ok('policy change previewed');
  await page.click('#policy-apply');
  await page.waitForFunction(() => /Applied/.test(document.getElementById('policy-status').textContent));
  result.policy_status = await page.textContent('#policy-status');
  result.version_after = Number(await page.textContent('#policy-version'));
  assert.equal(result.version_after, result.version_before + 1);
  assert.match(await page.inputValue('#policy-text'), new RegExp(`user:${grantUser}`));
  ok('policy change applied');

  // Audit log: the non-admin's refused calls.
  const search = async (fields) => {
    await page.fill('#audit-user', fields.user || '');
    await page.fill('#audit-table-name', fields.table || '');
    await page.selectOption('#audit-decision', fields.decision || '');
    await page.evaluate(() => { document.getElementById('audit-status').textContent = ''; });
    await page.click('#audit-search');
    await page.waitForFunction(() => /record\(s\)/.test(document.getElementById('audit-status').textContent)
      || !document.getElementById('audit-error').hidden);
    assert.equal(await page.isVisible('#audit-error'), false, await page.textContent('#audit-error'));
    const header = await page.locator('#audit-table thead th').allTextContents();
    const rows = await page.locator('#audit-table tbody tr').evaluateAll((trs) =>
      trs.map((tr) => Array.from(tr.cells, (td) => td.textContent)));
    return rows.map((cells) => Object.fromEntries(header.map((h, i) => [h, cells[i]])));
  };
  const other = env('MESHGATE_OTHER_USER');
  const denied = await search({ user: other, decision: 'denied' });
  assert.ok(denied.length > 0, 'no denied record of the non-admin');
  for (const r of denied) {
    assert.equal(r.user, other);
    assert.equal(r.decision, 'denied');
  }
  result.audit_denied = denied.length;
  result.audit_denied_protocols = [...new Set(denied.map((r) => r.protocol))].sort();
  const byTable = await search({ table: 'providers' });
  assert.ok(byTable.length > 0, 'no record naming providers');
  for (const r of byTable) assert.match(r.objects, /providers/);
  result.audit_by_table = byTable.length;
  ok('audit searched');

  assert.deepEqual(problems, [], 'console errors (CSP violations?)');
  await page.screenshot({ path: screenshot, fullPage: true });
  ok('screenshot saved');
} finally {
  await browser.close();
}
console.log(`RESULT ${JSON.stringify(result)}`);
