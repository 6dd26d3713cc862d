// The data products page in a real headless Chromium against a running
// meshgate (run by the Rust e2e test in products.rs, which starts the
// gateway with the demo mesh's descriptors).
//
//   node products_page.mjs <screenshot.png>
//
// Environment: MESHGATE_URL (http://host:port of the HTTP listener),
// MESHGATE_USER / MESHGATE_PASSWORD (a consumer).
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
assert.ok(screenshot, 'usage: node products_page.mjs <screenshot.png>');
const base = env('MESHGATE_URL');
const result = {};
const ok = (step) => console.log(`ok ${step}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  page.setDefaultTimeout(20000);
  const problems = [];
  // Refused calls (the wrong password below) and the browser's own
  // favicon request log "Failed to load resource"; anything else is a
  // problem (a script error, a CSP violation).
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(String(e)));

  const response = await page.goto(`${base}/products`);
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'], /default-src 'self'/);
  ok('page loads');

  // A wrong password is refused, and says so.
  await page.fill('#sign-in-user', env('MESHGATE_USER'));
  await page.fill('#sign-in-password', 'wrong');
  await page.click('#sign-in-button');
  await page.waitForSelector('#sign-in-error:not([hidden])');
  ok('bad sign-in refused');

  await page.fill('#sign-in-password', env('MESHGATE_PASSWORD'));
  await page.click('#sign-in-button');
  await page.waitForSelector('#catalog:not([hidden])');
  await page.waitForSelector('#products-table tbody tr');
  result.listed = await page.locator('#products-table tbody tr td:first-child').allTextContents();
  ok('products listed');

  // Search narrows the list.
  await page.fill('#search-tag', 'gold');
  await page.click('#search-button');
  await page.waitForFunction(() => document.querySelectorAll('#products-table tbody tr').length === 1);
  result.gold = await page.locator('#products-table tbody tr td:first-child').allTextContents();
  ok('search by tag');

  // A product's promise, freshness, columns and connection strings.
  await page.click('#products-table tbody tr.product');
  await page.waitForSelector('#product:not([hidden])');
  result.product = await page.textContent('#product-name');
  result.freshness = await page.locator('#freshness-table tbody tr td:nth-child(3)').allTextContents();
  result.pii_columns = await page.locator('#columns-table tbody tr').evaluateAll((trs) =>
    trs.filter((tr) => tr.cells[5].textContent.includes('pii')).map((tr) => tr.cells[1].textContent));
  result.connections = await page.locator('#connections h4').allTextContents();
  result.psql = await page.locator('#connections pre').first().textContent();
  ok('product shown');

  assert.deepEqual(problems, [], 'console errors (CSP violations?)');
  await page.screenshot({ path: screenshot, fullPage: true });
  ok('screenshot saved');
} finally {
  await browser.close();
}
console.log(`RESULT ${JSON.stringify(result)}`);
